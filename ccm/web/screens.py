"""The web app's areas and its navigation, in one table each: adding a screen is a line here.

``NAV`` lists (label, endpoint, permission): a user sees the entries their role allows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, g, request, url_for

from ccm.access import Permission, allows
from ccm.web import admin, campaigns, imports, message_templates, outbox, segments, views
from ccm.web.pages import is_screen
from ccm.web.security import csrf_token

SCREENS = (views.bp, message_templates.bp, segments.bp, imports.bp, campaigns.bp, admin.bp, outbox.bp)

NAV: tuple[tuple[str, str, Permission], ...] = (
    ("Dashboard", "web.dashboard", Permission.VIEW),
    ("Templates", "web_templates.index", Permission.VIEW),
    ("Segments", "web_segments.index", Permission.VIEW),
    ("Imports", "web_imports.index", Permission.VIEW),
    ("Campaigns", "web_campaigns.index", Permission.VIEW),
    ("Admin", "web_admin.users", Permission.ADMIN),
    ("Outbox", "web_outbox.index", Permission.VIEW),
    ("Password", "web.password", Permission.VIEW),
)

SHOWN_WHEN: dict[str, Callable[[], bool]] = {"web_outbox.index": outbox.in_use}
"""Entries of ``NAV`` shown only when their condition holds (the outbox, where it is in use)."""


def register(app: Flask) -> None:
    """Every screen's blueprint, and the layout's navigation and CSRF token for its pages."""
    for bp in SCREENS:
        app.register_blueprint(bp)
    app.context_processor(_layout)


def _layout() -> dict[str, Any]:
    user = g.get("user")
    if user is None or not is_screen(request.blueprint):
        return {"nav": [], "csrf": ""}
    nav = [
        (label, url_for(ep))
        for label, ep, p in NAV
        if allows(user.role, p) and (ep not in SHOWN_WHEN or SHOWN_WHEN[ep]())
    ]
    return {"nav": nav, "csrf": csrf_token(user)}
