"""Fixtures for tests in a real browser: Debian's Chromium driven by Playwright against the app
served on loopback (the same database and in-process workers as the other tests).

    def test_marketer_sees_templates(browse):
        page = browse("marketer")               # logged in through /login, at the dashboard
        page.get_by_role("link", name="Templates").click()
        screenshot(page, "templates")           # docs/screenshots/templates.png when CCM_SCREENSHOTS=1

A page that logs a JavaScript error or a Content-Security-Policy violation fails its test: a script
the CSP blocks is a screen that does not work. Chromium is ``/usr/bin/chromium`` (``CCM_CHROMIUM``
overrides); without it the tests skip, and fail under ``CI=true`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD

CHROMIUM = Path(os.environ.get("CCM_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling Google's hosts, which the
# loopback-only machine refuses.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def screenshot(page: Any, name: str) -> None:
    """``docs/screenshots/<name>.png`` of the whole page, when ``CCM_SCREENSHOTS=1``."""
    if os.environ.get("CCM_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


class Problems:
    """JavaScript errors and console errors (CSP violations among them) seen on a page. Chromium
    also logs every 4xx answer to a request; a 422 is a form's validation errors, which the page
    shows (static/htmx-errors.js swaps them in), so it is not a problem of the page."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("console", lambda msg: msg.type == "error" and self._console(msg.text))

    def _console(self, text: str) -> None:
        if "the server responded with a status of 422" not in text:
            self.seen.append(f"console: {text}")


@pytest.fixture
def browse(chromium: Any, live_server: str, make_user: Callable[..., str]) -> Iterator[Callable[..., Any]]:
    """``browse(role, email=None, viewport=LAPTOP)``: a new browser context logged in through the
    login form as a new user of ``role``; the page is at the dashboard."""
    opened: list[tuple[Any, Problems]] = []

    def open_as(role: str, email: str | None = None, viewport: dict[str, int] = LAPTOP) -> Any:
        address = email or f"{role}@example.com"
        make_user(role, email=address)
        context = chromium.new_context(base_url=live_server, viewport=viewport)
        context.set_default_timeout(10_000)
        page = context.new_page()
        opened.append((context, Problems(page)))
        page.goto("/login")
        page.get_by_label("Email").fill(address)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server}/")
        return page

    yield open_as
    problems = [problem for _, found in opened for problem in found.seen]
    for context, _ in opened:
        context.close()
    assert not problems, problems
