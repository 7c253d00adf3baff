"""users of the web app: app_user, user_session, login_failure

Revision ID: 0015
Revises: 0016
Create Date: 2026-12-03 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ccm.db

revision = "0015"
down_revision = "0016"  # the audit log (0016) was merged before this; the brief said 0011
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("disabled_at", ccm.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_key"),
    )
    op.create_index("ix_app_user_workspace_id", "app_user", ["workspace_id"])
    op.create_table(
        "user_session",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", ccm.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index("ix_user_session_user_id", "user_session", ["user_id"])
    op.create_table(
        "login_failure",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=400), nullable=False),
        sa.Column("at", ccm.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failure_scope_at", "login_failure", ["scope", "at"])


def downgrade() -> None:
    op.drop_table("login_failure")
    op.drop_table("user_session")
    op.drop_table("app_user")
