"""A campaign with messages in known states, for the results, winner and export tests: the
campaign and its message rows are written as the engine writes them (the agreed columns), their
attempts as a delivery leaves them, engagement through :func:`ccm.engagement.service.record_events`
and conversions through the tracking API."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from ccm.campaigns.models import Campaign, CampaignHoldout, CampaignStatus, CampaignVariant, FanoutPhase
from ccm.engagement.service import record_events
from ccm.message_templates.models import TemplateVersion
from ccm.messages.models import AttemptOutcome, DeliveryAttempt, Message
from ccm.profiles.models import Profile
from tests.support.factories import publish_template, put_profile

LAUNCH = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@dataclass
class Recipient:
    """One message of the campaign: its profile, variant and status, when it was sent (minutes
    after the launch; None: never), and the engagement kinds it got (``"opened"``,
    ``"machine_opened"``, ``"clicked"``, ``"bounced"`` …)."""

    external_id: str
    variant: str = "A"
    status: str = "sent"
    reason: str | None = None
    sent_after: float | None = 1.0
    engagement: list[str] = field(default_factory=list)
    channel: str = "email"
    created_after: float = 0.0
    """Minutes after the launch the message was written (the rest of an A/B test: after the decision)."""


def make_campaign(
    runtime: Any,
    api: Any,
    workspace_id: str,
    recipients: list[Recipient],
    *,
    variants: tuple[str, ...] = ("A", "B"),
    ab_test: dict[str, Any] | None = None,
    goal: dict[str, Any] | None = None,
    holdout: tuple[str, ...] = (),
    status: str = CampaignStatus.RUNNING,
    phase: str = FanoutPhase.SAMPLE,
) -> str:
    """Write the campaign and its messages; returns its id."""
    publish_template(api, "promo")
    for external_id in dict.fromkeys([*(r.external_id for r in recipients), *holdout]):
        put_profile(api, quote(external_id, safe=""), email=email_of(external_id))
    with runtime.db.unit_of_work() as session:
        version = session.scalars(select(TemplateVersion).where(TemplateVersion.workspace_id == workspace_id)).first()
        profiles = dict(
            session.execute(select(Profile.external_id, Profile.id).where(Profile.workspace_id == workspace_id)).all()
        )
        campaign = Campaign(
            workspace_id=workspace_id,
            name="Winter sale",
            segment_id="seg_test",
            status=status,
            ab_test=ab_test,
            goal=goal,
            launched_at=LAUNCH,
            fanout_phase=phase,
        )
        session.add(campaign)
        session.flush()
        for index, key in enumerate(variants):
            session.add(CampaignVariant(campaign_id=campaign.id, key=key, template="promo", weight=1.0 + index))
        for external_id in holdout:
            session.add(CampaignHoldout(campaign_id=campaign.id, profile_id=profiles[external_id], added_at=LAUNCH))
        for recipient in recipients:
            _add_message(session, campaign, version, profiles[recipient.external_id], recipient)
    return campaign.id


def add_recipients(runtime: Any, api: Any, workspace_id: str, campaign_id: str, recipients: list[Recipient]) -> None:
    """More messages for a campaign made by :func:`make_campaign` (profiles made for them)."""
    for recipient in recipients:
        put_profile(api, quote(recipient.external_id, safe=""), email=email_of(recipient.external_id))
    with runtime.db.unit_of_work() as session:
        version = session.scalars(select(TemplateVersion).where(TemplateVersion.workspace_id == workspace_id)).first()
        campaign = session.get_one(Campaign, campaign_id)
        profiles = dict(
            session.execute(select(Profile.external_id, Profile.id).where(Profile.workspace_id == workspace_id)).all()
        )
        for recipient in recipients:
            _add_message(session, campaign, version, profiles[recipient.external_id], recipient)


def email_of(external_id: str) -> str:
    """The email address of a test profile (any external id makes a valid one)."""
    return f"p{hashlib.sha1(external_id.encode()).hexdigest()[:10]}@example.com"


def _add_message(session: Any, campaign: Campaign, version: Any, profile_id: str, recipient: Recipient) -> None:
    sent_at = LAUNCH + dt.timedelta(minutes=recipient.sent_after) if recipient.sent_after is not None else None
    message = Message(
        workspace_id=campaign.workspace_id,
        profile_id=profile_id,
        source="campaign",
        send_key=f"campaign:{campaign.id}:{profile_id}",
        category="marketing",
        template_version_id=version.id,
        template_key="promo",
        template_version=version.version,
        channel=recipient.channel,
        to_address=email_of(recipient.external_id) if recipient.status != "skipped" else None,
        campaign_id=campaign.id,
        variant=recipient.variant,
        status=recipient.status,
        reason=recipient.reason or (None if recipient.status == "queued" else f"{recipient.status}: test"),
        deadline_at=LAUNCH + dt.timedelta(days=3),
        created_at=LAUNCH + dt.timedelta(minutes=recipient.created_after),
        # a delivery report rewrites finished_at: the send time is the attempt's
        finished_at=sent_at + dt.timedelta(hours=5) if sent_at else None,
    )
    session.add(message)
    session.flush()
    if sent_at is not None:
        session.add(
            DeliveryAttempt(
                message_id=message.id,
                number=1,
                channel=recipient.channel,
                provider="smtp",
                to_address=message.to_address,
                outcome=AttemptOutcome.SENT,
                started_at=sent_at,
                finished_at=sent_at,
            )
        )
    record_events(session, [_event(message, kind, sent_at or LAUNCH, n) for n, kind in enumerate(recipient.engagement)])


def _event(message: Message, kind: str, sent_at: dt.datetime, n: int) -> dict[str, Any]:
    machine = kind.startswith("machine_")
    return {
        "workspace_id": message.workspace_id,
        "profile_id": message.profile_id,
        "message_id": message.id,
        "channel": message.channel,
        "kind": kind.removeprefix("machine_"),
        "machine": machine,
        "source": "test",
        "dedupe_key": f"test:{message.id}:{n}",
        "occurred_at": sent_at + dt.timedelta(minutes=10 + 61 * n),
    }


def track(app: Any, write_key: str, user_id: str, event: str, at: dt.datetime) -> None:
    """An event for a profile, through the Segment-compatible tracking API."""
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    body = {"userId": user_id, "event": event, "timestamp": at.isoformat(), "messageId": f"{user_id}-{at}"}
    response = app.test_client().post(
        "/v1/track", data=json.dumps(body), headers={"Authorization": auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.json
