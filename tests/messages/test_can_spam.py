"""CAN-SPAM: every marketing email carries the workspace's postal address and a visible
unsubscribe link whatever its template does, and marketing email from a workspace without a
postal address is refused at the API, skipped at send time and by triggers — never sent."""

from __future__ import annotations

import email
import email.policy

import pytest

from ccm.message_templates.footer import MarketingFooter
from ccm.messages.delivery import deliver_message
from tests.messages.test_send_api import finished, send
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile
from tests.triggers.conftest import fires, identify, make_trigger, messages, track

ADDRESS = "Acme Corp.\n500 Market St & 2nd Ave\nSan Francisco, CA 94105"
LAYOUT = (
    "<html><body><main>{% block content %}{% endblock %}</main>"
    "{% block footer %}{% include 'partials/footer.html' %}{% endblock %}</body></html>"
)
# Tries everything to lose the footer: overrides the layout's footer block, leaves a comment open.
NO_FOOTER = (
    "{% extends 'layouts/base.html' %}{% block content %}<p>Sale, {{ first_name }}!</p>{% endblock %}"
    "{% block footer %}<!-- nothing here{% endblock %}"
)


def set_address(api, address):
    response = api.patch("/v1/workspace", json={"policy": {"postal_address": address}})
    assert response.status_code == 200, response.json


def marketing_template(api, *, html=NO_FOOTER, text=None, key="sale"):
    api.put("/v1/snippets/layouts/base.html", json={"source": LAYOUT})
    api.put("/v1/snippets/partials/footer.html", json={"source": "<p>Unsubscribe from {{ unsubscribe_url }}</p>"})
    variant = {"channel": "email", "locale": "en", "subject": "Sale", "html": html}
    if text:
        variant["text"] = text
    publish_template(
        api,
        key,
        category="marketing",
        variables=["first_name"],
        variants=[variant, {"channel": "sms", "locale": "en", "body": "Sale, {{ first_name }}!"}],
    )


def mail_of(smtp_server, count=1):
    mails = wait_for(lambda: smtp_server.messages if len(smtp_server.messages) >= count else None)
    return email.message_from_bytes(mails[count - 1].raw, policy=email.policy.default)


@pytest.mark.parametrize("text", [None, "Sale, {{ first_name }}! (no footer in this text either)"])
def test_a_marketing_email_whose_template_drops_the_footer_still_carries_address_and_link(
    api, worker, smtp_server, text
):
    set_address(api, ADDRESS)
    marketing_template(api, text=text)
    put_profile(api, "u1")
    message = finished(api, send(api, template="sale", topic="news").json["id"])
    assert message["status"] == "sent", message

    parsed = mail_of(smtp_server)
    url = parsed["List-Unsubscribe"].strip("<>")
    html = parsed.get_body(("html",)).get_content()
    plain = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    comment = html.index("<!-- nothing here")
    assert comment < html.index("-->", comment) < html.index("ccm-marketing-footer")  # not inside the comment
    assert html.index("ccm-marketing-footer") < html.rindex("</body>")
    assert "Acme Corp.<br>500 Market St &amp; 2nd Ave<br>San Francisco, CA 94105" in html
    assert f'href="{url}"' in html and ">Unsubscribe</a>" in html  # the link is not rewritten for tracking
    assert plain.rstrip().endswith(
        f"-- \nAcme Corp.\n500 Market St & 2nd Ave\nSan Francisco, CA 94105\nUnsubscribe: {url}"
    )
    assert plain.count("Acme Corp.") == 1  # the text is made from the HTML before the footer


def test_a_marketing_email_with_its_own_footer_gets_the_address_and_link_once_more(api, worker, smtp_server):
    set_address(api, ADDRESS)
    marketing_template(api, html="<p>Hi {{ first_name }}</p>")  # a fragment: no layout, no body
    put_profile(api, "u1")
    finished(api, send(api, template="sale").json["id"])
    html = mail_of(smtp_server).get_body(("html",)).get_content()
    assert html.startswith("<p>Hi Ada</p>") or "<p>Hi Ada</p>" in html
    assert html.count("ccm-marketing-footer") == 1 and "San Francisco, CA 94105" in html


def test_a_transactional_email_is_rendered_as_its_template_says(api, worker, smtp_server):
    set_address(api, ADDRESS)
    publish_template(api)  # transactional
    put_profile(api, "u1")
    finished(api, send(api).json["id"])
    parsed = mail_of(smtp_server)
    html = parsed.get_body(("html",)).get_content()
    plain = parsed.get_body(("plain",)).get_content()
    assert "ccm-marketing-footer" not in html and "Acme" not in html
    assert "Acme" not in plain and "Unsubscribe" not in plain and "\n-- \n" not in plain
    assert "List-Unsubscribe" not in parsed


def test_the_preview_shows_the_footer_and_says_when_the_address_is_missing(api):
    set_address(api, None)  # the test workspace has one
    marketing_template(api)
    preview = api.post("/v1/templates/sale/preview", json={"channel": "email", "data": {"first_name": "Ada"}}).json
    assert "[postal address: not set]" in preview["parts"][0]["html"]
    assert [p["code"] for p in preview["problems"]] == ["no_postal_address"]
    set_address(api, ADDRESS)
    preview = api.post("/v1/templates/sale/preview", json={"channel": "email", "data": {"first_name": "Ada"}}).json
    assert "San Francisco, CA 94105" in preview["parts"][0]["html"] and preview["problems"] == []
    assert "Unsubscribe: http://ccm.test/u/preview" in preview["parts"][0]["text"]


def test_the_send_api_refuses_marketing_email_without_a_postal_address(api):
    set_address(api, None)  # the test workspace has one
    marketing_template(api)
    put_profile(api, "u1", phone="+14155550123")
    for body in ({}, {"channel": "email"}, {"channels": ["sms", "email"]}):
        refused = send(api, template="sale", **body)
        assert refused.status_code == 409, refused.json
        error = refused.json["error"]
        assert error["details"] == {"field": "policy.postal_address", "reason": "no_postal_address"}
        assert error["message"].startswith("policy.postal_address: marketing email needs")
        assert 'PATCH /v1/workspace {"policy": {"postal_address":' in error["message"]
    assert api.get("/v1/messages").json["items"] == []  # nothing written
    # Not email: SMS only, or a transactional template, goes.
    assert send(api, template="sale", channel="sms").status_code == 202
    assert send(api, template="sale", channels=["sms"]).status_code == 202
    publish_template(api)
    assert send(api).status_code == 202


def test_the_batch_api_refuses_each_marketing_email_item(api):
    set_address(api, None)  # the test workspace has one
    marketing_template(api)
    put_profile(api, "u1", phone="+14155550123")
    items = [
        {"to": {"external_id": "u1"}, "template": "sale"},
        {"to": {"external_id": "u1"}, "template": "sale", "channel": "sms"},
    ]
    answers = api.post("/v1/messages/batch", json={"messages": items}).json["items"]
    assert [a["status"] for a in answers] == [409, 202]
    assert answers[0]["error"]["details"]["field"] == "policy.postal_address"
    set_address(api, ADDRESS)
    answers = api.post("/v1/messages/batch", json={"messages": items}).json["items"]
    assert [a["status"] for a in answers] == [202, 202]


def test_removing_the_address_stops_queued_marketing_email_at_send_time(api, runtime, smtp_server):
    set_address(api, ADDRESS)
    marketing_template(api)
    put_profile(api, "u1")
    put_profile(api, "u2", phone="+14155550123", channels=["email", "sms"])
    first, second = (send(api, template="sale", to={"external_id": u}).json["id"] for u in ("u1", "u2"))
    set_address(api, None)  # before the worker got to them
    deliver_message(runtime, first)
    deliver_message(runtime, second)
    skipped = api.get(f"/v1/messages/{first}").json
    assert (skipped["status"], skipped["reason"]) == ("skipped", "no_postal_address")
    assert skipped["route"] == [{"channel": "email", "decision": "rejected", "reason": "no_postal_address"}] + [
        hop for hop in skipped["route"][1:]
    ]
    assert smtp_server.messages == []
    fell_back = api.get(f"/v1/messages/{second}").json  # may go by SMS: it does, and says why not email
    assert fell_back["route"][0] == {"channel": "email", "decision": "rejected", "reason": "no_postal_address"}
    assert fell_back["route"][1]["channel"] == "sms"


def test_a_marketing_trigger_skips_its_email_without_a_postal_address(api, app, write_key, runtime):
    client = app.test_client()
    set_address(api, None)
    marketing_template(api)
    make_trigger(api, template="sale", category="marketing")
    identify(client, write_key, "u-1", first_name="Ada")

    assert track(client, write_key, "u-1", "cart_abandoned").json["stored"] == 1  # the event is kept

    (message,) = messages(runtime)
    assert (message.status, message.reason) == ("skipped", "no_postal_address")
    (fire,) = fires(runtime)
    assert (fire.status, fire.reason, fire.message_id) == ("skipped", "no_postal_address", message.id)
    set_address(api, ADDRESS)
    track(client, write_key, "u-1", "cart_abandoned")
    assert [m.status for m in messages(runtime)] == ["skipped", "queued"]


def test_the_footer_goes_before_the_last_body_end_and_escapes_what_it_prints():
    footer = MarketingFooter("<b>Acme</b>\n\n 1 Road ", "https://ccm.test/u/t?a=1&b=2")
    html = footer.add_to_html("<html><body><p>x</p></BODY ></html>")
    assert html.startswith('<html><body><p>x</p><div class="ccm-marketing-footer"')
    assert html.endswith("</BODY ></html>")
    assert "&lt;b&gt;Acme&lt;/b&gt;<br>1 Road" in html and 'href="https://ccm.test/u/t?a=1&amp;b=2"' in html
    assert footer.add_to_html("<p>x</p>").startswith("<p>x</p><div")  # a fragment: at the end
    assert (
        footer.add_to_text("Hello\n\n")
        == "Hello\n\n-- \n<b>Acme</b>\n1 Road\nUnsubscribe: https://ccm.test/u/t?a=1&b=2\n"
    )
