"""The Alembic migrations are the schema: one head, and exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from ccm.ingest.partitions import is_partition
from ccm.migrate import heads
from ccm.models import metadata


def test_there_is_exactly_one_head(database_url):
    assert len(heads(database_url)) == 1


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        opts = {
            "compare_type": True,
            "include_name": lambda name, kind, _: not (kind == "table" and is_partition(name)),
        }
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == [], "models changed without a migration: run alembic revision --autogenerate"
