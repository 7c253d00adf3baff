"""Making, changing and reading campaigns, and the moves people ask for: launch, pause, resume,
cancel. Each move is one compare-and-set (:mod:`ccm.campaigns.state`); a move that lost a race
answers with the campaign as the winner left it."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.campaigns import engine, state
from ccm.campaigns.models import Campaign, CampaignStatus, CampaignVariant, FanoutPhase
from ccm.campaigns.schemas import CampaignFields, CampaignIn, CampaignPatch, VariantIn
from ccm.campaigns.timing import DAYS
from ccm.db import utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.message_templates.service import is_internal
from ccm.pagination import PageQuery, paginate, split_page
from ccm.runtime import Runtime
from ccm.segments.service import get_segment
from ccm.workspaces.compliance import marketing_email_refusal
from ccm.workspaces.service import workspace_policy

S = CampaignStatus
_SEED = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EDITABLE = (S.DRAFT, S.SCHEDULED)


def create_campaign(*, session: Session, workspace_id: str, data: CampaignIn) -> Campaign:
    """A draft campaign.

    Raises:
      NotFound: the segment or a template does not exist (the error names the field).
      ValidationFailed: the fields contradict each other (both template and variants, …).
    """
    campaign = Campaign(
        workspace_id=workspace_id,
        name=data.name,
        segment_id=data.segment,
        category=data.category,
        id_seed="".join(secrets.choice(_SEED) for _ in range(5)),
        schedule={},
        holdout_percent=0.0,
    )
    _apply(session, campaign, data, fields=data.model_fields_set | {"name", "segment", "category", "template"})
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(*, session: Session, workspace_id: str, campaign_id: str, lock: bool = False) -> Campaign:
    """Raises NotFound when the workspace has no such campaign."""
    statement = select(Campaign).where(Campaign.id == campaign_id, Campaign.workspace_id == workspace_id)
    if lock:
        statement = statement.with_for_update()
    campaign = session.scalars(statement.execution_options(populate_existing=True)).first()
    if campaign is None:
        raise NotFound(f"campaign: no campaign {campaign_id!r}", field="campaign")
    return campaign


def variants_of(session: Session, campaign_id: str) -> list[CampaignVariant]:
    statement = select(CampaignVariant).where(CampaignVariant.campaign_id == campaign_id).order_by(CampaignVariant.key)
    return list(session.scalars(statement.execution_options(populate_existing=True)))


def list_campaigns(
    *, session: Session, workspace_id: str, page: PageQuery, status: CampaignStatus | None
) -> tuple[Sequence[Campaign], str | None]:
    statement = select(Campaign).where(Campaign.workspace_id == workspace_id)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    rows = session.scalars(paginate(statement, Campaign.id, page)).all()
    return split_page(rows, page, lambda campaign: campaign.id)


def edit_campaign(*, session: Session, workspace_id: str, campaign_id: str, patch: CampaignPatch) -> Campaign:
    """Change a draft or scheduled campaign; a scheduled one keeps its pinned versions unless
    its templates change (then the latest published ones are pinned).

    Raises:
      Conflict: the campaign is running or over.
    """
    campaign = get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise Conflict(f"status: a {campaign.status} campaign cannot be changed", field="status")
    _apply(session, campaign, patch, fields=patch.model_fields_set)
    if campaign.status == S.SCHEDULED:
        _pin(session, campaign)
        campaign.due_at = _start_of(campaign, utcnow()) or utcnow()  # no time any more: the next tick
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def launch(*, session: Session, runtime: Runtime, workspace_id: str, campaign_id: str) -> Campaign:
    """Launch a draft: pin its templates' versions, then start it (or schedule it for ``schedule.at``).
    A campaign launched already is answered as it is: a second launch fans nothing out again.

    Raises:
      Conflict: the campaign was cancelled, or marketing email is refused in this workspace.
      ValidationFailed: its start was missed by more than its deadline.
    """
    campaign = get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)
    if campaign.status == S.CANCELLED:
        raise Conflict("status: a cancelled campaign cannot be launched", field="status")
    if campaign.status != S.DRAFT:
        return campaign
    _refuse_marketing_email(session, campaign)
    get_segment(session, workspace_id, campaign.segment_id)
    _pin(session, campaign)
    now = utcnow()
    start = _start_of(campaign, now)
    late = (now - start).total_seconds() if start is not None else 0.0
    if campaign.deadline_seconds is not None and late > campaign.deadline_seconds:
        raise ValidationFailed("schedule.at: that time has passed (by more than the deadline)", field="schedule.at")
    to = S.SCHEDULED if start is not None and start > now else S.RUNNING
    phase = FanoutPhase.SAMPLE if campaign.ab_test else FanoutPhase.ALL
    fields: dict[str, Any] = {"launched_at": now, "due_at": start, "fanout_phase": phase}
    if to == S.RUNNING:
        fields |= {"started_at": now, "tick_at": now}
    # Of two launches at once, only the one whose compare-and-set moved the draft asks for a fan-out.
    if state.transition(session, campaign.id, expect=S.DRAFT, to=to, **fields) and to == S.RUNNING:
        engine.start_fanout(session, runtime, campaign.id)
    return get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)


def pause(*, session: Session, workspace_id: str, campaign_id: str, reason: str = "paused") -> Campaign:
    """Stop releasing the campaign's messages (those handed to delivery in the last second go on)."""
    return _move(session, workspace_id, campaign_id, S.RUNNING, S.PAUSED, paused_reason=reason)


def resume(*, session: Session, workspace_id: str, campaign_id: str) -> Campaign:
    """Release the campaign's messages again, from where the pump stopped."""
    return _move(session, workspace_id, campaign_id, S.PAUSED, S.RUNNING, paused_reason=None, tick_at=utcnow())


def cancel(*, session: Session, workspace_id: str, campaign_id: str) -> Campaign:
    """End the campaign: its waiting messages are skipped (``campaign_cancelled``); those being
    sent finish. The first of them are skipped here, the rest by the next ticks."""
    now = utcnow()
    campaign = _move(
        session,
        workspace_id,
        campaign_id,
        (S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED),
        S.CANCELLED,
        ended_reason="cancelled",
        cancelled_at=now,
    )
    engine.skip_waiting(session, campaign)
    return campaign


def _move(
    session: Session,
    workspace_id: str,
    campaign_id: str,
    expect: CampaignStatus | tuple[CampaignStatus, ...],
    to: CampaignStatus,
    **fields: Any,
) -> Campaign:
    campaign = get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)
    if campaign.status == to:
        return campaign
    expected = (expect,) if isinstance(expect, CampaignStatus) else expect
    if campaign.status not in expected or not state.transition(session, campaign_id, expect=expected, to=to, **fields):
        current = get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)
        if current.status == to:
            return current
        raise Conflict(f"status: a {current.status} campaign cannot be {_DONE[to]}", field="status")
    return get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)


_DONE = {S.PAUSED: "paused", S.RUNNING: "resumed", S.CANCELLED: "cancelled"}


def _refuse_marketing_email(session: Session, campaign: Campaign) -> None:
    if campaign.category != "marketing" or (campaign.channels is not None and "email" not in campaign.channels):
        return
    refusal = marketing_email_refusal(workspace_policy(session=session, workspace_id=campaign.workspace_id))
    if refusal is not None:
        raise Conflict(refusal, field="channels", details={"reason": "no_postal_address"})


def _start_of(campaign: Campaign, now: dt.datetime) -> dt.datetime | None:
    at = (campaign.schedule or {}).get("at")
    return dt.datetime.fromisoformat(at) if at else None


def _apply(session: Session, campaign: Campaign, data: CampaignFields, *, fields: set[str]) -> None:
    """Write the given fields onto the campaign, after checking what a schema cannot."""
    for name in ("name", "channels", "topic", "category", "goal", "data"):
        if name in fields:
            value = getattr(data, name)
            setattr(campaign, name, value.model_dump() if hasattr(value, "model_dump") else value)
    if "segment" in fields and data.segment is not None:
        campaign.segment_id = get_segment(session, campaign.workspace_id, data.segment).id
    if "schedule" in fields:
        campaign.schedule = _schedule(data)
    if "calendar" in fields:
        campaign.calendar = _calendar(data)
    if "throttle" in fields:
        campaign.throttle_per_second = data.throttle.per_second if data.throttle else None
    if "deadline" in fields:
        campaign.deadline_seconds = data.deadline
    if "holdout_percent" in fields:
        campaign.holdout_percent = data.holdout_percent or 0.0
    if "ab_test" in fields:
        campaign.ab_test = data.ab_test.model_dump() | {"winner": None} if data.ab_test else None
    if fields & {"template", "variants"}:
        _set_variants(session, campaign, data)
    elif campaign.ab_test and len(_variant_inputs(session, campaign)) < 2:
        raise ValidationFailed("ab_test: an A/B test needs two variants or more", field="ab_test")


def _schedule(data: CampaignFields) -> dict[str, Any]:
    if data.schedule is None:
        return {}
    at = data.schedule.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    if at is not None and not dt.datetime(2000, 1, 2, tzinfo=dt.UTC) <= at <= dt.datetime(2200, 1, 1, tzinfo=dt.UTC):
        raise ValidationFailed("schedule.at: a time between 2000 and 2200", field="schedule.at")
    schedule: dict[str, Any] = {"at": at.astimezone(dt.UTC).isoformat()} if at else {}
    return schedule | ({"local_time": data.schedule.local_time} if data.schedule.local_time else {})


def _calendar(data: CampaignFields) -> dict[str, Any] | None:
    if data.calendar is None:
        return None
    days, hours = data.calendar.days, data.calendar.hours
    if days is not None and len(set(days)) != len(days):
        raise ValidationFailed("calendar.days: each day may appear once", field="calendar.days")
    if hours is not None and hours[0] >= hours[1]:
        raise ValidationFailed("calendar.hours: the window must start before it ends", field="calendar.hours")
    return {"days": sorted(days, key=DAYS.index) if days else None, "hours": hours}


def _variant_inputs(session: Session, campaign: Campaign) -> list[Any]:
    return [] if campaign.id is None else variants_of(session, campaign.id)


def _set_variants(session: Session, campaign: Campaign, data: CampaignFields) -> None:
    if data.template is not None and data.variants is not None:
        raise ValidationFailed("template: give either template or variants, not both", field="template")
    if data.template is None and data.variants is None:
        raise ValidationFailed("template: give a template or variants", field="template")
    given = data.variants if data.variants is not None else [VariantIn(template=data.template or "", weight=1.0)]
    if campaign.ab_test and len(given) < 2:
        raise ValidationFailed("variants: an A/B test needs two variants or more", field="variants")
    for index, variant in enumerate(given):
        where = "template" if data.template is not None else f"variants.{index}.template"
        _published(session, campaign, variant.template, where)
    if campaign.id is not None:
        for old in variants_of(session, campaign.id):
            session.delete(old)
        session.flush()
    else:
        session.add(campaign)
        session.flush()
    for index, variant in enumerate(given):
        session.add(
            CampaignVariant(
                campaign_id=campaign.id, key=chr(65 + index), template=variant.template, weight=variant.weight
            )
        )


def _published(session: Session, campaign: Campaign, key: str, field: str) -> tuple[str, int]:
    """The id and number of the template's latest published version.

    Raises:
      NotFound: no published template has this key.
      ValidationFailed: a marketing template in a transactional campaign.
    """
    row = None
    if not is_internal(key):
        row = session.execute(
            select(TemplateVersion.id, TemplateVersion.version, MessageTemplate.category)
            .join(MessageTemplate, TemplateVersion.template_id == MessageTemplate.id)
            .where(
                MessageTemplate.workspace_id == campaign.workspace_id,
                MessageTemplate.key == key,
                TemplateVersion.version == MessageTemplate.latest_version,
            )
        ).first()
    if row is None:
        raise NotFound(f"{field}: no published template with key {key!r}", field=field)
    if row.category == "marketing" and campaign.category == "transactional":
        raise ValidationFailed("category: a marketing template cannot be sent as transactional", field="category")
    return row.id, row.version


def _pin(session: Session, campaign: Campaign) -> None:
    """Pin every variant to its template's latest published version (what its messages render)."""
    for index, variant in enumerate(variants_of(session, campaign.id)):
        variant.template_version_id, variant.template_version = _published(
            session, campaign, variant.template, f"variants.{index}.template"
        )
    session.flush()
