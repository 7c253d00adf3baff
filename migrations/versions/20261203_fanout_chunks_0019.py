"""fan-out lanes: campaign_fanout_chunk, the chunks claimed and not yet written

A campaign's fan-out ran one chunk at a time on one connection, holding the campaign's row lock
for the whole chunk, so one PostgreSQL backend (one core) did all the work. Lanes claim chunks
(a profile-id range each) one after another under that lock, which they then release, and write
them on their own connections in parallel; a claimed chunk is a row here until the transaction
that writes its messages deletes it, so a crash leaves exactly the chunks to write again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_fanout_chunk",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("after", sa.String(length=32), nullable=False),
        sa.Column("upto", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_campaign_fanout_chunk_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "number", name=op.f("pk_campaign_fanout_chunk")),
    )


def downgrade() -> None:
    op.drop_table("campaign_fanout_chunk")
