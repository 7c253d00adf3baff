"""Actors of the imports domain."""

from __future__ import annotations

from ccm.imports.service import RUN, run_import
from ccm.runtime import Runtime

__all__ = ["RUN", "run"]


def run(runtime: Runtime, import_id: str) -> None:
    """Take the import's chunks for a while (less than the job's lease), then publish it again
    to go on; a paused, cancelled or finished import ends its job."""
    settings = runtime.settings
    run_import(runtime.db, import_id, grace=settings.relay_grace, budget=min(30.0, settings.claim_timeout / 2))
