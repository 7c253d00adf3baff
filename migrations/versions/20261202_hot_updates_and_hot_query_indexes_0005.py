"""HOT-friendly message updates; indexes for the hot queries

Messages were indexed on ``provider_message_id``, which every delivery sets: each outcome rewrote
every index of the row instead of a heap-only (HOT) update, and full pages left no room for the
new row version anyway. Provider reports now find a message through its delivery attempts
(a partial index on the attempts' provider id), and message and attempt pages keep free space for
the row versions a delivery writes (fill factor; existing pages get it as they are rewritten).
The message list, the list of one profile and the timeline get indexes that match their ORDER
BY. Ends with ANALYZE, so that a database upgraded from a bulk load plans with statistics.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_HAS_ID = sa.text("provider_message_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_message_provider_message_id", table_name="message")
    op.drop_index("ix_message_workspace_profile", table_name="message")
    op.create_index("ix_message_workspace_id", "message", ["workspace_id", "id"])
    op.create_index("ix_message_workspace_profile", "message", ["workspace_id", "profile_id", "id"])
    op.create_index("ix_message_profile_created", "message", ["profile_id", "created_at", "id"])
    op.create_index(
        "ix_delivery_attempt_provider_message_id",
        "delivery_attempt",
        ["provider_message_id"],
        postgresql_where=_HAS_ID,
        sqlite_where=_HAS_ID,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE message SET (fillfactor = 70)")
        op.execute("ALTER TABLE delivery_attempt SET (fillfactor = 90)")
        op.execute("ANALYZE")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery_attempt RESET (fillfactor)")
        op.execute("ALTER TABLE message RESET (fillfactor)")
    op.drop_index("ix_delivery_attempt_provider_message_id", table_name="delivery_attempt")
    op.drop_index("ix_message_profile_created", table_name="message")
    op.drop_index("ix_message_workspace_profile", table_name="message")
    op.drop_index("ix_message_workspace_id", table_name="message")
    op.create_index("ix_message_workspace_profile", "message", ["workspace_id", "profile_id"])
    op.create_index("ix_message_provider_message_id", "message", ["provider_message_id"])
