"""identity merge records, merged profiles, group accounts and their members

``profile.merged_into_id`` marks an anonymous profile merged into another (its history moved
there); ``profile_merge`` records each merge and what it moved, so that it can be undone.
``account`` and ``account_member`` hold what Segment ``group`` calls say.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("profile") as batch:
        batch.add_column(sa.Column("merged_into_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_profile_merged_into_id_profile"), "profile", ["merged_into_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index(batch.f("ix_profile_merged_into_id"), ["merged_into_id"], unique=False)

    op.create_table(
        "profile_merge",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("call", _JSON, nullable=False),
        sa.Column("moved", _JSON, nullable=False),
        sa.Column("source_before", _JSON, nullable=False),
        sa.Column("target_before", _JSON, nullable=False),
        sa.Column("merged_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("reverted_at", ccm.db.UTCDateTime(), nullable=True),
        sa.Column("reverted_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["profile.id"], name=op.f("fk_profile_merge_source_id_profile"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["profile.id"], name=op.f("fk_profile_merge_target_id_profile"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_profile_merge_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_merge")),
    )
    op.create_index(op.f("ix_profile_merge_source_id"), "profile_merge", ["source_id"], unique=False)
    op.create_index("ix_profile_merge_target_merged", "profile_merge", ["target_id", "merged_at", "id"], unique=False)

    op.create_table(
        "account",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("traits", _JSON, nullable=False),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_account_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "group_id", name=op.f("pk_account")),
    )
    op.create_table(
        "account_member",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("joined_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_account_member_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "group_id", "profile_id", name=op.f("pk_account_member")),
    )
    op.create_index(op.f("ix_account_member_profile_id"), "account_member", ["profile_id"], unique=False)


def downgrade() -> None:
    op.drop_table("account_member")
    op.drop_table("account")
    op.drop_table("profile_merge")
    with op.batch_alter_table("profile") as batch:
        batch.drop_index(batch.f("ix_profile_merged_into_id"))
        batch.drop_constraint(batch.f("fk_profile_merged_into_id_profile"), type_="foreignkey")
        batch.drop_column("merged_into_id")
