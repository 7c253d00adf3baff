"""One chunk of an import's rows, written with a few set-based statements: one lookup of the
profiles the chunk names (by external id, then email, then phone), one multi-row insert of new
profiles, one executemany update of changed ones, one insert of consent records and one of
report lines. The caller commits them with the new checkpoint, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ARRAY, Row, Select, String, any_, bindparam, select, update
from sqlalchemy.orm import Session

from ccm.consent.service import latest_statuses, record_many
from ccm.db import dialect_of, insert_many, utcnow
from ccm.ids import new_id
from ccm.imports.models import ImportRowError
from ccm.imports.rows import RowError, RowValues, read_row
from ccm.profiles.models import Profile

_PROFILE = Profile.__table__
_ERRORS = ImportRowError.__table__
_LOOKED_UP = (
    _PROFILE.c.id,
    _PROFILE.c.external_id,
    _PROFILE.c.email,
    _PROFILE.c.phone,
    _PROFILE.c.timezone,
    _PROFILE.c.locale,
    _PROFILE.c.attributes,
)
_UPDATE = (
    update(_PROFILE)
    .where(_PROFILE.c.id == bindparam("b_id"))
    .values(
        email=bindparam("b_email"),
        phone=bindparam("b_phone"),
        timezone=bindparam("b_timezone"),
        locale=bindparam("b_locale"),
        attributes=bindparam("b_attributes"),
        updated_at=bindparam("b_now"),
    )
)
_CONTACT = ("email", "phone", "timezone", "locale")
MAX_REPORTED_VALUE = 1000


@dataclass(frozen=True)
class ImportContext:
    """What every chunk of one import reads its rows with."""

    import_id: str
    workspace_id: str
    filename: str
    header: list[str]
    mapping: dict[str, str]
    region: str
    consent_source: str | None


@dataclass
class ChunkCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _Writes:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)


def apply_chunk(session: Session, context: ImportContext, rows: list[list[Any]]) -> ChunkCounts:
    """Write what ``rows`` (``[row number, cells, duplicate of]``) say; the counts and report lines."""
    counts, valid = _read(context, rows)
    found = _existing(session, context.workspace_id, valid)
    statuses = latest_statuses(session=session, profile_ids={row.id for row in found.values()})
    writes, touched, now = _Writes(), dict[str, int](), utcnow()
    for values in valid:
        current = found.get(values.row)
        if current is not None and current.id in touched:
            counts.duplicate += 1
            counts.errors.append(RowError(values.row, None, None, f"duplicate of row {touched[current.id]}"))
            continue
        profile_id = current.id if current is not None else new_id("prf")
        touched[profile_id] = values.row
        changed = _plan_profile(writes, context, values, current, profile_id, now)
        consented = _plan_consents(writes, context, values, profile_id, statuses)
        if current is None:
            counts.created += 1
        elif changed or consented:
            counts.updated += 1
        else:
            counts.unchanged += 1
    _write(session, context, writes, counts.errors)
    return counts


def _read(context: ImportContext, rows: list[list[Any]]) -> tuple[ChunkCounts, list[RowValues]]:
    counts, valid = ChunkCounts(), []
    for number, cells, duplicate_of in rows:
        if duplicate_of is not None:
            counts.duplicate += 1
            counts.errors.append(RowError(number, None, None, f"duplicate of row {duplicate_of}"))
            continue
        values, errors = read_row(number, cells, context.header, context.mapping, context.region)
        if values is None:
            counts.invalid += 1
            counts.errors.extend(errors)
        else:
            valid.append(values)
    return counts, valid


def _existing(session: Session, workspace_id: str, valid: list[RowValues]) -> dict[int, Row[Any]]:
    """The profile each row matches, by row number: its external id's, else (for a row without
    one) the first live profile with its email, else with its phone."""
    found: dict[int, Row[Any]] = {}
    by_id = _lookup(session, workspace_id, _PROFILE.c.external_id, [v.external_id for v in valid if v.external_id])
    for values in valid:
        if values.external_id and values.external_id in by_id:
            found[values.row] = by_id[values.external_id]
    for name in ("email", "phone"):
        rest = [v for v in valid if not v.external_id and v.row not in found and v.fields.get(name)]
        matches = _lookup(session, workspace_id, _PROFILE.c[name], [v.fields[name] for v in rest])
        keys = {v.row: v.fields[name].lower() if name == "email" else v.fields[name] for v in rest}
        found.update({row: matches[key] for row, key in keys.items() if key in matches})
    return found


def _lookup(session: Session, workspace_id: str, column: Any, keys: list[str]) -> dict[str, Row[Any]]:
    """Profiles by ``column`` value (an email by its lower-case form: both forms are looked up,
    so the index serves and ``Ann@x.com`` still finds ``ann@x.com``), the oldest first."""
    if not keys:
        return {}
    fold = column is _PROFILE.c.email
    wanted = set(keys) | {key.lower() for key in keys} if fold else set(keys)
    matching = among(column, dialect_of(session))
    statement: Select[Any] = select(*_LOOKED_UP).where(_PROFILE.c.workspace_id == workspace_id, matching)
    if column is not _PROFILE.c.external_id:  # an address: never a merged profile's tombstone
        statement = statement.where(_PROFILE.c.merged_into_id.is_(None))
    first: dict[str, Row[Any]] = {}
    for row in session.execute(statement.order_by(_PROFILE.c.id), {"keys": list(wanted)}):
        value = getattr(row, column.name)
        first.setdefault(value.lower() if fold else value, row)
    return first


def among(column: Any, dialect: str) -> Any:
    """``column IN (:keys)``: one array parameter on PostgreSQL (one prepared statement whatever
    the count, which the driver need not parse again), an expanding list on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam("keys", type_=ARRAY(String)))
    return column.in_(bindparam("keys", expanding=True))


def _plan_profile(
    writes: _Writes, context: ImportContext, values: RowValues, current: Row[Any] | None, profile_id: str, now: Any
) -> bool:
    """Queue the insert or update the row needs; whether the profile changes."""
    if current is None:
        writes.inserts.append(_new_profile(context.workspace_id, profile_id, values, now))
        return True
    contact = {name: values.fields.get(name, getattr(current, name)) for name in _CONTACT}
    attributes = {**(current.attributes or {}), **values.attributes}
    if all(contact[name] == getattr(current, name) for name in _CONTACT) and attributes == current.attributes:
        return False
    writes.updates.append(
        {
            "b_id": profile_id,
            **{f"b_{name}": value for name, value in contact.items()},
            "b_attributes": attributes,
            "b_now": now,
        }
    )
    return True


def _new_profile(workspace_id: str, profile_id: str, values: RowValues, now: Any) -> dict[str, Any]:
    return {
        "id": profile_id,
        "workspace_id": workspace_id,
        "external_id": values.external_id,
        **{name: values.fields.get(name) for name in _CONTACT},
        "chat": {},
        "attributes": values.attributes,
        "channels": [],
        "preferences": {},
        "engagement": {},
        "engagement_score": 0.0,
        "best_channel": None,
        "merged_into_id": None,
        "created_at": now,
        "updated_at": now,
    }


def _plan_consents(
    writes: _Writes,
    context: ImportContext,
    values: RowValues,
    profile_id: str,
    statuses: dict[tuple[str, str, str], str],
) -> bool:
    """Queue the consent decisions the row makes that differ from the profile's current ones."""
    made = False
    for channel, topic, status, column in values.consents:
        if statuses.get((profile_id, channel, topic)) == status:
            continue
        statuses[(profile_id, channel, topic)] = status
        proof = {"import_id": context.import_id, "file": context.filename, "row": values.row, "column": column}
        if context.consent_source:
            proof["consent_source"] = context.consent_source
        writes.consents.append(
            {
                "profile_id": profile_id,
                "channel": channel,
                "topic": topic,
                "status": status,
                "source": "import",
                "proof": proof,
            }
        )
        made = True
    return made


def _write(session: Session, context: ImportContext, writes: _Writes, errors: list[RowError]) -> None:
    connection = session.connection()
    if writes.inserts:
        insert_many(connection, _PROFILE, writes.inserts, ignoring=False)
    if writes.updates:
        session.execute(_UPDATE, writes.updates)
    record_many(session=session, workspace_id=context.workspace_id, records=writes.consents, actor=context.import_id)
    if errors:
        rows = [
            {
                "import_id": context.import_id,
                "row_number": error.row,
                "column_name": error.column,
                "value": None if error.value is None else error.value[:MAX_REPORTED_VALUE],
                "reason": error.reason,
            }
            for error in errors
        ]
        insert_many(connection, _ERRORS, rows, ignoring=False)
