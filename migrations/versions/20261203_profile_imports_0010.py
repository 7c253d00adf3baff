"""profile imports: import_job, its file in import_chunk, its row report in import_row_error

An import keeps its file in the database (parsed rows, in ordered chunks keyed by the index of
their first row) so that any worker can run it and a later one resume it from
``import_job.checkpoint``. New tables only: nothing existing is rewritten.

Revision ID: 0010
Revises: 0008 (0009, the segments migration, once merged)
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ccm.db

revision = "0010"
# The coordinator re-chains this after 0009 (segments) at merge; in this clone it follows 0008.
down_revision = "0009"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("encoding", sa.String(length=20), nullable=False),
        sa.Column("delimiter", sa.String(length=4), nullable=False),
        sa.Column("header", _JSON, nullable=False),
        sa.Column("mapping", _JSON, nullable=False),
        sa.Column("consent_source", sa.String(length=200), nullable=True),
        sa.Column("chunk_rows", sa.Integer(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", ccm.db.UTCDateTime(), nullable=False),
        sa.Column("started_at", ccm.db.UTCDateTime(), nullable=True),
        sa.Column("finished_at", ccm.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", ccm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_import_job_workspace_id_workspace"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
    )
    op.create_index("ix_import_job_workspace", "import_job", ["workspace_id", "id"], unique=False)
    op.create_table(
        "import_chunk",
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("start", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("rows", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["import_job.id"], name=op.f("fk_import_chunk_import_id_import_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("import_id", "start", name=op.f("pk_import_chunk")),
    )
    op.create_table(
        "import_row_error",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("column_name", sa.String(length=255), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["import_job.id"], name=op.f("fk_import_row_error_import_id_import_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_row_error")),
    )
    op.create_index("ix_import_row_error_import", "import_row_error", ["import_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_import_row_error_import", table_name="import_row_error")
    op.drop_table("import_row_error")
    op.drop_table("import_chunk")
    op.drop_index("ix_import_job_workspace", table_name="import_job")
    op.drop_table("import_job")
