"""The suppression list: addresses never to send to on a channel (hard bounces, complaints, STOP,
manual blocks, erased people). Enforced at send time for every category of message."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from ccm.channels.addresses import normalize_email_address, normalize_phone
from ccm.channels.base import InvalidAddress
from ccm.db import dialect_of, insert_ignoring_conflicts, rowcount, utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.pagination import PageQuery, paginate, split_page
from ccm.suppression.models import Suppression

_TABLE = Suppression.__table__
_REASON = select(_TABLE.c.reason).where(  # prebuilt: runs for every candidate channel of every message
    _TABLE.c.workspace_id == bindparam("b_workspace"),
    _TABLE.c.channel == bindparam("b_channel"),
    _TABLE.c.address_hash == bindparam("b_hash"),
)


@functools.lru_cache(maxsize=4096)
def canonical(channel: str, address: str, *, region: str | None = None, strict: bool = True) -> str:
    """The form an address is compared in: normalized email, E.164 phone, exact chat handle.

    ``strict=False`` falls back to the trimmed, lower-cased text for an address that does not
    validate (a provider may still have refused it, and it must stay blocked)."""
    try:
        if channel == "email":
            return normalize_email_address(address).lower()
        if channel == "sms":
            return normalize_phone(address, region=region)
    except InvalidAddress:
        if strict:
            raise
        return address.strip().lower()
    return address.strip()


def address_hash(channel: str, canonical_address: str) -> str:
    return hashlib.sha256(f"{channel}:{canonical_address}".encode()).hexdigest()


def suppress(
    *,
    session: Session,
    workspace_id: str,
    channel: str,
    address: str,
    reason: str,
    detail: str | None = None,
    region: str | None = None,
    keep_address: bool = True,
    strict: bool = True,
) -> bool:
    """Add an entry (idempotent: an address already suppressed on the channel keeps its first
    reason). Returns whether the entry is new.

    Raises:
      ValidationFailed: the address is not valid for the channel (only when ``strict``).
    """
    try:
        value = canonical(channel, address, region=region, strict=strict)
    except InvalidAddress as exc:
        raise ValidationFailed(f"address: {exc}", field="address") from None
    inserted = session.execute(
        insert_ignoring_conflicts(dialect_of(session), _TABLE, _TABLE.c.id),
        {
            "id": new_id("sup"),
            "workspace_id": workspace_id,
            "channel": channel,
            "address_hash": address_hash(channel, value),
            "address": value if keep_address else None,
            "reason": reason,
            "detail": detail,
            "created_at": utcnow(),
        },
    ).scalar()
    return inserted is not None


def lift(*, session: Session, workspace_id: str, channel: str, address: str, reason: str) -> bool:
    """Remove the address's entry if it was suppressed for ``reason`` (and only then); returns
    whether it was."""
    value = canonical(channel, address, strict=False)
    removed = session.execute(
        delete(_TABLE).where(
            _TABLE.c.workspace_id == workspace_id,
            _TABLE.c.channel == channel,
            _TABLE.c.address_hash == address_hash(channel, value),
            _TABLE.c.reason == reason,
        )
    )
    return bool(rowcount(removed))


Known = Mapping[tuple[str, str, str], str | None]
"""Suppression read ahead for a batch of messages: (workspace id, channel, address hash) → the
reason the address is suppressed, or None when it is not."""


def read_ahead(session: Session, addresses: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str | None]:
    """Whether each (workspace id, channel, address) is suppressed, in one read: the answers that
    :func:`suppressed` takes as ``known`` in the same transaction."""
    keys = {(workspace_id, channel, _hash(channel, address)) for workspace_id, channel, address in addresses}
    if not keys:
        return {}
    answers: dict[tuple[str, str, str], str | None] = dict.fromkeys(keys)
    rows = session.execute(
        select(_TABLE.c.workspace_id, _TABLE.c.channel, _TABLE.c.address_hash, _TABLE.c.reason).where(
            _TABLE.c.workspace_id.in_({key[0] for key in keys}), _TABLE.c.address_hash.in_({key[2] for key in keys})
        )
    )
    for workspace_id, channel, hashed, reason in rows:
        if (workspace_id, channel, hashed) in answers:
            answers[workspace_id, channel, hashed] = reason
    return answers


def suppressed(
    *, session: Session, workspace_id: str, channel: str, address: str, known: Known | None = None
) -> str | None:
    """The reason ``address`` (already normalized by the provider) is suppressed, or None. An
    address ``known`` answers for (:func:`read_ahead` in this transaction) is not read again."""
    hashed = _hash(channel, address)
    if known is not None and (workspace_id, channel, hashed) in known:
        return known[workspace_id, channel, hashed]
    return session.execute(_REASON, {"b_workspace": workspace_id, "b_channel": channel, "b_hash": hashed}).scalar()


def _hash(channel: str, address: str) -> str:
    return address_hash(channel, canonical(channel, address, strict=False))


def unsuppress(*, session: Session, workspace_id: str, suppression_id: str) -> None:
    entry = session.scalar(
        select(Suppression).where(Suppression.id == suppression_id, Suppression.workspace_id == workspace_id)
    )
    if entry is None:
        raise NotFound(f"no suppression {suppression_id!r}", field="id")
    if entry.reason == "erased":
        raise Conflict("id: an erased person's entry cannot be removed", field="id")
    session.delete(entry)


def list_suppressions(
    *,
    session: Session,
    workspace_id: str,
    page: PageQuery,
    channel: str | None,
    address: str | None,
    region: str | None = None,
) -> tuple[list[Suppression], str | None]:
    statement = select(Suppression).where(Suppression.workspace_id == workspace_id)
    if channel:
        statement = statement.where(Suppression.channel == channel)
    if address and channel:
        try:
            value = canonical(channel, address, region=region)
            statement = statement.where(Suppression.address_hash == address_hash(channel, value))
        except InvalidAddress:
            return [], None
    rows = session.scalars(paginate(statement, Suppression.id, page)).all()
    items, cursor = split_page(rows, page, lambda entry: entry.id)
    return list(items), cursor
