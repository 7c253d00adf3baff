"""one profile index on messages: ix_message_workspace_profile dropped

Every message row updated seven indexes; a campaign's fan-out writes them by the million, and each
index costs CPU and WAL on every insert (this one about 4 µs of PostgreSQL CPU a row, of ~27).
``(workspace_id, profile_id, id)`` served the message list of one profile and the frequency caps;
``ix_message_profile_created`` — ``(profile_id, created_at, id)``, the timeline's — serves both as
well: a profile id belongs to one workspace, and one profile's messages are few enough to sort.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"  # the conversation assignee (0017) was merged first
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_message_workspace_profile", table_name="message")


def downgrade() -> None:
    op.create_index("ix_message_workspace_profile", "message", ["workspace_id", "profile_id", "id"])
