"""The web app's areas and its navigation, in one table each: adding a screen is a line here.

``NAV`` lists (label, endpoint, permission): a user sees the entries their role allows."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request, url_for

from ccm.access import Permission, allows
from ccm.web import conversations, profiles, views
from ccm.web.pages import is_screen
from ccm.web.security import csrf_token

SCREENS = (views.bp, profiles.bp, conversations.bp)

NAV: tuple[tuple[str, str, Permission], ...] = (
    ("Dashboard", "web.dashboard", Permission.VIEW),
    ("Customers", "web_profiles.index", Permission.VIEW),
    ("Inbox", "web_conversations.index", Permission.VIEW),
    ("Users", "web.users", Permission.ADMIN),
    ("Password", "web.password", Permission.VIEW),
)


def register(app: Flask) -> None:
    """Every screen's blueprint, and the layout's navigation and CSRF token for its pages."""
    for bp in SCREENS:
        app.register_blueprint(bp)
    app.context_processor(_layout)


def _layout() -> dict[str, Any]:
    user = g.get("user")
    if user is None or not is_screen(request.blueprint):
        return {"nav": [], "csrf": ""}
    return {"nav": [(label, url_for(ep)) for label, ep, p in NAV if allows(user.role, p)], "csrf": csrf_token(user)}
