"""api_key.last_used_at: when a key (an API key or a write key) last authenticated a request

Written at most about once a minute per key (see :mod:`ccm.auth.usage`), so it is "last used, to
the minute", not a per-request counter.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ccm.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("last_used_at", ccm.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("last_used_at")
