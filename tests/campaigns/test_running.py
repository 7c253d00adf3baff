"""A campaign from launch to completion with the in-process worker: every recipient gets one
email at the SMTP server, the counts are exact, the progress is readable."""

from __future__ import annotations

from tests.campaigns.conftest import make_campaign, ready, seed_profiles, wait_status


def test_a_launched_campaign_sends_one_email_to_each_recipient_and_completes(
    api, runtime, workspace, worker, smtp_server
):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 30)
    campaign = make_campaign(api, segment)
    assert campaign["status"] == "draft"

    launched = api.post(f"/v1/campaigns/{campaign['id']}/launch")
    assert launched.status_code == 200, launched.json
    done = wait_status(api, campaign["id"], "completed", timeout=60)

    assert done["counts"]["targeted"] == 30
    assert done["counts"]["sent"] + done["counts"]["delivered"] == 30
    assert done["progress"] == 100.0
    recipients = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert recipients == sorted(f"p{n}@example.com" for n in range(30))
