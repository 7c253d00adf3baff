"""The admin screens (``/admin/…``, admins only): users, provider accounts, API keys, the audit
log, the workspace's settings and its webhooks.

One blueprint; each area's views live in its own ``admin_<area>`` module and are routed here, in
one table, so the whole admin surface reads at a glance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import redirect, url_for
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.web import admin_audit, admin_keys, admin_providers, admin_users, admin_webhooks, admin_workspace
from ccm.web.pages import screen
from ccm.web.security import requires

bp = screen("admin", __name__, url_prefix="/admin")


@requires(Permission.ADMIN)
def index() -> Response:
    return redirect(url_for("web_admin.users"))


ROUTES: tuple[tuple[str, str, str, Callable[..., Any]], ...] = (
    ("GET", "/", "index", index),
    ("GET", "/users", "users", admin_users.index),
    ("POST", "/users", "user_create", admin_users.create),
    ("POST", "/users/<user_id>/role", "user_role", admin_users.role),
    ("POST", "/users/<user_id>/disable", "user_disable", admin_users.disable),
    ("POST", "/users/<user_id>/enable", "user_enable", admin_users.enable),
    ("GET", "/providers", "providers", admin_providers.index),
    ("GET", "/providers/new", "provider_new", admin_providers.new),
    ("POST", "/providers", "provider_create", admin_providers.create),
    ("GET", "/providers/<account_id>", "provider_edit", admin_providers.edit),
    ("POST", "/providers/<account_id>", "provider_update", admin_providers.update),
    ("POST", "/providers/<account_id>/check", "provider_check", admin_providers.check),
    ("POST", "/providers/<account_id>/enable", "provider_enable", admin_providers.enable),
    ("POST", "/providers/<account_id>/disable", "provider_disable", admin_providers.disable),
    ("GET", "/providers/<account_id>/delete", "provider_delete_confirm", admin_providers.confirm_delete),
    ("POST", "/providers/<account_id>/delete", "provider_delete", admin_providers.delete),
    ("GET", "/keys", "keys", admin_keys.index),
    ("POST", "/keys", "key_create", admin_keys.create),
    ("POST", "/keys/<key_id>/revoke", "key_revoke", admin_keys.revoke),
    ("GET", "/audit", "audit", admin_audit.index),
    ("GET", "/settings", "settings", admin_workspace.index),
    ("POST", "/settings", "settings_update", admin_workspace.update),
    ("GET", "/webhooks", "webhooks", admin_webhooks.index),
    ("POST", "/webhooks", "webhook_create", admin_webhooks.create),
    ("GET", "/webhooks/<endpoint_id>", "webhook_deliveries", admin_webhooks.deliveries),
    ("GET", "/webhooks/<endpoint_id>/delete", "webhook_delete_confirm", admin_webhooks.confirm_delete),
    ("POST", "/webhooks/<endpoint_id>/delete", "webhook_delete", admin_webhooks.delete),
)
"""(method, path, endpoint, view): every admin page and form."""

for method, path, name, view in ROUTES:
    bp.add_url_rule(path, name, view, methods=[method])
