"""The campaign screens in Chromium: compose and launch a campaign and watch its progress bar,
kept live by the event stream, reach 100 %; then its results with their charts; the dashboard.
Compose an A/B test on a sample with a sending calendar at phone width, launch it, see it wait
for its winner, and pick the winner by hand."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.campaigns.conftest import publish_promo, ready, seed_profiles
from tests.web.browser import PHONE, screenshot


def test_launch_a_campaign_and_watch_the_progress_bar_reach_100(browse, api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 12)
    page = browse("marketer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("Spring sale")
    page.get_by_label("Segment").select_option(segment)
    page.get_by_label("Template", exact=True).select_option("promo")
    page.get_by_label("Throttle (messages per second, optional)").fill("4")
    page.get_by_role("button", name="Save draft").click()
    assert page.get_by_role("heading", name="Spring sale").is_visible()
    page.get_by_role("button", name="Launch").click()

    bar = page.get_by_label("Messages ended, of those targeted")
    expect(bar).to_have_attribute("value", re.compile(r"^[1-9][0-9]?(\.[0-9]+)?$"), timeout=15_000)  # part way
    screenshot(page, "campaign-progress")  # the throttle spreads the 12 messages over 3 seconds
    expect(bar).to_have_attribute("value", "100", timeout=30_000)
    assert bar.get_attribute("max") == "100"
    expect(page.get_by_role("status").filter(has_text="The campaign is completed.")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("Status: completed")).to_be_visible()
    assert page.locator('[data-field="progress"]').inner_text() == "100 %"
    assert page.locator('[data-field="count-targeted"]').inner_text() == "12"
    assert page.get_by_role("button", name="Pause").is_hidden()
    assert len({r for m in smtp_server.messages for r in m.rcpt_tos}) == 12

    page.get_by_role("link", name="Results and charts").click()
    assert page.get_by_role("img", name="Funnel").is_visible()
    assert page.get_by_role("img", name="By channel").is_visible()
    assert page.locator('[data-rate="delivery"]').inner_text() == "100.0 %"
    assert page.get_by_role("link", name="Download the results (CSV)").is_visible()
    screenshot(page, "campaign-results")

    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_role("img", name="Messages by status, day by day").is_visible()
    assert page.locator('[data-count="messages"]').inner_text() == "12"
    screenshot(page, "dashboard")


def test_a_viewer_reads_the_campaign_screens_at_phone_width_without_buttons(browse, api):
    segment = ready(api)
    api.post("/v1/campaigns", json={"name": "Spring sale", "template": "promo", "segment": segment})
    page = browse("viewer", viewport=PHONE)
    page.get_by_role("link", name="Campaigns").click()
    assert page.get_by_role("link", name="New campaign").count() == 0
    page.get_by_role("link", name="Spring sale").click()
    assert page.get_by_role("button", name="Launch").count() == 0
    for path in (page.url, page.url + "/results"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways: {width}px"


def test_compose_an_ab_test_with_a_calendar_launch_it_and_pick_the_winner_by_hand(
    browse, api, runtime, workspace, worker, smtp_server
):
    segment = ready(api)
    publish_promo(api, "promo-b")
    seed_profiles(runtime, workspace[0], 12)
    page = browse("marketer", viewport=PHONE)
    page.goto("/campaigns/new")
    page.get_by_label("Name").fill("Subject line test")
    page.get_by_label("Segment").select_option(segment)
    page.get_by_label("Variant A template").select_option("promo")
    page.get_by_label("Variant B template").select_option("promo-b")
    page.get_by_label("Sample (percent of the audience that gets the variants)").fill("50")
    page.get_by_label("Wait (hours before the winner is chosen)").fill("24")
    page.get_by_label("Winner by").select_option("clicked")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        page.get_by_label(day).check()
    page.get_by_label("Send from (HH:MM)").fill("09:00")
    page.get_by_label("Send until (HH:MM, not included)").fill("18:00")
    _fits_the_phone(page)
    screenshot(page, "campaign-composer-ab")
    page.get_by_role("button", name="Save draft").click()

    assert page.get_by_role("heading", name="Subject line test").is_visible()
    setup = page.get_by_role("region", name="Set-up")
    expect(setup.get_by_role("row", name="A/B test")).to_contain_text("a 50 % sample, winner by clicks after 24 h")
    expect(setup.get_by_role("row", name="Sending calendar")).to_contain_text(
        "Monday, Tuesday, Wednesday, Thursday, Friday; 09:00–18:00 in each recipient's time zone"
    )
    stage = page.locator('[data-field="ab-stage"]')
    expect(stage).to_contain_text("Not started")
    page.get_by_role("button", name="Launch").click()

    # The sample is written, then the page (kept live) says the test waits for its winner.
    expect(stage).to_contain_text("Waiting for the winner", timeout=20_000)
    expect(stage).to_contain_text("the winner by clicks is chosen at")
    _fits_the_phone(page)
    screenshot(page, "campaign-ab-waiting")
    test = page.get_by_role("region", name="A/B test")
    test.get_by_label("Variant B (promo-b)").check()
    test.get_by_role("button", name="Pick the winner now").click()

    expect(page.get_by_role("heading", name="Send variant B to the rest of the audience?")).to_be_visible()
    screenshot(page, "campaign-ab-confirm")
    page.get_by_role("button", name="Yes, send variant B to the rest").click()
    expect(page.locator('[data-field="ab-stage"]')).to_contain_text(
        re.compile(r"variant B (won )?\(picked by hand"), timeout=20_000
    )
    decided = api.get(f"/v1/campaigns/{page.url.rsplit('/', 1)[-1]}").json["ab_test"]
    assert (decided["winner"], decided["decided_by"]) == ("B", "manual")


def _fits_the_phone(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px"
