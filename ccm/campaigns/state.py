"""The lifecycle of a campaign: the only code that writes its status.

A campaign moves along :data:`TRANSITIONS` by one compare-and-set ``UPDATE`` on its status, so of
two callers racing (two launches, two schedulers, a pause against the pump) one wins and the other
changes nothing and learns so. The fields a move writes (``paused_reason``, ``started_at`` …) go in
the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign, CampaignStatus
from ccm.db import rowcount, utcnow

S = CampaignStatus
TRANSITIONS: Final[Mapping[CampaignStatus, frozenset[CampaignStatus]]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.RUNNING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.PAUSED, S.COMPLETED, S.CANCELLED}),
    S.PAUSED: frozenset({S.RUNNING, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
"""Where a campaign may go from each status. A scheduled campaign starts (``running``) when it
is due, or is cancelled — by hand, or because its schedule was missed by more than its deadline."""
ENDED: Final = frozenset({S.COMPLETED, S.CANCELLED})
LIVE: Final = (S.RUNNING, S.PAUSED)
"""Launched and not ended: its fan-out may be writing and its messages going."""

_c = Campaign.__table__
_DERIVED = frozenset({"status", "updated_at"})


class IllegalTransition(ValueError):
    """A caller asked for a move :data:`TRANSITIONS` does not allow (a bug, never a race)."""


def allowed(current: CampaignStatus, to: CampaignStatus) -> bool:
    return to in TRANSITIONS[current]


def transition(
    session: Session,
    campaign_id: str,
    *,
    expect: CampaignStatus | Iterable[CampaignStatus],
    to: CampaignStatus,
    **fields: Any,
) -> bool:
    """Move a campaign from one of the ``expect``\\ ed statuses to ``to``, compare-and-set.

    Parameters:
      fields: other columns written by the same statement (``paused_reason``, ``started_at`` …).

    Returns whether it moved (False: its status was not one of ``expect`` any more).

    Raises:
      IllegalTransition: ``to`` is not reachable from one of the ``expect``\\ ed statuses.
    """
    statuses = (expect,) if isinstance(expect, CampaignStatus) else tuple(expect)
    for current in statuses:
        if not allowed(current, to):
            raise IllegalTransition(f"a campaign may not go from {current} to {to}")
    refused = _DERIVED.intersection(fields)
    if refused:
        raise ValueError(f"{', '.join(sorted(refused))}: written by the move itself")
    statement = (
        update(_c)
        .where(_c.c.id == campaign_id, _c.c.status.in_([str(status) for status in statuses]))
        .values(status=str(to), updated_at=utcnow(), **fields)
    )
    return bool(rowcount(session.execute(statement)))
