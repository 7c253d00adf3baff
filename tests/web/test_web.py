"""The web app through the Flask test client: login, sessions, roles, CSRF, cross-site and CSP."""

from __future__ import annotations

import pytest

from ccm.users.models import UserSession
from ccm.web.security import CSP
from tests.web.conftest import PASSWORD, csrf_of

NAV = {
    "admin": {"Dashboard", "Admin", "Password"},
    "marketer": {"Dashboard", "Password"},
    "agent": {"Dashboard", "Password"},
    "viewer": {"Dashboard", "Password"},
}


@pytest.mark.parametrize("role", sorted(NAV))
def test_each_role_sees_its_dashboard_and_only_its_nav(web_client, role):
    page = web_client(role).get("/")
    assert page.status_code == 200 and "<main" in page.text and "Profiles" in page.text
    for label in {"Dashboard", "Admin", "Password"}:
        assert (f">{label}</a>" in page.text) == (label in NAV[role]), label


def test_not_logged_in_goes_to_the_login_form(app):
    answer = app.test_client().get("/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    form = app.test_client().get("/login").text
    assert 'name="email"' in form and 'name="password"' in form and '<label for="email">' in form


def test_a_wrong_password_is_refused(app, make_user):
    make_user("agent")
    answer = app.test_client().post("/login", data={"email": "agent@example.com", "password": "wrong" * 4})
    assert answer.status_code == 401 and "Wrong email or password" in answer.text
    assert "ccm_session" not in answer.headers.get("Set-Cookie", "")


def test_failed_logins_are_throttled_with_retry_after(app, make_user):
    make_user("agent")
    client = app.test_client()
    for _ in range(5):
        assert client.post("/login", data={"email": "agent@example.com", "password": "nope"}).status_code == 401
    throttled = client.post("/login", data={"email": "AGENT@example.com", "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert client.get("/").status_code == 302  # even the right password did not log in


def test_the_cookie_is_httponly_and_samesite_lax(app, make_user):
    make_user("viewer")
    answer = app.test_client().post("/login", data={"email": "viewer@example.com", "password": PASSWORD})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client().post(
        "/login", data={"email": "viewer@example.com", "password": PASSWORD}, base_url="https://localhost"
    )
    assert "Secure" in secure.headers["Set-Cookie"]


def test_logout_ends_the_session(web_client):
    client = web_client("viewer")
    csrf = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/").status_code == 302


def test_a_revoked_session_is_logged_out(web_client, runtime):
    client = web_client("agent")
    with runtime.db.unit_of_work() as session:
        session.execute(UserSession.__table__.update().values(revoked_at=UserSession.created_at))
    assert client.get("/").status_code == 302


def test_a_first_login_must_change_the_password_which_logs_out_elsewhere(app, make_user):
    one_time = make_user("marketer", password=None)
    here, elsewhere = app.test_client(), app.test_client()
    for client in (here, elsewhere):
        client.post("/login", data={"email": "marketer@example.com", "password": one_time})
    assert here.get("/").headers["Location"] == "/account/password"
    csrf = csrf_of(here.get("/account/password").text)
    short = here.post("/account/password", data={"csrf_token": csrf, "current_password": one_time, "new_password": "x"})
    assert short.status_code == 422 and "new_password" in short.text
    changed = here.post(
        "/account/password", data={"csrf_token": csrf, "current_password": one_time, "new_password": "mine, at last!"}
    )
    assert changed.status_code == 302
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302


def test_a_post_without_the_csrf_token_is_refused(web_client):
    client = web_client("admin")
    refused = client.post("/admin/users", data={"email": "new@example.com", "role": "viewer"})
    assert refused.status_code == 403
    wrong = client.post("/admin/users", data={"email": "new@example.com", "role": "viewer", "csrf_token": "x" * 64})
    assert wrong.status_code == 403
    assert "new@example.com" not in client.get("/admin/users").text
    csrf = csrf_of(client.get("/").text)
    by_header = client.post(
        "/admin/users", data={"email": "new@example.com", "role": "viewer"}, headers={"X-CSRF-Token": csrf}
    )
    assert by_header.status_code == 200 and "new@example.com" in by_header.text


def test_a_cross_site_post_is_refused(web_client, app, make_user):
    client = web_client("admin")
    csrf = csrf_of(client.get("/").text)
    data = {"email": "new@example.com", "role": "viewer", "csrf_token": csrf}
    assert client.post("/admin/users", data=data, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/admin/users", data=data, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    make_user("viewer")
    login = {"email": "viewer@example.com", "password": PASSWORD}
    assert app.test_client().post("/login", data=login, headers={"Origin": "https://evil.example"}).status_code == 403


def test_a_viewer_forcing_a_post_to_an_admin_form_is_refused(web_client):
    client = web_client("viewer")
    csrf = csrf_of(client.get("/").text)
    answer = client.post("/admin/users", data={"email": "sneaky@example.com", "role": "admin", "csrf_token": csrf})
    assert answer.status_code == 403 and "viewer" in answer.text
    assert client.get("/admin/users").status_code == 403


def test_pages_carry_the_strict_csp(app, web_client):
    assert app.test_client().get("/login").headers["Content-Security-Policy"] == CSP
    assert web_client("agent").get("/").headers["Content-Security-Policy"] == CSP
    assert "script-src 'self';" in CSP and "frame-ancestors 'none'" in CSP


def test_login_redirects_only_to_a_path_of_this_site(app, make_user):
    make_user("agent")
    data = {"email": "agent@example.com", "password": PASSWORD}
    evil = app.test_client().post("/login?next=//evil.example/x", data=data)
    assert evil.headers["Location"] == "/"
    assert app.test_client().post("/login?next=/account/password", data=data).headers["Location"] == "/account/password"
