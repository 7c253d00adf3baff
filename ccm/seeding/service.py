"""Seeding a workspace with N made-up profiles (:mod:`ccm.seeding.people`), chunk by chunk.

Each chunk of profiles is generated in Python and written in one transaction: on PostgreSQL with
``COPY … FROM STDIN`` per table (psycopg's ``cursor.copy``: no statement per row, no parameter
parsing), on SQLite with one ``executemany`` per table. Memory holds one chunk at a time, so it
stays flat whatever N is; the caller's progress bar advances per chunk. A workspace that already
has profiles is refused: seeding adds people, it never mixes them with real ones or doubles them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Connection, func, select, text
from sqlalchemy.orm import Session

from ccm.consent.models import ConsentRecord
from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.errors import Conflict
from ccm.ingest.models import Event
from ccm.message_templates.models import MessageTemplate
from ccm.message_templates.schemas import TemplateIn
from ccm.message_templates.service import create_template, publish
from ccm.profiles.models import Profile
from ccm.runtime import Runtime
from ccm.seeding.people import CONSTANTS, TABLES, Chunk, Rows
from ccm.suppression.models import Suppression
from ccm.workspaces.schemas import WorkspacePatch, WorkspacePolicy
from ccm.workspaces.service import get_or_create_workspace, update_workspace

_TABLES = {
    model.__tablename__: model.__table__ for model in (Profile, ConsentRecord, Suppression, Event, EngagementEvent)
}

CHUNK = 10_000
"""Profiles per transaction (and per step of the progress bar)."""
SAMPLE_ADDRESS = "CCM Seed Inc., 500 Example Avenue, Springfield, IL 62701, USA"
"""The seeded workspace's postal address: made up like its people (real workspaces set their own)."""
TEMPLATE_KEY = "seed-newsletter"
NEWSLETTER = {
    "key": TEMPLATE_KEY,
    "category": "marketing",
    "description": "A monthly newsletter (made by ccm seed)",
    "variables": ["first_name"],
    "variants": [
        {
            "channel": "email",
            "locale": "en",
            "subject": "{{ first_name }}, what is new this month",
            "html": "<h1>Hi {{ first_name }}</h1><p>Here is what happened this month.</p>"
            '<p><a href="https://shop.example.com/new">See what is new</a></p>',
        },
        {"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}, new this month: https://shop.example.com/new"},
    ],
}


@dataclass
class Seeded:
    """What a seed run wrote."""

    workspace_id: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    seconds: float = 0.0


def seed_workspace(
    runtime: Runtime,
    *,
    workspace: str,
    profiles: int,
    events_per_profile: int = 4,
    seed: int = 1,
    progress: Callable[[int], None] = lambda done: None,
) -> Seeded:
    """Create (or fill an empty) workspace with ``profiles`` made-up people, their consent,
    suppressions, events and engagement, a published marketing template and a postal address.
    ``progress`` is called with the number of profiles written after each chunk.

    Raises:
      Conflict: the workspace has profiles already (nothing is written).
    """
    started = time.perf_counter()
    with runtime.db.unit_of_work() as session:
        workspace_id = _prepared_workspace(session, runtime, workspace)
    seeded, now = Seeded(workspace_id), utcnow()
    chunks = [
        Chunk(workspace_id, seed, start, min(CHUNK, profiles - start), events_per_profile, now)
        for start in range(0, profiles, CHUNK)
    ]
    # The next chunk is made while this one is written: the database works meanwhile, and the
    # thread making rows gets the interpreter while the writer waits for it.
    with ThreadPoolExecutor(max_workers=1) as maker:
        made = maker.submit(chunks[0].rows) if chunks else None
        for index, chunk in enumerate(chunks):
            assert made is not None
            rows = made.result()
            made = maker.submit(chunks[index + 1].rows) if index + 1 < len(chunks) else None
            with runtime.db.engine.begin() as connection:
                write(connection, rows)
            for name, table_rows in rows.tables().items():
                seeded.counts[name] += len(table_rows)
            progress(chunk.count)
    with runtime.db.engine.begin() as connection:
        analyze(connection)
    seeded.seconds = time.perf_counter() - started
    return seeded


def _prepared_workspace(session: Session, runtime: Runtime, name: str) -> str:
    workspace, _ = get_or_create_workspace(session=session, name=name)
    existing = session.scalar(select(func.count()).select_from(Profile).where(Profile.workspace_id == workspace.id))
    if existing:
        raise Conflict(
            f"workspace {name!r} has {existing:,} profiles already; seed a new one with --workspace",
            field="workspace",
        )
    policy = WorkspacePolicy.model_validate({"postal_address": SAMPLE_ADDRESS, "timezone": "America/New_York"})
    update_workspace(session=session, workspace_id=workspace.id, data=WorkspacePatch(policy=policy))
    if not _has_template(session, workspace.id):
        data = TemplateIn.model_validate(NEWSLETTER)
        create_template(session=session, sandbox=runtime.sandbox, workspace_id=workspace.id, data=data)
        publish(session=session, sandbox=runtime.sandbox, workspace_id=workspace.id, key=TEMPLATE_KEY)
    return workspace.id


def _has_template(session: Session, workspace_id: str) -> bool:
    found = select(MessageTemplate.id).where(
        MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == TEMPLATE_KEY
    )
    return session.execute(found).first() is not None


def write(connection: Connection, rows: Rows) -> None:
    """Write one chunk's rows, table by table (profiles first)."""
    if connection.dialect.name == "postgresql":  # a crash may lose the last chunks, never half of one
        connection.execute(text("SET LOCAL synchronous_commit = off"))
    for name, table_rows in rows.tables().items():
        if not table_rows:
            continue
        if connection.dialect.name == "postgresql":
            _copy(connection, name, table_rows)
        else:
            connection.execute(_TABLES[name].insert(), table_rows)


def _copy(connection: Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """``COPY name (columns) FROM STDIN``: JSON as text, times as naive UTC (see UTCDateTime)."""
    table = _TABLES[name]
    columns = list(rows[0])
    as_json = [isinstance(table.c[column].type, JSON) for column in columns]
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_value(row[c], j) for c, j in zip(columns, as_json, strict=True)])


_CONSTANT_JSON = {id(value): json.dumps(value) for value in CONSTANTS}


def _value(value: Any, as_json: bool) -> Any:
    if as_json:
        known = _CONSTANT_JSON.get(id(value))
        return known if known is not None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, dt.datetime):  # made in UTC (people.py): the offset only goes
        return value.replace(tzinfo=None)
    return value


def analyze(connection: Connection) -> None:
    """Fresh planner statistics for the seeded tables (PostgreSQL; SQLite's planner needs none)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"ANALYZE {', '.join(TABLES)}"))
