"""The web app's own flows in Chromium: logging in per role, the navigation a role sees, logging out."""

from __future__ import annotations

import pytest

from tests.web.browser import PHONE, screenshot

NAV = {"admin": "Admin", "marketer": None, "agent": None, "viewer": None}


@pytest.mark.parametrize("role", sorted(NAV))
def test_each_role_logs_in_and_sees_the_dashboard(browse, role):
    page = browse(role)
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.get_by_text(f"{role}@example.com ({role})").is_visible()
    admin = page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")
    assert admin.count() == (1 if NAV[role] else 0)
    if role == "admin":
        screenshot(page, "dashboard")


def test_a_wrong_password_shows_why_and_stays_on_the_form(chromium, live_server, make_user):
    make_user("agent")
    context = chromium.new_context(base_url=live_server)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill("agent@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("status").inner_text() == "Wrong email or password."
    assert page.get_by_label("Email").input_value() == "agent@example.com"
    screenshot(page, "login")
    context.close()


def test_logging_out_ends_the_session(browse, live_server):
    page = browse("marketer")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_server}/login")
    page.goto("/")
    assert page.url.startswith(f"{live_server}/login")


def test_the_dashboard_reads_at_phone_width(browse):
    page = browse("viewer", viewport=PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
