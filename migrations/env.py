"""Alembic environment: the URL comes from the Config object built by ``ccm.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ccm.ingest.partitions import is_partition
from ccm.models import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=_not_a_partition,
    )
    with context.begin_transaction():
        context.run_migrations()


def _not_a_partition(name, type_, parent_names) -> bool:  # type: ignore[no-untyped-def]
    """``event``'s monthly partitions are made by the workers, not described by the models."""
    return not (type_ == "table" and is_partition(name))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
