from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from ccm.users.service import create_user

PASSWORD = "a long test password"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF meta tag"
    return found.group(1)


@pytest.fixture
def make_user(runtime, workspace) -> Callable[..., str]:
    def make(role: str, email: str | None = None, password: str | None = PASSWORD) -> str:
        address = email or f"{role}@example.com"
        with runtime.db.unit_of_work() as session:
            _, one_time = create_user(
                session=session, workspace_id=workspace[0], email=address, role=role, password=password
            )
        return one_time or PASSWORD

    return make


@pytest.fixture
def web_client(app, make_user):
    """``web_client(role)``: a Flask test client logged in as a new user of that role."""

    def logged_in(role: str):
        client = app.test_client()
        make_user(role)
        answer = client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD})
        assert answer.status_code == 302, answer.text
        return client

    return logged_in


from tests.web.browser import browse, chromium  # noqa: E402, F401  (fixtures for the browser tests)


@pytest.fixture
def admin(web_client):
    """An admin's client and a ``post_form(path, **form)`` sending the session's CSRF token."""
    client = web_client("admin")
    csrf = csrf_of(client.get("/").text)

    def post(path, data=None, **form):
        return client.post(path, data={"csrf_token": csrf, **(data or {}), **form})

    client.post_form = post
    return client
