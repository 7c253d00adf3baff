"""The results per channel, summed from the same (variant, channel) counts as the results per
variant: a message's engagement is counted in its own channel and variant, once."""

from __future__ import annotations

from ccm.campaigns.models import Campaign
from ccm.campaigns.results import campaign_results
from tests.campaigns.results_helpers import Recipient, make_campaign


def test_each_channel_counts_its_own_messages_across_variants(runtime, api, workspace):
    recipients = [
        Recipient("a1", "A", "delivered", engagement=["opened", "clicked"]),
        Recipient("a2", "A", "sent", channel="sms", engagement=["clicked"]),
        Recipient("a3", "A", "skipped", reason="no_consent: email, marketing", sent_after=None),
        Recipient("b1", "B", "sent", channel="sms", engagement=["replied"]),
        Recipient("b2", "B", "sent", channel="sms", engagement=["machine_opened"]),
        Recipient("b3", "B", "skipped", reason="frequency_cap: 3 a week", channel="sms", sent_after=None),
    ]
    campaign_id = make_campaign(runtime, api, workspace[0], recipients)
    with runtime.db.unit_of_work() as session:
        measured = campaign_results(session, session.get_one(Campaign, campaign_id))
    assert list(measured.channels) == ["sms", "email"]  # largest first
    sms, email = measured.channels["sms"].counts, measured.channels["email"].counts
    assert (sms["targeted"], sms["sent"], sms["skipped"]) == (4, 3, 1)
    assert (sms["opened"], sms["clicked"], sms["replied"], sms["machine_opened"]) == (1, 1, 1, 1)
    assert (email["targeted"], email["sent"], email["opened"], email["clicked"]) == (2, 1, 1, 1)
    assert measured.channels["sms"].skipped_by_reason == {"frequency_cap": 1}
    assert measured.channels["email"].skipped_by_reason == {"no_consent": 1}
    a, b = measured.variants["A"].counts, measured.variants["B"].counts
    assert (a["targeted"], a["opened"], a["clicked"], b["targeted"], b["replied"]) == (3, 2, 2, 3, 1)
    assert measured.total.counts["targeted"] == sms["targeted"] + email["targeted"]
