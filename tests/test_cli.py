"""The ``ccm`` command line, and the README's five-minute tour against a real ``ccm serve``."""

from __future__ import annotations

import email
import email.policy
import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ccm.cli import main
from tests.messages.test_send_api import finished
from tests.support.api import ApiClient, wait_for
from tests.support.processes import ServeProcess, ccm_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(runtime, settings):
    """Run ``ccm`` against the test database (``runtime`` empties it afterwards)."""
    env = {
        "CCM_DATABASE_URL": settings.database_url,
        "CCM_DATA_DIR": str(settings.data_dir),
        "CCM_SECRET_KEY": "test-secret",
        "CCM_REDIS_URL": settings.redis_url or "",
        "CCM_REDIS_NAMESPACE": settings.redis_namespace,
    }
    if not settings.redis_url:
        del env["CCM_REDIS_URL"]

    def run(*args: str):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return result

    return run


def test_api_keys_create_prints_the_key_alone_on_the_last_line(cli, app):
    result = cli("api-keys", "create", "--workspace", "acme-cli")
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("ccm_") and " " not in key
    assert ApiClient(app.test_client(), key).get("/v1/profiles").status_code == 200


def test_templates_import_reports_versions_and_is_repeatable(cli):
    first = cli("templates", "import", str(ROOT / "templates"))
    assert first.exit_code == 0, first.output
    assert "welcome: version 1" in first.output
    second = cli("templates", "import", str(ROOT / "templates"))
    assert "welcome: version 1 (unchanged)" in second.output


def test_templates_import_of_a_broken_folder_fails_and_says_where(cli, tmp_path):
    (tmp_path / "messages" / "broken").mkdir(parents=True)
    (tmp_path / "messages" / "broken" / "template.toml").write_text('category = "transactional"\n')
    (tmp_path / "messages" / "broken" / "email.en.html").write_text("{% if %}")
    (tmp_path / "messages" / "broken" / "email.en.subject").write_text("Hi")
    result = cli("templates", "import", str(tmp_path))
    assert result.exit_code == 1
    assert "nothing imported" in result.output and "broken" in result.output


def test_seed_demo_then_the_outbox_lists_what_was_delivered(cli, worker):
    result = cli("seed-demo", "--profiles", "3")
    assert result.exit_code == 0, result.output
    assert "3 profiles" in result.output
    from tests.support.api import wait_for

    listing = wait_for(
        lambda: (out := cli("outbox").output).count("@example.com") == 3 and out,
        message="three demo messages in the outbox",
    )
    message_id = listing.split()[2]
    raw = cli("outbox", "--raw", message_id).output
    assert email.message_from_string(raw, policy=email.policy.default)["Subject"].startswith(("Welcome", "¡Bienvenido"))
    again = cli("seed-demo", "--profiles", "3")
    assert again.exit_code == 0, again.output


def test_db_upgrade_is_idempotent(cli):
    assert "up to date" in cli("db", "upgrade").output


def test_five_minute_tour_on_the_embedded_default(tmp_path):
    """README: start, create a profile and a template, send, see it in the outbox, see its status."""
    from tests.messages.test_faults import HttpClient

    server = ServeProcess(ccm_env(data_dir=tmp_path / "data"), tmp_path / "serve.log")
    try:
        api = ApiClient(HttpClient(server.url), server.key)
        assert api.get("/healthz").json["status"] == "ok"
        assert (
            api.put(
                "/v1/profiles/ada",
                json={
                    "email": "ada@example.com",
                    "attributes": {"first_name": "Ada"},
                    "timezone": "Europe/London",
                    "channels": ["email"],
                },
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/v1/templates",
                json={
                    "key": "hello",
                    "category": "transactional",
                    "variables": ["first_name"],
                    "variants": [
                        {
                            "channel": "email",
                            "locale": "en",
                            "subject": "Hello {{ first_name }}",
                            "html": "<p>Hi <b>{{ first_name }}</b>!</p>",
                        }
                    ],
                },
            ).status_code
            == 201
        )
        assert api.post("/v1/templates/hello/publish").json["version"] == 1
        accepted = api.post(
            "/v1/messages",
            json={"to": {"external_id": "ada"}, "template": "hello"},
            headers={"Idempotency-Key": "tour-1"},
        )
        assert accepted.status_code == 202
        message = finished(api, accepted.json["id"])
        assert message["status"] == "delivered"
        [item] = api.get("/v1/outbox").json["items"]
        assert "Subject: Hello Ada" in item["raw"]
        # Open it, as the README does, and see the profile update.
        import re
        import time
        import urllib.request

        parsed = email.message_from_string(item["raw"])
        html = parsed.get_payload()[1].get_payload(decode=True).decode()
        pixel = re.search(r'/t/o/[^"]+', html).group(0)
        time.sleep(2.1)  # an open within 2 s of sending counts as a machine's
        request = urllib.request.Request(server.url + pixel, headers={"User-Agent": "Mozilla/5.0 Thunderbird/128"})
        assert urllib.request.urlopen(request, timeout=10).status == 200
        profile = wait_for(
            lambda: (p := api.get("/v1/profiles/ada").json)["engagement"].get("email", {}).get("opened") == 1 and p,
            message="the open on the profile",
        )
        assert profile["engagement_score"] > 0
        assert "event" in [entry["type"] for entry in api.get("/v1/profiles/ada/timeline").json["items"]]
    finally:
        server.stop()
    # the key survives a restart, and so does the data
    again = ServeProcess(ccm_env(data_dir=tmp_path / "data"), tmp_path / "serve2.log")
    try:
        assert again.key == server.key
        api = ApiClient(HttpClient(again.url), again.key)
        assert api.get(f"/v1/messages/{accepted.json['id']}").json["status"] == "delivered"
    finally:
        again.stop()


def test_version_and_short_help(cli):
    from importlib.metadata import version

    assert cli("--version").output.strip() == f"ccm {version('ccm')}"
    for args in (["-h"], ["api-keys", "-h"], ["api-keys", "create", "-h"], ["db", "upgrade", "-h"], ["serve", "-h"]):
        result = cli(*args)
        assert result.exit_code == 0 and result.output.startswith("Usage: ccm"), (args, result.output)


def test_db_upgrade_says_how_many_migrations_it_applied(tmp_path):
    from ccm.migrate import heads

    env = {"CCM_DATA_DIR": str(tmp_path / "data")}
    first = CliRunner().invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    [head] = heads(f"sqlite:///{tmp_path / 'data' / 'ccm.sqlite3'}")
    assert first.output.startswith("applied ") and first.output.strip().endswith(f"(empty) → {head}")
    again = CliRunner().invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert again.output.strip() == f"already up to date (at {head})"


NO_SECRET_KEY = {"CCM_DATABASE_URL": "postgresql+psycopg://ccm@127.0.0.1:9/ccm"}
SETTINGS_ERRORS = [
    *[(NO_SECRET_KEY, "CCM_SECRET_KEY", command) for command in (["api-keys", "list"], ["outbox"], ["serve"])],
    *[
        ({"CCM_CLAIM_TIMEOUT": value}, "CCM_CLAIM_TIMEOUT", command)
        for value in ("soon", "1")
        for command in (["api-keys", "list"], ["db", "upgrade"], ["serve", "--port", "0"])
    ],
]


@pytest.mark.parametrize(("env", "variable", "command"), SETTINGS_ERRORS)
def test_a_settings_error_is_one_line_naming_the_variable_and_exit_2(tmp_path, env, variable, command):
    result = CliRunner().invoke(main, command, env={"CCM_DATA_DIR": str(tmp_path), **env})
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and variable in line and "Traceback" not in line


def test_api_keys_list_and_revoke_by_prefix(cli, app):
    created = cli("api-keys", "create", "--workspace", "acme-cli", "--name", "shop", "--role", "standard")
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    listing = cli("api-keys", "list", "--workspace", "acme-cli").output.splitlines()
    assert listing[0].split() == ["ID", "PREFIX", "ROLE", "CREATED", "WORKSPACE", "NAME"]
    [row] = [line for line in listing[1:] if token[:12] in line]
    assert row.split()[2:3] == ["standard"] and row.split()[-2:] == ["acme-cli", "shop"]
    client = ApiClient(app.test_client(), token)
    assert client.get("/v1/profiles").status_code == 200
    revoked = cli("api-keys", "revoke", token[:12])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert client.get("/v1/profiles").status_code == 401
    assert token[:12] not in cli("api-keys", "list").output
    again = cli("api-keys", "revoke", token[:12])
    assert again.exit_code == 1 and "no API key" in again.output


def test_api_keys_create_takes_the_user_roles_too(cli, app):
    created = cli("api-keys", "create", "--workspace", "acme-cli", "--role", "viewer")
    assert created.exit_code == 0, created.output
    viewer = ApiClient(app.test_client(), created.output.strip().splitlines()[-1])
    assert viewer.get("/v1/profiles").status_code == 200
    refused = viewer.put("/v1/profiles/u1", json={"email": "u1@example.com"})
    assert refused.status_code == 403 and refused.json["error"]["details"]["field"] == "Authorization"


def test_api_keys_create_makes_admin_keys_by_default(cli, app):
    token = cli("api-keys", "create", "--workspace", "acme-cli").output.strip().splitlines()[-1]
    assert ApiClient(app.test_client(), token).get("/v1/api-keys").status_code == 200


def test_seed_demo_leaves_the_workspaces_own_objects_alone(cli, runtime):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.factories import publish_template, put_profile

    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="default")
        _, key = create_api_key(session=session, workspace_id=ws.id)
    from ccm.app import create_app

    api = ApiClient(create_app(runtime=runtime).test_client(), key)
    publish_template(
        api,
        "welcome",
        variants=[
            {
                "channel": "email",
                "locale": "en",
                "subject": "Our own welcome",
                "html": "<p>Hi {{ first_name }} on {{ plan }}</p>",
            }
        ],
    )
    api.put("/v1/snippets/partials/footer.html", json={"source": "<p>Our footer</p>"})
    put_profile(api, "demo-0001", email="real.customer@example.org")

    result = cli("seed-demo", "--profiles", "2")
    assert result.exit_code == 0, result.output
    assert "1 profiles created, 0 welcome messages queued" in result.output
    skipped = result.output.split("skipped, already in the workspace (left as they are): ")[1]
    assert {"template welcome", "snippet partials/footer.html", "profile demo-0001"} <= set(skipped.strip().split(", "))
    welcome = api.get("/v1/templates/welcome").json
    assert (welcome["latest_version"], welcome["variants"][0]["subject"]) == (1, "Our own welcome")
    assert api.get("/v1/snippets/partials/footer.html").json["source"] == "<p>Our footer</p>"
    assert api.get("/v1/profiles/demo-0001").json["email"] == "real.customer@example.org"
    assert api.get("/v1/profiles/demo-0002").status_code == 200
    assert api.get("/v1/messages").json["items"] == []
    assert api.get("/v1/templates/password-reset").status_code == 200  # the demo's other templates came in


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    """One real ``ccm serve`` on the embedded default, on a free port, for the tests below."""
    data = tmp_path_factory.mktemp("serve")
    server = ServeProcess(ccm_env(data_dir=data / "data"), data / "serve.log")
    yield server
    server.stop()


def test_links_in_messages_follow_the_port_ccm_serve_listens_on(embedded_server):
    import re

    from tests.messages.test_faults import HttpClient

    api = ApiClient(HttpClient(embedded_server.url), embedded_server.key)
    # A fresh workspace has no postal address, and marketing email needs one (the README tour sets it).
    address = {"policy": {"postal_address": "Acme Inc., 1 Road, Springfield, IL 62701"}}
    assert api.patch("/v1/workspace", json=address).status_code == 200
    assert api.put(
        "/v1/profiles/links",
        json={"email": "links@example.com", "attributes": {"first_name": "Ada"}, "channels": ["email"]},
    ).status_code in (200, 201)
    assert (
        api.post(
            "/v1/templates",
            json={
                "key": "links",
                "category": "marketing",
                "variables": ["first_name"],
                "variants": [
                    {
                        "channel": "email",
                        "locale": "en",
                        "subject": "Hi {{ first_name }}",
                        "html": '<p><a href="https://example.com/x">x</a> <a href="{{ unsubscribe_url }}">u</a></p>',
                    }
                ],
            },
        ).status_code
        == 201
    )
    api.post("/v1/templates/links/publish")
    accepted = api.post("/v1/messages", json={"to": {"external_id": "links"}, "template": "links"}).json
    assert finished(api, accepted["id"])["status"] == "delivered"
    [item] = api.get(f"/v1/outbox?message_id={accepted['id']}").json["items"]
    html = email.message_from_string(item["raw"]).get_payload()[1].get_payload(decode=True).decode()
    links = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert {link.split("/")[3] for link in links} == {"t", "u"}  # click, pixel, unsubscribe
    assert all(link.startswith(embedded_server.url + "/") for link in links), (embedded_server.url, links)
    assert "Links in messages point at " + embedded_server.url in embedded_server.output()


def test_ccm_public_url_wins_over_the_listening_address():
    from ccm.config import Settings

    embedded = Settings.from_env()
    assert embedded.listening_on("0.0.0.0", 8123).public_url == "http://127.0.0.1:8123"
    assert embedded.listening_on("::", 8123).public_url == "http://[::1]:8123"
    given = Settings.from_env(public_url="https://ccm.example.com/")
    assert given.listening_on("127.0.0.1", 8123).public_url == "https://ccm.example.com"
    production = Settings.from_env(redis_url="redis://127.0.0.1:6379/0")
    assert production.listening_on("127.0.0.1", 8123).public_url == "http://127.0.0.1:8000"


def test_a_privacy_export_of_a_non_latin1_id_downloads_from_a_real_server(embedded_server):
    import urllib.parse
    import urllib.request

    from tests.messages.test_faults import HttpClient

    api = ApiClient(HttpClient(embedded_server.url), embedded_server.key)
    external_id = "élève-✓"
    path = f"/v1/profiles/{urllib.parse.quote(external_id)}"
    assert api.put(path, json={"email": "eleve@example.com"}).status_code in (200, 201)
    request = urllib.request.Request(
        embedded_server.url + path + "/export", headers={"Authorization": f"Bearer {embedded_server.key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        disposition = answer.headers["Content-Disposition"]
        assert json.loads(answer.read())["profile"]["external_id"] == external_id
    assert disposition == "attachment; filename=\"eleve-.json\"; filename*=UTF-8''%C3%A9l%C3%A8ve-%E2%9C%93.json"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["--threads", "6", "--processes", str((os.cpu_count() or 1) + 1)]),
        (("--processes", "2", "--threads", "8"), ["--threads", "8", "--processes", "2"]),
    ],
)
def test_ccm_worker_runs_one_process_more_than_the_cpus_by_default(monkeypatch, tmp_path, args, expected):
    """``ccm worker`` is ``dramatiq workers`` with CCM's defaults: six threads in each of one more
    process than the machine has CPUs (what a campaign's deliveries measured fastest with)."""
    import dramatiq.cli

    ran: list[list[str]] = []

    def dramatiq_main() -> int:
        ran.append(list(sys.argv))
        return 0

    monkeypatch.setattr(dramatiq.cli, "main", dramatiq_main)
    env = {"CCM_REDIS_URL": "redis://127.0.0.1:6379/15", "CCM_SECRET_KEY": "test", "CCM_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["worker", *args], env=env)
    assert result.exit_code == 0, result.output
    assert ran == [["dramatiq", "workers", *expected]]
