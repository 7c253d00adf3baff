"""The fan-out: a campaign's audience written as message rows, in set-based keyset chunks.

A chunk is a range of the audience's profile ids, ``(after, upto]``, claimed by
:func:`next_boundary` (at most ``CCM_CAMPAIGN_CHUNK`` of them) under the campaign's lock and then
written by :func:`write_chunk` in a transaction of its own — its holdout rows and its messages
with one ``INSERT … SELECT`` each — that also deletes the chunk's claim (see
:mod:`ccm.campaigns.engine`: several lanes write chunks in parallel). A worker killed anywhere
leaves exactly the claims not yet written; a second fan-out of the same campaign (a job published
twice) claims after the checkpoint and skips the chunks another lane holds. The send key
``campaign:<campaign>:<profile>`` is unique per workspace: whatever happens, one message per
campaign and profile.

Message ids are made in SQL and encode when the message is due: the ULID time part is the due
time (never earlier than a moment just past the pump's horizon, so that a new row never lands
behind the release cursor), then the campaign's seed, the chunk's number and the row's number.
The pump releases in id order, on the ``(campaign_id, id)`` index, with no column to update.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    case,
    column,
    func,
    literal,
    select,
    text,
    union_all,
    values,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign, CampaignHoldout, CampaignVariant, FanoutPhase
from ccm.campaigns.timing import Timing, due_by_zone, zone_of
from ccm.db import JSONType, UTCDateTime
from ccm.ids import first_id_at
from ccm.messages.models import Message, MessageStatus
from ccm.profiles.models import Profile
from ccm.segments.service import audience_query

_m, _p, _h = Message.__table__, Profile.__table__, CampaignHoldout.__table__
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BUCKETS = 10_000
"""Hash buckets of a profile: a percentage of p takes the buckets below ``p * 100``."""
RELEASE_MARGIN = dt.timedelta(seconds=2)
"""A new message is due no earlier than this from now: past the pump's horizon, so that its id is
beyond the release cursor (see the module docstring)."""
MAX_CHUNK = 99_999
"""A row's number takes five digits of its id."""
_STAGED = Table(
    "fanout_chunk",
    MetaData(),
    Column("id", String(32), nullable=False),
    Column("timezone", String(64)),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
"""One chunk's audience (see :func:`_stage`); in no schema's metadata: it lives for one transaction."""


@dataclass(frozen=True)
class Plan:
    """What one phase of a campaign's fan-out writes, read from the campaign once per chunk."""

    campaign: Campaign
    variants: list[CampaignVariant]
    phase: FanoutPhase
    timing: Timing
    deadline: dt.timedelta
    fallback_zone: str
    winner: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A claimed chunk: the audience's profile ids in ``(after, upto]``, and its number."""

    after: str
    upto: str
    number: int


@dataclass(frozen=True)
class Written:
    """What a chunk wrote: holdout rows, recipients given the fallback zone, the last profile id
    written, and whether the chunk held more than one write may take (then the rest, after
    ``last_id``, is still to write, under a new number)."""

    holdout: int
    fallback: int
    last_id: str | None
    full: bool = False


def next_boundary(session: Session, campaign: Campaign, *, after: str, size: int, now: dt.datetime) -> str | None:
    """The last profile id of the next ``size`` of the audience after ``after``: the end of the
    next chunk to claim; None when the audience has nothing left after it."""
    audience = audience_query(session, campaign.workspace_id, campaign.segment_id, now=now).subquery("aud")
    window = select(audience.c.id).where(audience.c.id > after).order_by(audience.c.id).limit(min(size, MAX_CHUNK))
    return session.execute(select(func.max(window.subquery("win").c.id))).scalar()


def write_chunk(session: Session, plan: Plan, chunk: Chunk, *, now: dt.datetime) -> Written:
    """Write ``plan``'s phase for the audience in ``chunk``'s range; ``last_id`` None when none of
    it is in the audience any more."""
    dialect = session.get_bind().dialect.name
    staged = _stage(session, plan, chunk, now=now)
    count, last_id = session.execute(select(func.count(), func.max(staged.c.id))).one()
    if last_id is not None:
        if dialect == "postgresql":
            # The claim's removal commits with the rows: a commit lost in a crash loses both.
            session.execute(text("SET LOCAL synchronous_commit = off"))
        holdout = _insert_holdout(session, plan, staged, now) if plan.campaign.holdout_percent > 0 else 0
        chosen = _phase_filter(session, plan, staged.c.id)
        zones, fallback = _zones(session, plan, staged, chosen)
        _insert_messages(session, plan, staged, chosen, zones, chunk.number, now)
    if dialect != "postgresql":  # PostgreSQL drops it at commit
        staged.drop(session.connection())
    if last_id is None:
        return Written(0, 0, None)
    return Written(holdout, fallback, last_id, full=count >= MAX_CHUNK and last_id < chunk.upto)


def _stage(session: Session, plan: Plan, chunk: Chunk, *, now: dt.datetime) -> Table:
    """The chunk's audience, evaluated once into a temporary table: its profile ids (at most
    :data:`MAX_CHUNK`, the most a chunk's ids can number), with their time zones when the
    campaign sends at local time. Every statement of the chunk reads it, instead of running the
    segment's query again."""
    campaign = plan.campaign
    audience = audience_query(session, campaign.workspace_id, campaign.segment_id, now=now).subquery("aud")
    ranged = select(audience.c.id).where(audience.c.id > chunk.after, audience.c.id <= chunk.upto)
    window = ranged.order_by(audience.c.id).limit(MAX_CHUNK).subquery("win")
    zone: ColumnElement[str | None] = literal(None, String)
    source: Any = window
    if plan.timing.by_zone:
        source, zone = window.join(_p, _p.c.id == window.c.id), _p.c.timezone
    _STAGED.create(session.connection())
    rows = select(window.c.id, zone).select_from(source)
    session.execute(_STAGED.insert().from_select(["id", "timezone"], rows))
    return _STAGED


def bucket(session: Session, salt: str, profile_id: ColumnElement[str]) -> ColumnElement[int]:
    """A profile's bucket for ``salt`` (0 … 9,999): a deterministic hash of the salt and the id."""
    key = literal(salt, String) + profile_id
    if session.get_bind().dialect.name == "postgresql":
        hashed = func.hashtext(key).cast(BigInteger)
        return ((hashed % BUCKETS) + BUCKETS) % BUCKETS
    return func.ccm_crc32(key, type_=Integer) % BUCKETS


def _salts(campaign: Campaign) -> tuple[str, str, str]:
    return f"{campaign.id}:h:", f"{campaign.id}:s:", f"{campaign.id}:v:"


def _held(session: Session, plan: Plan, ids: ColumnElement[str]) -> ColumnElement[bool]:
    share = int(round(plan.campaign.holdout_percent * 100))
    return bucket(session, _salts(plan.campaign)[0], ids) < share


def _phase_filter(session: Session, plan: Plan, ids: ColumnElement[str]) -> ColumnElement[bool]:
    """Who this phase messages: the audience outside the holdout, split by the A/B sample."""
    keep: ColumnElement[bool] = ~_held(session, plan, ids) if plan.campaign.holdout_percent > 0 else literal(True)
    if plan.phase is FanoutPhase.ALL:
        return keep
    share = int(round(float((plan.campaign.ab_test or {}).get("sample_percent", 0)) * 100))
    sampled = bucket(session, _salts(plan.campaign)[1], ids) < share
    return keep & (sampled if plan.phase is FanoutPhase.SAMPLE else ~sampled)


def _insert_holdout(session: Session, plan: Plan, staged: Table, now: dt.datetime) -> int:
    rows = select(literal(plan.campaign.id, String), staged.c.id, literal(now, UTCDateTime())).where(
        _held(session, plan, staged.c.id)
    )
    statement = _insert(session, _h).from_select(
        ["campaign_id", "profile_id", "added_at"], rows, include_defaults=False
    )
    # Counted from RETURNING: the driver's row count of an INSERT … SELECT is not to be relied on.
    return len(session.execute(statement.on_conflict_do_nothing().returning(_h.c.profile_id)).all())


def _insert(session: Session, table: Any) -> Any:
    """An ``INSERT`` that can skip conflicting rows (a chunk replayed after a lost commit)."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True)
class _Zones:
    """The chunk's due times: per valid zone (None: everyone due at one moment) and the fallback."""

    by_zone: dict[str, dt.datetime] | None
    fallback: dt.datetime


def _zones(session: Session, plan: Plan, staged: Table, chosen: ColumnElement[bool]) -> tuple[_Zones, int]:
    """The due time of each time zone in the chunk, and how many recipients need the fallback."""
    if not plan.timing.by_zone:
        return _Zones(None, plan.timing.start), 0
    counted = select(staged.c.timezone, func.count()).where(chosen).group_by(staged.c.timezone)
    # One pass over the chunk gives both the zones to compute and how many have none valid.
    counts = {row[0]: row[1] for row in session.execute(counted)}
    by_zone, fallback_due = due_by_zone(plan.timing, counts, plan.fallback_zone)
    fallback = sum(count for zone, count in counts.items() if zone_of(zone) is None)
    return _Zones(by_zone, fallback_due), fallback


def _insert_messages(
    session: Session,
    plan: Plan,
    staged: Table,
    chosen: ColumnElement[bool],
    zones: _Zones,
    chunk_number: int,
    now: dt.datetime,
) -> None:
    campaign, dialect = plan.campaign, session.get_bind().dialect.name
    ids = staged.c.id
    chunk = _base32(chunk_number, 6)
    floor = now + RELEASE_MARGIN
    source: Any = staged
    if zones.by_zone is None:
        prefix: ColumnElement[str] = literal(_prefix(campaign, chunk, zones.fallback, floor), String)
        deadline: ColumnElement[dt.datetime] = literal(zones.fallback + plan.deadline, UTCDateTime())
    else:
        table = _zone_table(dialect, campaign, chunk, zones, floor, plan.deadline)
        source = staged.outerjoin(table, table.c.tz == staged.c.timezone)
        prefix = func.coalesce(table.c.prefix, literal(_prefix(campaign, chunk, zones.fallback, floor), String))
        deadline = func.coalesce(table.c.deadline, literal(zones.fallback + plan.deadline, UTCDateTime()))
    number = func.row_number().over(order_by=ids)
    digits = func.lpad(number.cast(String), 5, "0") if dialect == "postgresql" else func.printf("%05d", number)
    columns = _columns(session, plan, ids, now) | {"id": prefix + digits, "deadline_at": deadline}
    rows = select(*columns.values()).select_from(source).where(chosen)
    statement = _insert(session, _m).from_select(list(columns), rows, include_defaults=False)
    # Only the send key may conflict: an id collision must fail loudly, never drop a recipient.
    session.execute(statement.on_conflict_do_nothing(index_elements=["workspace_id", "send_key"]))


def _columns(session: Session, plan: Plan, ids: ColumnElement[str], now: dt.datetime) -> dict[str, Any]:
    """Every column of a campaign message but its id and deadline, as SQL expressions."""
    campaign = plan.campaign
    variant = _variant_case(session, plan, ids)
    json = JSONType

    def by_variant(pick: Any, type_: Any) -> Any:
        whens = [(variant == v.key, literal(pick(v), type_)) for v in plan.variants]
        return case(*whens, else_=literal(pick(plan.variants[0]), type_))

    constant = {
        "workspace_id": literal(campaign.workspace_id, String),
        "profile_id": ids,
        "source": literal("campaign", String),
        "send_key": literal(f"campaign:{campaign.id}:", String) + ids,
        "category": literal(campaign.category, String),
        "topic": literal(campaign.topic, String),
        "template_version_id": by_variant(lambda v: v.template_version_id, String),
        "template_key": by_variant(lambda v: v.template, String),
        "template_version": by_variant(lambda v: v.template_version, Integer),
        "allowed_channels": literal(campaign.channels, json) if campaign.channels else None,
        "failed_channels": literal([], json),
        "data": literal(campaign.data or {}, json),
        "track": literal(True, Boolean),
        "route": literal([], json),
        "status": literal(str(MessageStatus.QUEUED), String),
        "claims": literal(0, Integer),
        "created_at": literal(now, UTCDateTime()),
        "updated_at": literal(now, UTCDateTime()),
        "campaign_id": literal(campaign.id, String),
        "variant": variant,
    }
    return {name: value for name, value in constant.items() if value is not None}


def _variant_case(session: Session, plan: Plan, ids: ColumnElement[str]) -> Any:
    """The variant of a profile: the winner for the rest of an A/B test, else by weight on a hash."""
    if plan.winner is not None:
        return literal(plan.winner, String)
    if len(plan.variants) == 1:
        return literal(plan.variants[0].key, String)
    total = sum(v.weight for v in plan.variants)
    position = bucket(session, _salts(plan.campaign)[2], ids)
    whens, upto = [], 0.0
    for variant in plan.variants[:-1]:
        upto += variant.weight
        whens.append((position < int(round(upto / total * BUCKETS)), literal(variant.key, String)))
    return case(*whens, else_=literal(plan.variants[-1].key, String))


def _zone_table(
    dialect: str, campaign: Campaign, chunk: str, zones: _Zones, floor: dt.datetime, deadline: dt.timedelta
) -> Any:
    """``(tz, prefix, deadline)`` for every valid zone of the chunk, as an inline table."""
    assert zones.by_zone is not None
    rows = [(name, _prefix(campaign, chunk, due, floor), due + deadline) for name, due in sorted(zones.by_zone.items())]
    if not rows:
        rows = [("", _prefix(campaign, chunk, zones.fallback, floor), zones.fallback + deadline)]
    if dialect == "postgresql":
        columns = (
            column("tz", String),
            column("prefix", String),
            column("deadline", UTCDateTime()),
        )
        return values(*columns, name="z").data(rows)
    selects: list[Select[str, str, dt.datetime]] = []
    for name, prefix, due in rows:
        tz, begins = literal(name, String).label("tz"), literal(prefix, String).label("prefix")
        selects.append(select(tz, begins, literal(due, UTCDateTime()).label("deadline")))
    return (union_all(*selects) if len(selects) > 1 else selects[0]).subquery("z")


def _prefix(campaign: Campaign, chunk: str, due: dt.datetime, floor: dt.datetime) -> str:
    """All of a message id but its row number: the due time (not before ``floor``), seed, chunk."""
    return first_id_at("msg", max(due, floor))[:14] + campaign.id_seed + chunk


def _base32(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 32)
        digits.append(_CROCKFORD[rest])
    return "".join(reversed(digits))


def due_of(message_id: str) -> dt.datetime:
    """When a campaign message was due to be released (its id's time part, to the millisecond)."""
    value = 0
    for char in message_id[4:14]:
        value = value * 32 + _CROCKFORD.index(char)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
