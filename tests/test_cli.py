"""The ``ccm`` command line, and the README's five-minute tour against a real ``ccm serve``."""

from __future__ import annotations

import email
import email.policy
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
    env = {"CCM_DATABASE_URL": settings.database_url, "CCM_DATA_DIR": str(settings.data_dir),
           "CCM_SECRET_KEY": "test-secret", "CCM_REDIS_URL": settings.redis_url or "",
           "CCM_REDIS_NAMESPACE": settings.redis_namespace}
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

    listing = wait_for(lambda: (out := cli("outbox").output).count("@example.com") == 3 and out,
                       message="three demo messages in the outbox")
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
        assert api.put("/v1/profiles/ada", json={
            "email": "ada@example.com", "attributes": {"first_name": "Ada"}, "timezone": "Europe/London",
            "channels": ["email"]}).status_code == 201
        assert api.post("/v1/templates", json={
            "key": "hello", "category": "transactional", "variables": ["first_name"],
            "variants": [{"channel": "email", "locale": "en", "subject": "Hello {{ first_name }}",
                          "html": "<p>Hi <b>{{ first_name }}</b>!</p>"}]}).status_code == 201
        assert api.post("/v1/templates/hello/publish").json["version"] == 1
        accepted = api.post("/v1/messages", json={"to": {"external_id": "ada"}, "template": "hello"},
                            headers={"Idempotency-Key": "tour-1"})
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
        profile = wait_for(lambda: (p := api.get("/v1/profiles/ada").json)["engagement"].get("email", {})
                           .get("opened") == 1 and p, message="the open on the profile")
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
