"""triggers: trigger, its immutable versions, its firings; message.triggered_by

A firing that may still be cancelled is found through a partial index on
``(workspace_id, profile_id, cancel_event) WHERE status = 'pending'``; the periodic
``triggers.release`` moves firings out of it once they are due (``(due_at) WHERE pending``).
``message.triggered_by`` is a nullable JSON column: adding it rewrites nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.add_column("message", sa.Column("triggered_by", _JSON, nullable=True))
    op.create_table(
        "trigger",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_trigger_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_trigger_workspace_id_key")),
    )
    op.create_table(
        "trigger_version",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("filters", _JSON, nullable=False),
        sa.Column("template_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=True),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("channels", _JSON, nullable=True),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("cancel_event", sa.String(length=200), nullable=True),
        sa.Column("cancel_match_property", sa.String(length=400), nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["trigger.id"], name=op.f("fk_trigger_version_trigger_id_trigger"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_version")),
        sa.UniqueConstraint("trigger_id", "version", name=op.f("uq_trigger_version_trigger_id_version")),
    )
    op.create_table(
        "trigger_fire",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("trigger_version_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("event_message_id", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("due_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("cancel_event", sa.String(length=200), nullable=True),
        sa.Column("cancel_match", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_trigger_fire_message_id_message"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_trigger_fire_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["trigger.id"], name=op.f("fk_trigger_fire_trigger_id_trigger"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trigger_version_id"],
            ["trigger_version.id"],
            name=op.f("fk_trigger_fire_trigger_version_id_trigger_version"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_trigger_fire_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_fire")),
        sa.UniqueConstraint(
            "trigger_version_id",
            "event_message_id",
            name=op.f("uq_trigger_fire_trigger_version_id_event_message_id"),
        ),
    )
    op.create_index(op.f("ix_trigger_fire_message_id"), "trigger_fire", ["message_id"], unique=False)
    op.create_index(op.f("ix_trigger_fire_profile_id"), "trigger_fire", ["profile_id"], unique=False)
    op.create_index("ix_trigger_fire_trigger", "trigger_fire", ["trigger_id", "id"], unique=False)
    op.create_index(
        "ix_trigger_fire_pending_cancel",
        "trigger_fire",
        ["workspace_id", "profile_id", "cancel_event"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_trigger_fire_pending_due",
        "trigger_fire",
        ["due_at"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_table("trigger_fire")
    op.drop_table("trigger_version")
    op.drop_table("trigger")
    op.drop_column("message", "triggered_by")
