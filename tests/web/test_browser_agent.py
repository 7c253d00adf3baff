"""A support agent in Chromium: answering a conversation (the person's next reply arriving live in
the thread) and finding the answer and the replies on the customer's timeline; and a search that
leads to a profile, where choosing a template brings its variables' fields, sent from there (at phone width)."""

from __future__ import annotations

from sqlalchemy import select

from ccm.messages.models import Message
from tests.messages.test_send_api import finished
from tests.support.factories import publish_template
from tests.web.browser import PHONE, screenshot
from tests.web.test_conversations import reply_again, start_conversation


def test_an_agent_answers_a_conversation_and_sees_the_reply_on_the_timeline(browse, api, runtime, worker):
    start_conversation(api, runtime, body="Which plan am I on?")
    page = browse("agent")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    screenshot(page, "inbox")
    page.get_by_role("link", name="Ada").click()
    assert page.get_by_text("Which plan am I on?").is_visible()

    page.get_by_label("Your answer (on email)").fill("You are on the pro plan.")
    page.get_by_role("button", name="Send answer").click()
    page.get_by_role("list").get_by_text("You are on the pro plan.").wait_for()
    [answer] = [m for m in api.get("/v1/messages").json["items"] if m["template"] != "welcome"]
    assert finished(api, answer["id"])["status"] == "delivered"  # through the local outbox

    reply_again(api, "Thanks, and can I upgrade?")  # arrives while the page is open
    page.get_by_text("Thanks, and can I upgrade?").wait_for(timeout=8_000)

    page.get_by_role("main").get_by_role("link", name="Ada").click()
    timeline = page.locator("ol.timeline")
    timeline.get_by_text("Thanks, and can I upgrade?").wait_for()
    assert timeline.locator(".entry-message", has_text="support").count() == 1
    screenshot(page, "profile-timeline")


def test_a_search_leads_to_the_profile_where_a_template_brings_its_fields(browse, api, runtime):
    publish_template(api)
    api.put(
        "/v1/profiles/ada-1",
        json={"email": "ada@example.com", "attributes": {"first_name": "Ada", "last_name": "Lovelace"}},
    )
    api.put("/v1/profiles/grace-1", json={"email": "grace@example.com", "attributes": {"name": "Grace Hopper"}})
    page = browse("agent", viewport=PHONE)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_label("Email, phone, external id or name").fill("love")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name="Grace Hopper").count() == 0
    page.get_by_role("link", name="Ada Lovelace").click()
    page.wait_for_load_state()  # htmx listens for the change below only once the page's scripts ran
    assert page.get_by_role("heading", name="Ada Lovelace").is_visible()
    assert page.get_by_role("heading", name="Channels and consent").is_visible()

    page.get_by_label("Template").select_option("welcome")  # the form asks again, with the template's variables
    page.get_by_label("plan", exact=True).wait_for()
    assert page.get_by_label("Text").count() == 0
    page.get_by_label("plan", exact=True).fill("team")
    page.get_by_role("button", name="Send").click()
    assert "queued" in page.get_by_role("status").inner_text()
    with runtime.db.read_only() as session:
        [sent] = session.execute(select(Message.template_key, Message.data, Message.source)).all()
    assert tuple(sent) == ("welcome", {"plan": "team"}, "support")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the profile scrolls sideways: {width}px"
