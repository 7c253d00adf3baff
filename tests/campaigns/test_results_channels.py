"""The results per channel, summed from the same (variant, channel) counts as the results per
variant: a message's engagement is counted in its own channel and variant, once."""

from __future__ import annotations

from ccm.campaigns.models import Campaign
from ccm.campaigns.results import campaign_results, hourly_engagement
from tests.campaigns.results_helpers import LAUNCH, Recipient, add_recipients, make_campaign


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


def test_engagement_of_messages_written_among_the_campaigns_is_not_counted(runtime, api, workspace):
    # The counts read the events whose message id lies between the campaign's first and last:
    # another campaign's messages written in between are in that range, and must not count.
    first = make_campaign(runtime, api, workspace[0], [Recipient("f1", engagement=["opened"])], variants=("A",))
    with runtime.db.unit_of_work() as session:
        other = Campaign(workspace_id=workspace[0], name="Other", segment_id="seg_test", launched_at=LAUNCH)
        session.add(other)
    theirs = [Recipient("o1", engagement=["opened", "clicked"]), Recipient("o2", engagement=["replied"])]
    add_recipients(runtime, api, workspace[0], other.id, theirs)
    add_recipients(runtime, api, workspace[0], first, [Recipient("f2", engagement=["machine_opened"])])
    with runtime.db.unit_of_work() as session:
        campaign = session.get_one(Campaign, first)
        counts = campaign_results(session, campaign).total.counts
        hourly = hourly_engagement(session, campaign, hours=3)
    assert (counts["targeted"], counts["opened"], counts["clicked"], counts["replied"]) == (2, 1, 0, 0)
    assert counts["machine_opened"] == 1
    assert hourly == {(0, "A"): {"opened": 1, "clicked": 0, "machine_opened": 1}}
