"""Logging set-up for the CLI, the WSGI app and the workers."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("dramatiq", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
