"""Customers through the Flask test client: search, the profile page (consent, rollups, timeline
with "Older" pages), and a follow-up with its warnings shown first, sent once per form however
often it is posted; read-only roles see everything and send nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from ccm.messages.models import Message
from ccm.profiles.models import Profile
from tests.support.factories import publish_template, put_profile
from tests.web.conftest import csrf_of

ROLES = ("admin", "agent", "marketer", "viewer")


def profile_id(runtime, external_id="u1"):
    with runtime.db.read_only() as session:
        return session.scalar(select(Profile.id).where(Profile.external_id == external_id))


def messages(runtime):
    with runtime.db.read_only() as session:
        return session.execute(select(Message.source, Message.channel, Message.data)).all()


def key_of(html):
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_finds_a_customer_and_reads_the_profile(web_client, api, runtime, role):
    put_profile(api, "u1", attributes={"first_name": "Ada", "last_name": "Lovelace", "plan": "pro"})
    client = web_client(role)
    listing = client.get("/profiles/?q=u1@exa")
    assert listing.status_code == 200 and ">Customers</a>" in listing.text and ">Inbox</a>" in listing.text
    assert "u1@example.com" in listing.text and '<label for="q">' in listing.text
    shown = client.get(f"/profiles/{profile_id(runtime)}")
    assert shown.status_code == 200 and "<h1>Ada Lovelace</h1>" in shown.text and "Timeline" in shown.text
    assert ("Send a follow-up" in shown.text) == (role in ("admin", "agent"))
    if role in ("admin", "agent"):  # the form posts to, and asks again at, this profile's addresses
        assert f'action="/profiles/{profile_id(runtime)}/messages"' in shown.text
        assert f'hx-get="/profiles/{profile_id(runtime)}/compose"' in shown.text


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("ADA@", {"ada"}),  # an email prefix, any case
        ("grace@example.c", {"grace"}),
        ("+1 (415) 555", {"ada", "grace"}),  # phone digits, however written
        ("555 0100", {"ada"}),
        ("555-0199", {"grace"}),
        ("ext-g", {"grace"}),  # an external id prefix
        ("hop", {"grace"}),  # a word of a name
        ("LOVE", {"ada"}),
        ("ada l", {"ada"}),  # first and last name
        ("zzz", set()),
        ("", {"ada", "grace"}),
    ],
)
def test_search_by_email_phone_external_id_or_name(web_client, api, query, found):
    put_profile(
        api,
        "ext-ada",
        email="ada@example.com",
        phone="+14155550100",
        attributes={"first_name": "Ada", "last_name": "Lovelace"},
    )
    put_profile(api, "ext-grace", email="grace@example.com", phone="+14155550199", attributes={"name": "Grace Hopper"})
    page = web_client("agent").get("/profiles/", query_string={"q": query}).text
    assert {name for name in ("ada", "grace") if f"{name}@example.com" in page} == found


def test_results_are_paged_with_a_cursor(web_client, api):
    for n in range(30):
        put_profile(api, f"p{n:02d}", email=f"p{n:02d}@example.com")
    client = web_client("viewer")
    first = client.get("/profiles/?q=p").text
    assert first.count("@example.com</td>") == 25 and "p29@example.com" in first
    following = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(following).text
    assert second.count("@example.com</td>") == 5 and "p00@example.com" in second and 'rel="next"' not in second


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/profiles/?cursor=nope", "cursor"),
        ("/profiles/?q=" + "a" * 400, "q"),
    ],
)
def test_bad_search_input_is_a_4xx_naming_the_field(web_client, url, field):
    answer = web_client("viewer").get(url)
    assert answer.status_code == 422 and f"{field}:" in answer.text


def test_a_bad_timeline_cursor_or_unknown_profile_is_a_4xx(web_client, api, runtime):
    put_profile(api, "u1")
    client = web_client("agent")
    bad = client.get(f"/profiles/{profile_id(runtime)}?before=yesterday")
    assert bad.status_code == 422 and "before:" in bad.text
    assert client.get("/profiles/prf_01JDOESNOTEXIST00000000000").status_code == 404
    assert client.get(f"/profiles/{'x' * 200}").status_code == 404
    unknown = client.get(f"/profiles/{profile_id(runtime)}?template=nope")
    assert unknown.status_code == 404 and "template:" in unknown.text


def test_the_page_shows_consent_suppression_and_rollups(web_client, api, runtime):
    put_profile(api, "u1", phone="+14155550100", channels=["sms", "email"])
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "topic": "news", "status": "revoked"})
    api.post("/v1/suppressions", json={"channel": "sms", "address": "+14155550100", "reason": "stop"})
    page = web_client("viewer").get(f"/profiles/{profile_id(runtime)}").text
    email_row = page[page.index('<th scope="row">email') : page.index("</tr>", page.index('<th scope="row">email'))]
    assert "#2" in email_row and 'news: <strong class="bad">revoked</strong>' in email_row
    assert "suppressed (stop)" in page and "Engagement score" in page and "Best channel" in page
    assert "Consent</span> revoked for email / news" in page  # the change is on the timeline too


def test_the_timeline_pages_back_with_older_links(web_client, api, runtime):
    put_profile(api, "u1")
    for n in range(30):
        api.post("/v1/profiles/u1/consent", json={"channel": "email", "topic": f"t{n}", "status": "granted"})
    client = web_client("viewer")
    first = client.get(f"/profiles/{profile_id(runtime)}").text
    assert first.count('class="entry entry-consent"') == 25 and "email / t29" in first
    older = re.search(r'href="([^"]+)" rel="next">Older', first).group(1).replace("&amp;", "&")
    second = client.get(older).text
    assert second.count('class="entry entry-consent"') == 5 and "email / t0 " in second and ">Older<" not in second


def test_warnings_show_before_sending(web_client, api, runtime):
    publish_template(api, "deal", category="marketing")
    put_profile(api, "u1", channels=["email"])
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "status": "revoked"})
    client = web_client("agent")
    page = client.get(f"/profiles/{profile_id(runtime)}?template=deal").text
    assert "Before you send" in page and "<li>no_consent</li>" in page
    assert 'name="data.first_name"' in page and 'name="data.plan"' in page
    fragment = client.get(f"/profiles/{profile_id(runtime)}/compose?template=deal", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<li>no_consent</li>" in fragment.text and "<html" not in fragment.text
    assert messages(runtime) == []  # looking sends nothing


def test_a_double_click_sends_once(web_client, api, runtime):
    put_profile(api, "u1")
    client = web_client("agent")
    page = client.get(f"/profiles/{profile_id(runtime)}").text
    form = {
        "csrf_token": csrf_of(page),
        "idempotency_key": key_of(page),
        "template": "",
        "channel": "",
        "text": "Hi Ada",
    }
    first = client.post(f"/profiles/{profile_id(runtime)}/messages", data=form)
    again = client.post(f"/profiles/{profile_id(runtime)}/messages", data=form)
    assert first.status_code == again.status_code == 303 and first.headers["Location"] == again.headers["Location"]
    assert messages(runtime) == [("support", None, {"text": "Hi Ada"})]
    assert "queued" in client.get(first.headers["Location"]).text


def test_a_template_follow_up_on_a_chosen_channel_takes_its_variables(web_client, api, runtime):
    publish_template(api)
    put_profile(api, "u1", phone="+14155550100")
    client = web_client("admin")
    page = client.get(f"/profiles/{profile_id(runtime)}").text
    form = {"csrf_token": csrf_of(page), "idempotency_key": key_of(page), "template": "welcome", "channel": "sms"}
    answer = client.post(
        f"/profiles/{profile_id(runtime)}/messages", data={**form, "data.plan": "team", "data.first_name": ""}
    )
    assert answer.status_code == 303
    with runtime.db.read_only() as session:
        message = session.scalars(select(Message)).one()
    assert (message.template_key, message.channel_override, message.data) == ("welcome", "sms", {"plan": "team"})


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"text": "   "}, 422, "text"),
        ({"text": "hi", "channel": "fax"}, 422, "channel"),
        ({"template": "missing"}, 404, "template"),
        ({"template": "ccm.system-text"}, 422, "template"),
        ({"text": "hi", "idempotency_key": ""}, 422, "idempotency_key"),
        ({"template": "welcome", "data.plan": "x" * 3000}, 422, "data.plan"),
    ],
)
def test_bad_follow_ups_are_a_4xx_naming_the_field_and_send_nothing(web_client, api, runtime, fields, status, field):
    publish_template(api)
    put_profile(api, "u1")
    client = web_client("agent")
    page = client.get(f"/profiles/{profile_id(runtime)}").text
    form = {"csrf_token": csrf_of(page), "idempotency_key": key_of(page), **fields}
    answer = client.post(f"/profiles/{profile_id(runtime)}/messages", data=form)
    assert answer.status_code == status and f"{field}" in answer.text, answer.text
    assert messages(runtime) == []


@pytest.mark.parametrize("role", ("marketer", "viewer"))
def test_a_read_only_role_cannot_force_a_send(web_client, api, runtime, role):
    put_profile(api, "u1")
    client = web_client(role)
    page = client.get(f"/profiles/{profile_id(runtime)}").text
    forced = client.post(
        f"/profiles/{profile_id(runtime)}/messages",
        data={"csrf_token": csrf_of(page), "idempotency_key": "k1", "text": "Hi"},
    )
    assert forced.status_code == 403 and messages(runtime) == []


def test_a_send_without_the_csrf_token_is_refused(web_client, api, runtime):
    put_profile(api, "u1")
    forced = web_client("agent").post(
        f"/profiles/{profile_id(runtime)}/messages", data={"idempotency_key": "k", "text": "x"}
    )
    assert forced.status_code == 403 and messages(runtime) == []


def test_message_counts_do_not_change_on_reads(web_client, api, runtime):
    put_profile(api, "u1")
    client = web_client("agent")
    for url in (
        "/profiles/",
        f"/profiles/{profile_id(runtime)}",
        f"/profiles/{profile_id(runtime)}/compose?channel=sms",
    ):
        assert client.get(url).status_code == 200
    with runtime.db.read_only() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
