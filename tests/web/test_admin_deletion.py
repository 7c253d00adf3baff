"""Deleting a provider and a webhook from the admin screens: a confirmation page says what goes
with it, the POST (CSRF-checked, admins only) deletes and audits it; a provider whose deletion
would strand waiting messages is refused with the reason, and nothing else changes."""

from __future__ import annotations

from sqlalchemy import func, select

from ccm.channels.models import ProviderAccount
from ccm.webhooks.delivery import deliver_webhook
from ccm.webhooks.models import WebhookDelivery, WebhookEndpoint
from ccm.webhooks.service import emit
from tests.channels.test_provider_accounts import add_provider
from tests.support.factories import publish_template, put_profile
from tests.web.conftest import csrf_of
from tests.web.test_admin import audited


def _count(runtime, model):
    with runtime.db.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model))


def _queue_sms(api):
    publish_template(
        api,
        "ping",
        variables=["first_name"],
        variants=[{"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}"}],
    )
    put_profile(api, "u1", phone="+14155550100", channels=["sms"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "ping", "channel": "sms"})
    assert accepted.status_code == 202, accepted.json


def test_an_admin_deletes_a_provider_after_confirming(admin, api, runtime):
    account = add_provider(api, "local_outbox", "Box", {"channel": "sms"})["id"]
    listing = admin.get("/admin/providers").text
    assert f'href="/admin/providers/{account}/delete" aria-label="Delete Box"' in listing
    confirm = admin.get(f"/admin/providers/{account}/delete")
    assert confirm.status_code == 200 and "Delete the provider Box?" in confirm.text
    assert "only enabled sms provider" in confirm.text and ">Delete Box</button>" in confirm.text
    assert _count(runtime, ProviderAccount) == 1  # the confirmation page changes nothing
    deleted = admin.post_form(f"/admin/providers/{account}/delete")
    assert deleted.status_code == 200 and "Deleted Box." in deleted.text
    assert _count(runtime, ProviderAccount) == 0
    [(actor, target, before, after)] = audited(runtime, "provider.delete")
    assert (actor, target, before["label"], after) == ("user:admin@example.com", account, "Box", None)
    assert admin.post_form(f"/admin/providers/{account}/delete").status_code == 404


def test_the_only_provider_of_a_channel_messages_wait_on_is_refused_with_the_reason(admin, api, runtime):
    account = add_provider(api, "local_outbox", "Box", {"channel": "sms"})["id"]
    _queue_sms(api)
    confirm = admin.get(f"/admin/providers/{account}/delete").text
    assert (
        'id="refused"' in confirm and "1 messages wait to be sent" in confirm and ">Delete Box</button>" not in confirm
    )
    refused = admin.post_form(f"/admin/providers/{account}/delete")
    assert refused.status_code == 409 and "disable this one first" in refused.text
    assert _count(runtime, ProviderAccount) == 1 and audited(runtime, "provider.delete") == []
    admin.post_form(f"/admin/providers/{account}/disable")
    assert ">Delete Box</button>" in admin.get(f"/admin/providers/{account}/delete").text
    assert admin.post_form(f"/admin/providers/{account}/delete").status_code == 200
    assert _count(runtime, ProviderAccount) == 0


def test_an_admin_deletes_a_webhook_with_its_delivery_log(admin, api, runtime, workspace):
    api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
    hook = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}).json
    with runtime.db.unit_of_work() as session:
        emit(session, workspace[0], "message.sent", {"message_id": "msg_1"})
    with runtime.db.unit_of_work() as session:
        [delivery_id] = session.scalars(select(WebhookDelivery.id)).all()
    assert f'href="/admin/webhooks/{hook["id"]}/delete"' in admin.get("/admin/webhooks").text
    confirm = admin.get(f"/admin/webhooks/{hook['id']}/delete").text
    assert "1 deliveries still pending are not made" in confirm and "delivery log (1 deliveries)" in confirm
    deleted = admin.post_form(f"/admin/webhooks/{hook['id']}/delete")
    assert deleted.status_code == 200 and "Deleted the webhook to http://127.0.0.1:9/hook." in deleted.text
    assert (_count(runtime, WebhookEndpoint), _count(runtime, WebhookDelivery)) == (0, 0)
    deliver_webhook(runtime, delivery_id)  # its queued job still runs: it finds nothing to do
    [(actor, target, before, _)] = audited(runtime, "webhook.delete")
    assert (actor, target, before["url"]) == ("user:admin@example.com", hook["id"], "http://127.0.0.1:9/hook")
    assert admin.get(f"/admin/webhooks/{hook['id']}/delete").status_code == 404


def test_a_deletion_without_the_csrf_token_or_by_a_non_admin_changes_nothing(
    admin,
    web_client,
    api,
    runtime,
):
    account = add_provider(api, "local_outbox", "Box", {"channel": "sms"})["id"]
    api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
    hook = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}).json
    paths = [f"/admin/providers/{account}/delete", f"/admin/webhooks/{hook['id']}/delete"]
    for path in paths:
        assert admin.post(path, data={}).status_code == 403, path
    agent = web_client("agent")
    csrf = csrf_of(agent.get("/").text)
    for path in paths:
        assert agent.get(path).status_code == 403, path
        assert agent.post(path, data={"csrf_token": csrf}).status_code == 403, path
    assert (_count(runtime, ProviderAccount), _count(runtime, WebhookEndpoint)) == (1, 1)
