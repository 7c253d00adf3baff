"""The marketer's flows in Chromium: building a segment and seeing its count, and importing a CSV
file while its progress bar fills, then downloading the row report."""

from __future__ import annotations

import re

import pytest

from tests.segments.conftest import add_profile
from tests.web.browser import PHONE, screenshot

PEOPLE = "email,first name,plan\nana@example.com,Ana,pro\nbob@example.com,Bob,free\nnot-an-email,Cy,pro\n"


@pytest.fixture
def people(runtime, workspace):
    with runtime.db.unit_of_work() as session:
        for name, country in (("ana", "FR"), ("bob", "FR"), ("cy", "DE")):
            add_profile(session, workspace[0], name, attributes={"country": country})


def assert_reads_at_phone_width(page):
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    page.set_viewport_size({"width": 1280, "height": 800})


def test_build_a_segment_and_see_its_count(browse, people):
    page = browse("marketer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    page.wait_for_load_state()  # htmx listens for the input below only once the page's scripts ran
    page.get_by_label("Name").fill("France")
    page.get_by_label("Field").fill("attributes.country")
    page.get_by_label("Value").fill("FR")
    count = page.locator("#preview .figure")
    count.filter(has_text=re.compile(r"^2$")).wait_for()
    assert page.get_by_role("cell", name="ana@example.com").is_visible()
    page.get_by_label("New condition type").select_option("reachable")
    page.get_by_role("button", name="Add condition").click()
    page.get_by_label("Reachable by").wait_for()
    page.get_by_label("Value").fill("")
    page.get_by_label("Operator").select_option("between")
    page.locator("#err-rows-0-value").filter(has_text="values").wait_for()
    assert page.get_by_label("Value").get_attribute("aria-invalid") == "true"
    page.get_by_label("Value").fill("DE, FR")
    count.filter(has_text=re.compile(r"^3$")).wait_for()
    screenshot(page, "segment-builder")
    assert_reads_at_phone_width(page)
    page.get_by_role("button", name="Save segment").click()
    page.get_by_role("status").filter(has_text="Saved.").wait_for()
    page.get_by_role("link", name="All segments").click()
    page.locator('[data-segment="France"] .figure').filter(has_text="3").wait_for()


def test_import_a_csv_and_watch_the_progress_reach_100_then_download_the_report(browse, worker, tmp_path):
    page = browse("marketer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    page.wait_for_load_state()  # htmx listens for the input below only once the page's scripts ran
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE)
    page.get_by_label("CSV file of profiles").set_input_files(str(path))
    page.get_by_label("plan").wait_for()
    assert page.get_by_label("email", exact=True).input_value() == "email"
    assert page.locator('[data-detected="delimiter"]').inner_text() == "comma"
    page.get_by_label("plan").fill("attributes.tier")
    assert_reads_at_phone_width(page)
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url(re.compile(r"/imports/imp_"))
    page.locator('[data-status="completed"]').wait_for()
    bar = page.get_by_label("Rows imported")
    assert bar.get_attribute("value") == "100.0"
    assert page.locator(".percent").inner_text() == "100.0 %"
    assert page.locator('[data-count="created"]').inner_text() == "2"
    assert page.locator('[data-count="invalid"]').inner_text() == "1"
    screenshot(page, "import-progress")
    assert_reads_at_phone_width(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the row report (CSV)").click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0] == "row,column,value,reason" and lines[1].startswith("4,email,not-an-email,")
