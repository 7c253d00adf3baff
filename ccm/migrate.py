"""Schema migrations (Alembic), run by ``ccm db upgrade`` and by ``ccm serve`` on SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(slug)s_%%(rev)s")
    return config


@dataclass(frozen=True)
class Upgraded:
    """What ``upgrade`` did: the revisions applied, oldest first, from ``before`` to ``after``."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]

    def describe(self) -> str:
        if not self.applied:
            return f"already up to date (at {self.after or 'an empty schema'})"
        count = len(self.applied)
        return f"applied {count} migration{'s' if count > 1 else ''}: {self.before or '(empty)'} → {self.after}"


def upgrade(url: str, revision: str = "head") -> Upgraded:
    """Apply every migration up to ``revision``."""
    before = current(url)
    command.upgrade(alembic_config(url), revision)
    after = current(url)
    if before == after:
        return Upgraded(before, after, ())
    script = ScriptDirectory.from_config(alembic_config(url))
    applied = [rev.revision for rev in script.iterate_revisions(after, before)]
    return Upgraded(before, after, tuple(reversed(applied)))


def new_revision(url: str, message: str) -> str:
    """Autogenerate a migration file; returns its path."""
    script = command.revision(alembic_config(url), message=message, autogenerate=True)
    return str(script.path) if script is not None and not isinstance(script, list) else ""


def heads(url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def check_current(url: str) -> None:
    """Refuse to run on a schema that is not at the latest migration."""
    at, wanted = current(url), heads(url)
    if at not in wanted:
        raise RuntimeError(
            f"the database schema is at {at or 'nothing'}, not {', '.join(wanted)}: run `ccm db upgrade`"
        )
