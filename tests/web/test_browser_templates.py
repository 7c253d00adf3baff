"""The template screens in Chromium: composing a template with its live preview and publishing it,
and the email preview's sandboxed frame."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.factories import publish_template
from tests.web.browser import PHONE, screenshot


def test_compose_and_publish_a_template_with_live_preview(browse):
    page = browse("marketer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="New template").click()
    page.wait_for_load_state()  # htmx listens for the input below only once the page's scripts ran
    page.get_by_label("Key").fill("order-shipped")
    page.get_by_label("Name").fill("Order shipped")
    page.get_by_label("First channel").select_option("sms")
    page.get_by_label("Variables").fill("first_name")
    page.get_by_role("button", name="Create").click()

    body = page.get_by_label("Body")
    body.fill("Hi {{ first_name }}, your order is on its way")
    preview = page.locator("[data-rendered=sms]")
    expect(preview).to_have_text("Hi [first_name], your order is on its way")
    counter = page.locator("[data-sms-counter]")
    expect(counter).to_have_text("1 segment · GSM-7")
    body.press_sequentially(" 🚚")
    expect(preview).to_have_text("Hi [first_name], your order is on its way 🚚")
    expect(counter).to_have_text("1 segment · UCS-2")
    body.press_sequentially(" {% if %}")
    expect(page.locator("#problems-variants-0-sms-body")).to_contain_text("line 1")
    body.fill("Hi {{ first_name }}, your order is on its way 🚚")
    expect(page.locator("#problems-variants-0-sms-body")).to_be_empty()

    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_have_text("Published version 1.")
    expect(page.get_by_role("row", name=re.compile("Version 1 \\(latest\\)"))).to_be_visible()


def test_the_email_preview_renders_in_its_frame_as_typed(browse, api):
    publish_template(api)
    page = browse("marketer")
    page.goto("/templates/welcome")
    frame = page.frame_locator("iframe[title='Email preview, en']")
    expect(frame.get_by_role("heading", name="Welcome, [first_name]!")).to_be_visible()
    page.get_by_label("Sample data (JSON)").fill('{"first_name": "Ada"}')
    expect(frame.get_by_role("heading", name="Welcome, Ada!")).to_be_visible()
    expect(page.locator("#preview-0 .subject")).to_have_text("Welcome, Ada")
    spanish = page.frame_locator("iframe[title='Email preview, es']")
    expect(spanish.get_by_text("Hola Ada, plan [plan].")).to_be_visible()
    screenshot(page, "template-editor")


def test_the_editor_reads_at_phone_width(browse, api):
    publish_template(api)
    page = browse("viewer", viewport=PHONE)
    page.goto("/templates/welcome")
    expect(page.locator("[data-rendered=sms]")).to_have_text("Welcome [first_name]!")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
