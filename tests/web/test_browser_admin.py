"""The admin screens and the outbox in Chromium: an admin configures a provider, deletes it after
the confirmation page, and reads the audit log; a viewer finds no admin control, and a forced form is refused."""

from __future__ import annotations

from sqlalchemy import func, select

from ccm.audit.models import AuditEntry
from ccm.messages.delivery import deliver_message
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile
from tests.web.browser import PHONE, screenshot


def test_an_admin_configures_a_provider_and_reads_the_audit_log(browse, smtp_server):
    page = browse("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Providers").click()
    page.get_by_label("Kind").select_option("smtp")
    page.get_by_role("button", name="Configure").click()
    page.get_by_label("Label").fill("Relay")
    page.get_by_label("url (required)").fill(smtp_server.url())
    page.get_by_role("button", name="Add provider").click()
    assert page.get_by_role("status").first.inner_text() == "Added Relay."
    page.get_by_role("button", name="Check Relay").click()
    assert page.get_by_role("status").first.inner_text() == "Relay: the check passed."
    page.get_by_role("link", name="Relay", exact=True).click()
    assert page.get_by_label("url (required)").input_value() == ""  # a secret is never shown back
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Providers").click()
    screenshot(page, "admin-providers")
    page.get_by_role("link", name="Delete Relay").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Delete the provider Relay?"
    page.get_by_role("link", name="Cancel").click()  # nothing deleted: the list is back, Relay in it
    page.get_by_role("link", name="Delete Relay").click()
    page.get_by_role("button", name="Delete Relay").click()
    assert page.get_by_role("status").first.inner_text() == "Deleted Relay."
    assert page.get_by_role("link", name="Relay", exact=True).count() == 0
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("provider.create")
    page.get_by_role("button", name="Filter").click()
    entry = page.locator("article.entry")
    assert entry.count() == 1 and "by user:admin@example.com" in entry.inner_text()
    assert '"url": "********"' in entry.inner_text() and smtp_server.url() not in page.content()
    screenshot(page, "audit-log")
    page.set_viewport_size(PHONE)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Settings").click()
    page.wait_for_url("**/admin/settings")
    page.wait_for_load_state()  # the stylesheet applied
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # its wide tables scroll


def test_a_viewer_cannot_change_anything(browse, api, runtime):
    api.patch("/v1/workspace", json={"policy": {"tracking": {"opens": False, "clicks": False}}})
    publish_template(api)
    put_profile(api, "u1")
    deliver_message(runtime, send(api).json["id"])
    page = browse("viewer", viewport=PHONE)
    main_nav = page.get_by_role("navigation", name="Main")
    assert main_nav.get_by_role("link", name="Admin").count() == 0
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    forced = page.request.post(
        "/admin/users", form={"csrf_token": csrf, "email": "sneaky@example.com", "role": "admin"}
    )
    assert forced.status == 403 and "viewer" in forced.text()
    settings = page.request.post("/admin/settings", form={"csrf_token": csrf, "help_text": "Sneaky"})
    assert settings.status == 403
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.actor.like("user:%"))) == 0
    main_nav.get_by_role("link", name="Outbox").click()
    page.get_by_role("link", name="Welcome, Ada").click()
    assert page.get_by_role("button").filter(has_text="Save").count() == 0
    frame = page.frame_locator("iframe.email")
    assert frame.get_by_role("heading", name="Welcome, Ada!").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "outbox")
