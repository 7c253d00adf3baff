"""Alembic migrations for CCM. Run them with ``ccm db upgrade``."""
