"""Open and click tracking, and one-click unsubscribe, over real requests to the app."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from ccm.engagement.writer import drain_hits
from ccm.messages.delivery import deliver_message
from ccm.tokens import UNSUBSCRIBE
from tests.support.factories import publish_template, put_profile

HTML = (
    '<p>Hi {{ first_name }}</p><p><a href="https://example.com/a?x=1&amp;y=2">Offer</a> '
    '<a href="mailto:help@example.com">Help</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


def send_email(api, runtime, *, category="marketing", **fields):
    publish_template(
        api, variables=["first_name"], category=category, variants=[{"channel": "email", "subject": "Hi", "html": HTML}]
    )
    put_profile(api, "u1", channels=["email"])
    accepted = api.post(
        "/v1/messages",
        json={
            "to": {"external_id": "u1"},
            "template": "welcome",
            "topic": "news" if category == "marketing" else None,
            **fields,
        },
    )
    deliver_message(runtime, accepted.json["id"])
    _sent_a_minute_ago(runtime, accepted.json["id"])
    raw = api.get(f"/v1/outbox?message_id={accepted.json['id']}").json["items"][0]["raw"]
    html = email.message_from_string(raw, policy=email.policy.default).get_body(("html",)).get_content()
    return accepted.json["id"], html, raw


def _sent_a_minute_ago(runtime, message_id):
    """Opens and clicks within 2 s of sending count as machine-made; tests hit at once."""
    import datetime as dt

    from sqlalchemy import update

    from ccm.messages.models import Message

    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(finished_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )


def links(html):
    return re.findall(r'href="([^"]+)"', html)


def test_links_are_signed_and_redirect_to_what_was_sent(api, app, runtime):
    message_id, html, raw = send_email(api, runtime)
    offer, mailto, unsubscribe, in_footer = links(html)  # the last: the footer every marketing email gets
    assert offer.startswith("http://ccm.test/t/c/") and mailto == "mailto:help@example.com"
    assert unsubscribe.startswith("http://ccm.test/u/")  # the unsubscribe link is never rewritten
    assert in_footer == unsubscribe
    assert re.search(r'<img src="http://ccm.test/t/o/[^"]+\.gif"', html)
    text = email.message_from_string(raw, policy=email.policy.default).get_body(("plain",)).get_content()
    assert "https://example.com/a?x=1&y=2" in text  # the text part keeps plain links

    client = app.test_client()
    response = client.get(offer.removeprefix("http://ccm.test"), headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/a?x=1&y=2"


def test_tampered_foreign_and_dangerous_click_targets_do_not_redirect(app, runtime):
    client = app.test_client()
    genuine = runtime.link_signer.sign({"m": "msg_1", "u": "https://example.com/"})
    body, mac = genuine.split(".")
    forged = runtime.link_signer.sign({"m": "msg_1", "u": "https://evil.example/"}).split(".")[0] + "." + mac
    for token in (forged, body + ".AAAAAAAAAAAAAAAAAAAAAA", "garbage", genuine[:-3]):
        response = client.get(f"/t/c/{token}")
        assert response.status_code == 404 and "Location" not in response.headers
    for target in ("javascript:alert(1)", "data:text/html,<script>x</script>", "//evil.example"):
        response = client.get(f"/t/c/{runtime.link_signer.sign({'m': 'msg_1', 'u': target})}")
        assert response.status_code == 400 and "Location" not in response.headers


def test_hits_become_events_machine_opens_counted_apart(api, app, runtime):
    message_id, html, _ = send_email(api, runtime)
    client = app.test_client()
    pixel = re.search(r'<img src="http://ccm.test(/t/o/[^"]+)"', html).group(1)
    offer = links(html)[0].removeprefix("http://ccm.test")
    answer = client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})  # Apple Mail Privacy Protection
    assert (answer.status_code, answer.mimetype) == (200, "image/gif")
    assert "no-store" in answer.headers["Cache-Control"]
    client.get(pixel, headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Thunderbird/128"})
    client.get(offer, headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Firefox/130"})
    client.get(offer, headers={"User-Agent": "Mimecast URL protect"})
    assert drain_hits(runtime) == 4
    assert drain_hits(runtime) == 0
    profile = api.get("/v1/profiles/u1").json
    counters = profile["engagement"]["email"]
    assert (counters["opened"], counters["machine_opened"], counters["clicked"], counters["machine_clicked"]) == (
        1,
        1,
        1,
        1,
    )
    assert counters["last_engaged_at"]
    assert profile["engagement_score"] == pytest.approx(4.0, abs=0.01)  # one open (1) + one click (3)
    assert profile["best_channel"] == "email"


def test_a_batch_taken_twice_is_recorded_once(api, app, runtime):
    message_id, html, _ = send_email(api, runtime)
    pixel = re.search(r'<img src="http://ccm.test(/t/o/[^"]+)"', html).group(1)
    app.test_client().get(pixel, headers={"User-Agent": "Mozilla/5.0 (X11) Thunderbird/128"})
    hits = runtime.hits.take(10)  # a writer takes the batch and dies before marking it done
    runtime.hits.release()
    assert len(hits) == 1
    assert drain_hits(runtime) == 1  # the next one records the same batch
    assert drain_hits(runtime) == 0
    assert api.get("/v1/profiles/u1").json["engagement"]["email"]["opened"] == 1


def test_a_hit_after_an_empty_drain_is_recorded_on_the_next_one(api, app, runtime):
    message_id, html, _ = send_email(api, runtime)
    assert drain_hits(runtime) == 0  # the relay polls an empty buffer
    pixel = re.search(r'<img src="http://ccm.test(/t/o/[^"]+)"', html).group(1)
    app.test_client().get(pixel, headers={"User-Agent": "Mozilla/5.0 (X11) Thunderbird/128"})
    assert drain_hits(runtime) == 1  # not held back until an idle poll's lock expires


@pytest.mark.parametrize("where", ["workspace", "message"])
def test_tracking_can_be_turned_off(api, runtime, where):
    fields = {}
    if where == "workspace":
        api.patch("/v1/workspace", json={"policy": {"tracking": {"opens": False, "clicks": False}}})
    else:
        fields["track"] = False
    _, html, _ = send_email(api, runtime, **fields)
    assert links(html)[0] == "https://example.com/a?x=1&amp;y=2"
    assert "/t/o/" not in html


def test_one_click_unsubscribe_is_a_200_idempotent_and_stops_the_next_send(api, app, runtime):
    message_id, _, raw = send_email(api, runtime)
    parsed = email.message_from_string(raw, policy=email.policy.default)
    path = parsed["List-Unsubscribe"].strip("<>").removeprefix("http://ccm.test")
    client = app.test_client()
    for _ in range(2):
        answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "Location" not in answer.headers
    history = api.get("/v1/profiles/u1/consent").json["history"]
    assert [(r["channel"], r["topic"], r["status"], r["source"]) for r in history] == [
        ("email", "news", "revoked", "one_click")
    ]  # recorded once
    again = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "news"})
    deliver_message(runtime, again.json["id"])
    assert api.get(f"/v1/messages/{again.json['id']}").json["reason"] == "no_consent"
    assert api.get("/v1/profiles/u1").json["engagement"]["email"]["unsubscribed"] == 1


def test_unsubscribe_get_only_asks(api, app, runtime):
    message_id, _, raw = send_email(api, runtime)
    path = email.message_from_string(raw, policy=email.policy.default)["List-Unsubscribe"].strip("<>")
    page = app.test_client().get(path.removeprefix("http://ccm.test"))
    assert page.status_code == 200 and b'<form method="post">' in page.data
    assert api.get("/v1/profiles/u1/consent").json["history"] == []


def test_unsubscribe_tokens_survive_key_rotation_and_reject_forgeries(api, app, runtime, settings, tmp_path):
    from ccm.app import create_app
    from ccm.runtime import create_runtime
    from tests.conftest import make_settings

    message_id, _, raw = send_email(api, runtime)
    path = email.message_from_string(raw, policy=email.policy.default)["List-Unsubscribe"].strip("<>")
    path = path.removeprefix("http://ccm.test")
    rotated = create_runtime(
        make_settings(settings.database_url, settings.redis_url, tmp_path, secret_key="a-brand-new-key,test-secret")
    )
    try:
        client = create_app(runtime=rotated).test_client()
        assert client.get(path).status_code == 200
        wrong_purpose = runtime.signer.sign("ccm.other", {"w": "x", "p": "y", "c": "email"})
        assert client.post(f"/u/{wrong_purpose}").status_code == 404
        assert client.post(path[:-4] + "AAAA").status_code == 404
        assert runtime.signer.verify(UNSUBSCRIBE, path.rsplit("/", 1)[1], max_age=31 * 86400)["m"] == message_id
    finally:
        rotated.close()


def test_unsubscribe_links_in_mail_sent_before_the_smaller_compression_window_still_work(api, app, runtime):
    from itsdangerous import URLSafeTimedSerializer

    message_id, _, raw = send_email(api, runtime)
    token = (
        email.message_from_string(raw, policy=email.policy.default)["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    )
    payload = runtime.signer.verify(UNSUBSCRIBE, token, max_age=86400)
    earlier = URLSafeTimedSerializer(runtime.signer.keys, salt=UNSUBSCRIBE).dumps(payload)  # as signed before
    assert earlier.startswith(".")  # compressed, with zlib's default window
    assert app.test_client().post(f"/u/{earlier}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    history = api.get("/v1/profiles/u1/consent").json["history"]
    assert [(r["status"], r["source"]) for r in history] == [("revoked", "one_click")]
    assert payload["m"] == message_id


def test_preference_page_saves_choices(api, app, runtime):
    api.patch("/v1/workspace", json={"policy": {"topics": {"news": {"mode": "opt_out", "description": "News"}}}})
    message_id, _, raw = send_email(api, runtime)
    path = email.message_from_string(raw, policy=email.policy.default)["List-Unsubscribe"].strip("<>")
    page = path.removeprefix("http://ccm.test") + "/preferences"
    client = app.test_client()
    assert b'name="news:email"' in client.get(page).data
    saved = client.post(page, data={"*:email": "on", "submitted": "1"})  # keep email in general, not news
    assert saved.status_code == 200
    current = {(c["channel"], c["topic"]): c["status"] for c in api.get("/v1/profiles/u1/consent").json["current"]}
    assert current[("email", "news")] == "revoked"
    assert current.get(("email", "*"), "granted") == "granted"
