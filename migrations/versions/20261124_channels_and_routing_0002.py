"""channels and routing: provider accounts, consent ledger, suppression, fallback

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 23:09:40.245472
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ccm.db
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "settings", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("sealed_secrets", sa.Text(), nullable=False),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_provider_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider")),
        sa.UniqueConstraint("workspace_id", "label", name=op.f("uq_provider_workspace_id_label")),
    )
    with op.batch_alter_table("provider", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "suppression",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_suppression_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression")),
        sa.UniqueConstraint(
            "workspace_id", "channel", "address_hash", name=op.f("uq_suppression_workspace_id_channel_address_hash")
        ),
    )
    op.create_table(
        "consent_record",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column(
            "proof", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("recorded_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_consent_record_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_consent_record_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_record_profile_channel", ["profile_id", "channel", "recorded_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consent_record_workspace_id"), ["workspace_id"], unique=False)

    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "hops",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pinned_account", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column(
                "allowed_channels",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "failed_channels",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )

    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "preferences",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'{}'"),
            )
        )

    # The channel order moved into the workspace's policy (settings JSON).
    with op.batch_alter_table("workspace", schema=None) as batch_op:
        batch_op.drop_column("channel_order")


def downgrade() -> None:
    with op.batch_alter_table("workspace", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "channel_order", sa.JSON(), nullable=False, server_default=sa.text('\'["email", "sms", "chat"]\'')
            )
        )

    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_column("preferences")

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("failed_channels")
        batch_op.drop_column("allowed_channels")
        batch_op.drop_column("pinned_account")
        batch_op.drop_column("segments")

    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_column("hops")

    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_record_workspace_id"))
        batch_op.drop_index("ix_consent_record_profile_channel")

    op.drop_table("consent_record")
    op.drop_table("suppression")
    with op.batch_alter_table("provider", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_workspace_id"))

    op.drop_table("provider")
