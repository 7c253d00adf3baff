"""conversation.assignee_id: the agent a conversation is assigned to (the web app's inbox)

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("assignee_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            "fk_conversation_assignee_id_app_user", "app_user", ["assignee_id"], ["id"], ondelete="SET NULL"
        )
        # "Mine": one agent's conversations, newest first
        batch.create_index("ix_conversation_workspace_assignee", ["workspace_id", "assignee_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.drop_index("ix_conversation_workspace_assignee")
        batch.drop_constraint("fk_conversation_assignee_id_app_user", type_="foreignkey")
        batch.drop_column("assignee_id")
