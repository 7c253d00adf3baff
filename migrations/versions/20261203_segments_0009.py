"""segments: segment (rules or static list), segment_member; indexes the rules read through

A segment's audience is read by SQL compiled from its rules (``ccm.segments.compiler``). Event
conditions go through the existing ``(workspace_id, name, occurred_at)`` index of ``event``;
engagement conditions ("opened in the last 30 days") get ``(workspace_id, kind, occurred_at)``
on ``engagement_event``, and the audience's keyset chunks (``profile.id > :cursor ORDER BY id``
inside one workspace) get ``(workspace_id, id)`` on ``profile``. Every indexed column is one that
never changes once written, so profile rollups and attribute updates stay heap-only (HOT).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segment",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("rules", _JSON, nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_segment_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_segment_workspace_id_name")),
    )
    op.create_table(
        "segment_member",
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("added_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_segment_member_segment_id_segment"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_segment_member_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("segment_id", "profile_id", name=op.f("pk_segment_member")),
    )
    op.create_index(op.f("ix_segment_member_profile_id"), "segment_member", ["profile_id"], unique=False)
    op.create_index(
        "ix_engagement_event_workspace_kind_time", "engagement_event", ["workspace_id", "kind", "occurred_at"]
    )
    op.create_index("ix_profile_workspace_id", "profile", ["workspace_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_profile_workspace_id", table_name="profile")
    op.drop_index("ix_engagement_event_workspace_kind_time", table_name="engagement_event")
    op.drop_table("segment_member")
    op.drop_table("segment")
