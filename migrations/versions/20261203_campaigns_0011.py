"""campaigns: campaign, its variants and holdout; message.campaign_id and message.variant

A campaign's messages are found through a partial index on ``message (campaign_id, id) WHERE
campaign_id IS NOT NULL``: only campaign messages are in it, and both columns are written once
with the row, so deliveries' updates stay HOT. Adding two nullable columns rewrites nothing. The index on
``message.conversation_id`` becomes partial (``WHERE conversation_id IS NOT NULL``) likewise.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_CAMPAIGN = sa.text("campaign_id IS NOT NULL")
_CONVERSATION = sa.text("conversation_id IS NOT NULL")


def _campaign_columns() -> list[sa.Column[object]]:
    def when(name: str) -> sa.Column[object]:
        return sa.Column(name, ccm.db.UTCDateTime(), nullable=True)

    return [
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("channels", _JSON, nullable=True),
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("schedule", _JSON, nullable=False),
        sa.Column("calendar", _JSON, nullable=True),
        sa.Column("throttle_per_second", sa.Double(), nullable=True),
        sa.Column("deadline_seconds", sa.Integer(), nullable=True),
        sa.Column("holdout_percent", sa.Double(), nullable=False),
        sa.Column("ab_test", _JSON, nullable=True),
        sa.Column("goal", _JSON, nullable=True),
        sa.Column("data", _JSON, nullable=False),
        when("due_at"),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.Column("fanout_phase", sa.String(length=20), nullable=False),
        sa.Column("fanout_cursor", sa.String(length=32), nullable=True),
        sa.Column("fanout_chunks", sa.Integer(), nullable=False),
        when("fanout_started_at"),
        when("sample_done_at"),
        sa.Column("release_cursor", sa.String(length=32), nullable=True),
        sa.Column("previous_cursor", sa.String(length=32), nullable=True),
        sa.Column("settled_cursor", sa.String(length=32), nullable=True),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("release_rate", sa.Double(), nullable=True),
        sa.Column("throttled_by_provider", sa.Integer(), nullable=False),
        sa.Column("fallback_timezone_count", sa.Integer(), nullable=False),
        sa.Column("holdout_count", sa.Integer(), nullable=False),
        when("tick_at"),
        sa.Column("id_seed", sa.String(length=8), nullable=False),
        sa.Column("counts", _JSON, nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        when("launched_at"),
        when("started_at"),
        when("completed_at"),
        when("cancelled_at"),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "campaign",
        *_campaign_columns(),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_campaign_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
    )
    op.create_index("ix_campaign_workspace", "campaign", ["workspace_id", "id"], unique=False)
    op.create_index("ix_campaign_status", "campaign", ["status"], unique=False)
    op.create_table(
        "campaign_variant",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=False),
        sa.Column("template_version_id", sa.String(length=32), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_campaign_variant_campaign_id_campaign"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["template_version_id"],
            ["template_version.id"],
            name=op.f("fk_campaign_variant_template_version_id_template_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_variant")),
        sa.UniqueConstraint("campaign_id", "key", name=op.f("uq_campaign_variant_campaign_id_key")),
    )
    op.create_table(
        "campaign_holdout",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("added_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_campaign_holdout_campaign_id_campaign"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_campaign_holdout_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "profile_id", name=op.f("pk_campaign_holdout")),
    )
    op.create_index(op.f("ix_campaign_holdout_profile_id"), "campaign_holdout", ["profile_id"], unique=False)
    op.add_column("message", sa.Column("campaign_id", sa.String(length=32), nullable=True))
    op.add_column("message", sa.Column("variant", sa.String(length=20), nullable=True))
    op.create_index(
        "ix_message_campaign",
        "message",
        ["campaign_id", "id"],
        unique=False,
        postgresql_where=_CAMPAIGN,
        sqlite_where=_CAMPAIGN,
    )
    # Only a support follow-up has a conversation: indexed whole, every campaign message would
    # write a NULL entry (one index of the seven a fan-out's insert updates per row).
    op.drop_index("ix_message_conversation_id", table_name="message")
    op.create_index(
        "ix_message_conversation_id",
        "message",
        ["conversation_id"],
        unique=False,
        postgresql_where=_CONVERSATION,
        sqlite_where=_CONVERSATION,
    )


def downgrade() -> None:
    op.drop_index("ix_message_conversation_id", table_name="message")
    op.create_index("ix_message_conversation_id", "message", ["conversation_id"], unique=False)
    op.drop_index("ix_message_campaign", table_name="message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("variant")
        batch.drop_column("campaign_id")
    op.drop_table("campaign_holdout")
    op.drop_table("campaign_variant")
    op.drop_table("campaign")
