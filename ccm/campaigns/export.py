"""A campaign's results as CSV: one line per recipient (``export.csv``), or one per variant
(``results.csv``). Lines are produced while the rows are read (a server-side cursor on
PostgreSQL, ``yield_per`` batches), so a million recipients take the memory of one batch; every
cell goes through :func:`ccm.csvsafe.csv_lines`, which neutralises formulas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, case, false, func, literal, null, select
from sqlalchemy.orm import Session

from ccm.campaigns import facts
from ccm.campaigns.models import Campaign, CampaignHoldout
from ccm.campaigns.results import COUNTS, HOLDOUT, RATES, Results
from ccm.csvsafe import csv_lines
from ccm.db import Database
from ccm.profiles.models import Profile

BATCH = 2000
"""Rows fetched from the database at a time."""
RECIPIENT_HEADER = (
    "profile_external_id",
    "profile_id",
    "address",
    "variant",
    "channel",
    "status",
    "reason",
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "converted",
)
SUMMARY_HEADER = ("variant", *COUNTS, *(f"{name}_rate" for name in RATES))
_p, _h = Profile.__table__, CampaignHoldout.__table__


def recipient_lines(db: Database, *, workspace_id: str, campaign_id: str) -> Iterator[str]:
    """The recipients' CSV, line by line, read in its own session (the request's has ended by
    the time a streamed answer is written): the messages in id order, then the holdout."""
    with db.read_only() as session:
        campaign = session.get_one(Campaign, campaign_id)
        facts.without_jit(session)
        rows = (
            _format(row)
            for statement in (_messages(session, campaign), _holdout(session, campaign))
            for row in session.execute(statement.execution_options(yield_per=BATCH))
        )
        yield from csv_lines(RECIPIENT_HEADER, rows)


def summary_lines(results: Results) -> Iterator[str]:
    """The per-variant summary's CSV: counts and rates, a line per variant, the holdout, the total."""
    groups = [*results.variants.values(), *([results.holdout] if results.holdout else []), results.total]
    rows = ([group.key, *(group.counts[name] for name in COUNTS), *group.rates().values()] for group in groups)
    return csv_lines(SUMMARY_HEADER, rows)


def _messages(session: Session, campaign: Campaign) -> Select[Any]:
    each = facts.per_message(campaign.workspace_id, campaign.id)
    delivered_at = func.coalesce(each.c.delivered_at, case((each.c.status == "delivered", each.c.finished_at)))
    return (
        select(
            _p.c.external_id,
            each.c.profile_id,
            each.c.to_address,
            each.c.variant,
            each.c.channel,
            each.c.status,
            each.c.reason,
            each.c.sent_at,
            delivered_at,
            each.c.opened_at,
            each.c.clicked_at,
            _converted(session, campaign, each.c.profile_id, each.c.sent_at),
        )
        .select_from(each.outerjoin(_p, _p.c.id == each.c.profile_id))
        .order_by(each.c.id)
    )


def _holdout(session: Session, campaign: Campaign) -> Select[Any]:
    """The holdout group's profiles, on the recipients' columns: never messaged, so no address,
    channel or times; converted when they did the goal event after the launch."""
    blank = [null()] * 4
    return (
        select(
            _p.c.external_id,
            _h.c.profile_id,
            null(),
            literal(HOLDOUT),
            null(),
            literal("held_out"),
            *blank,
            null(),
            _converted(session, campaign, _h.c.profile_id, campaign.launched_at, holdout=True),
        )
        .select_from(_h.join(_p, _p.c.id == _h.c.profile_id))
        .where(_h.c.campaign_id == campaign.id)
        .order_by(_h.c.profile_id)
    )


def _converted(session: Session, campaign: Campaign, profile: Any, since: Any, *, holdout: bool = False) -> Any:
    if not campaign.goal or campaign.launched_at is None:
        return false()
    did = facts.converted(
        session,
        workspace_id=campaign.workspace_id,
        profile=profile,
        since=since,
        goal=campaign.goal,
        not_before=None if holdout else campaign.launched_at,
    )
    return case((did, True), else_=False)


def _format(row: Any) -> list[Any]:
    return [*row[:7], *(_time(value) for value in row[7:11]), bool(row[11])]


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""
