"""event ingestion: events (monthly partitions on PostgreSQL), message-id dedupe, anonymous ids

``event`` is ``PARTITION BY RANGE (received_at)`` on PostgreSQL, with a default partition and the
partitions of the current month and the next two (the periodic ``ingest.maintain`` keeps making
them ahead). Keys lead with ``workspace_id``; a profile's history (its timeline) is read
through ``(profile_id, occurred_at, id)``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db
from ccm.ingest.partitions import create_ahead

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "event",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("received_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("anonymous_id", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("properties", _JSON, nullable=False),
        sa.Column("context", _JSON, nullable=False),
        sa.Column("notes", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_event_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_event_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "received_at", "id", name=op.f("pk_event")),
        **({"postgresql_partition_by": "RANGE (received_at)"} if postgres else {}),
    )
    op.create_index("ix_event_profile_occurred", "event", ["profile_id", "occurred_at", "id"], unique=False)
    op.create_index("ix_event_workspace_name_occurred", "event", ["workspace_id", "name", "occurred_at"], unique=False)
    if postgres:
        op.execute("CREATE TABLE event_default PARTITION OF event DEFAULT")
        create_ahead(op.get_bind(), dt.datetime.now(dt.UTC).date())

    op.create_table(
        "event_seen",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("seen_at", ccm.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "message_id", name=op.f("pk_event_seen")),
    )
    op.create_index(op.f("ix_event_seen_seen_at"), "event_seen", ["seen_at"], unique=False)

    op.create_table(
        "profile_anonymous_id",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("anonymous_id", sa.String(length=255), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("linked_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_profile_anonymous_id_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "anonymous_id", name=op.f("pk_profile_anonymous_id")),
    )
    op.create_index(op.f("ix_profile_anonymous_id_profile_id"), "profile_anonymous_id", ["profile_id"], unique=False)


def downgrade() -> None:
    op.drop_table("profile_anonymous_id")
    op.drop_table("event_seen")
    op.drop_table("event")  # on PostgreSQL, with every partition
