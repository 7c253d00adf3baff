"""WSGI entry point for production: ``gunicorn 'ccm.wsgi:app'``. Reads ``CCM_*`` settings and
refuses to start on a schema that is not migrated (run ``ccm db upgrade`` first)."""

from ccm.app import create_app
from ccm.config import Settings
from ccm.logs import configure_logging
from ccm.migrate import check_current

settings = Settings.from_env()
configure_logging(settings.log_level)
check_current(settings.resolved_database_url)
app = create_app(settings)
