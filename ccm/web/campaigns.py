"""The marketer's campaign screens: the list, the composer, the moves (launch, pause, resume,
cancel), the A/B winner picked by hand (after a confirmation), the live progress page and the
results with their charts and CSV.

Every view calls the service ``/v1/campaigns`` calls (:mod:`ccm.campaigns.service`), and the
moves are audited as the API audits them, with the user as the actor. The progress page reads
the API's event stream (:func:`ccm.campaigns.api.progress_events`) through a route of its own,
since a browser's ``EventSource`` carries the session cookie, not an API key."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, request, stream_with_context, url_for
from pydantic import ValidationError
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound as HttpNotFound
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.audit.service import Target, record
from ccm.campaigns import export, results, service, winner
from ccm.campaigns.api import STREAM_SECONDS, campaign_out, progress_events
from ccm.campaigns.models import Campaign
from ccm.campaigns.results_schemas import WinnerIn
from ccm.db import utcnow
from ccm.errors import CCMError
from ccm.http import validation_failed
from ccm.message_templates.service import list_templates
from ccm.pagination import PageQuery
from ccm.segments.models import Segment
from ccm.segments.service import list_segments
from ccm.validation import CHANNELS
from ccm.web import campaign_charts
from ccm.web.campaign_ab import ab_view
from ccm.web.campaign_form import DAY_LABELS, METRICS, Composed, blank, read_form, show_error
from ccm.web.pages import db, page, screen
from ccm.web.security import actor, requires

bp = screen("campaigns", __name__, url_prefix="/campaigns")
MOVES = {"launch", "pause", "resume", "cancel"}
LIST_LIMIT = 100


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    with db().read_only() as session:
        rows, _ = service.list_campaigns(
            session=session, workspace_id=g.user.workspace_id, page=PageQuery(limit=LIST_LIMIT), status=None
        )
        campaigns = [campaign_out(session, campaign) for campaign in rows]
    return page("campaigns/index.html", campaigns=campaigns, can_write=_can_write())


@bp.get("/new")
@requires(Permission.CAMPAIGNS)
def new() -> Response:
    return _composer(blank())


@bp.post("/new")
@requires(Permission.CAMPAIGNS)
def create() -> Response:
    composed, data = read_form(request.form)
    if data is None:
        return _composer(composed, 422)
    try:
        with db().unit_of_work() as session:
            campaign = service.create_campaign(session=session, workspace_id=g.user.workspace_id, data=data)
            campaign_id = campaign.id
    except CCMError as exc:
        show_error(composed, exc)
        return _composer(composed, exc.status)
    return redirect(url_for("web_campaigns.show", campaign_id=campaign_id), 303)


@bp.get("/<campaign_id>")
@requires(Permission.VIEW)
def show(campaign_id: str) -> Response:
    return _show(campaign_id)


@bp.post("/<campaign_id>/<move>")
@requires(Permission.CAMPAIGNS)
def act(campaign_id: str, move: str) -> Response:
    if move not in MOVES:
        raise HttpNotFound()
    try:
        with db().unit_of_work() as session:
            _move(session, campaign_id, move)
    except CCMError as exc:
        return _show(campaign_id, exc.status, notices=[exc.message])
    return redirect(url_for("web_campaigns.show", campaign_id=campaign_id), 303)


@bp.post("/<campaign_id>/winner")
@requires(Permission.CAMPAIGNS)
def pick_winner(campaign_id: str) -> Response:
    """End the A/B test with the variant picked by hand: the first post asks for a confirmation,
    the confirmed one calls the service ``POST /v1/campaigns/{id}/winner`` calls."""
    given = request.form.get("variant", "")
    try:
        if request.form.get("confirmed") != "yes":
            return _confirm_winner(campaign_id, given)
        with db().unit_of_work() as session:
            # Locked, as the API locks it: the engine's tick skips the campaign meanwhile.
            winner.choose_winner(session, _find(session, campaign_id, lock=True), _variant(given))
    except CCMError as exc:
        return _show(campaign_id, exc.status, notices=[exc.message], errors={"variant": exc.message})
    return redirect(url_for("web_campaigns.show", campaign_id=campaign_id), 303)


@bp.get("/<campaign_id>/events")
@requires(Permission.VIEW)
def events(campaign_id: str) -> Response:
    workspace_id = g.user.workspace_id
    with db().read_only() as session:
        _find(session, campaign_id)
    stream = progress_events(current_app.extensions["ccm"], workspace_id, campaign_id, STREAM_SECONDS)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(stream), mimetype="text/event-stream", headers=headers)


@bp.get("/<campaign_id>/results")
@requires(Permission.VIEW)
def results_page(campaign_id: str) -> Response:
    with db().read_only() as session:
        campaign = _find(session, campaign_id)
        charts = campaign_charts.results_charts(session, campaign)
        # Its heading only: campaign_out would count the messages' statuses again, for its progress.
        heading = {"id": campaign.id, "name": campaign.name, "status": campaign.status}
    return page("campaigns/results.html", campaign=heading, charts=charts, can_write=_can_write())


@bp.get("/<campaign_id>/results.csv")
@requires(Permission.CAMPAIGNS)
def results_csv(campaign_id: str) -> Response:
    with db().unit_of_work() as session:
        campaign = _find(session, campaign_id)
        _audit(session, "export.results_csv", campaign)
        lines = list(export.summary_lines(results.campaign_results(session, campaign)))
    disposition = f'attachment; filename="{campaign_id}-results.csv"'
    return Response(lines, mimetype="text/csv", headers={"Content-Disposition": disposition})


@bp.errorhandler(HttpNotFound)
def missing(error: HttpNotFound) -> Response:
    return page("campaigns/missing.html", 404, reason=error.description)


def _show(
    campaign_id: str, status: int = 200, notices: list[str] | None = None, errors: dict[str, str] | None = None
) -> Response:
    with db().read_only() as session:
        campaign = _find(session, campaign_id)
        segment = session.get(Segment, campaign.segment_id)
        out = campaign_out(session, campaign)
        ab = ab_view(session, campaign, now=utcnow())
    return page(
        "campaigns/show.html",
        status,
        campaign=out,
        segment=segment.name if segment else campaign.segment_id,
        ab=ab,
        metrics=dict(METRICS),
        days=DAY_LABELS,
        can_write=_can_write(),
        notices=notices or [],
        errors=errors or {},
    )


def _confirm_winner(campaign_id: str, given: str) -> Response:
    """The question before the winner is picked, once the service's rules allow the pick."""
    with db().read_only() as session:
        campaign = _find(session, campaign_id)
        variant = _variant(given)
        winner.check_winner(session, campaign, variant)
        template = {v.key: v.template for v in service.variants_of(session, campaign.id)}[variant]
        name = campaign.name
    return page("campaigns/winner.html", campaign_id=campaign_id, name=name, variant=variant, template_key=template)


def _variant(given: str) -> str:
    """The variant key as ``POST /v1/campaigns/{id}/winner`` reads it (a 422 naming ``variant``)."""
    try:
        return WinnerIn.model_validate({"variant": given}).variant
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _move(session: Session, campaign_id: str, move: str) -> None:
    """One move of the service, audited as ``/v1/campaigns/{id}/<move>`` audits it: when it changed something."""
    workspace_id = g.user.workspace_id
    before = _find(session, campaign_id).status
    ids: dict[str, Any] = {"session": session, "workspace_id": workspace_id, "campaign_id": campaign_id}
    if move == "launch":
        campaign = service.launch(runtime=current_app.extensions["ccm"], **ids)
    else:
        campaign = {"pause": service.pause, "resume": service.resume, "cancel": service.cancel}[move](**ids)
    if campaign.status != before:
        _audit(session, f"campaign.{move}", campaign, before={"status": before}, after={"status": campaign.status})


def _audit(session: Session, action: str, campaign: Campaign, **change: Any) -> None:
    record(
        session=session,
        workspace_id=campaign.workspace_id,
        actor=actor(),
        action=action,
        target=Target("campaign", campaign.id),
        ip=request.remote_addr,
        **change,
    )


def _find(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    """The workspace's campaign, or the 404 page (an unknown id, or another workspace's)."""
    try:
        return service.get_campaign(
            session=session, workspace_id=g.user.workspace_id, campaign_id=campaign_id, lock=lock
        )
    except CCMError:
        raise HttpNotFound(f"No campaign {campaign_id!r}.") from None


def _composer(composed: Composed, status: int = 200) -> Response:
    with db().read_only() as session:
        segments, _ = list_segments(session=session, workspace_id=g.user.workspace_id, page=PageQuery(limit=500))
        templates = [
            t.key for t in list_templates(session=session, workspace_id=g.user.workspace_id) if t.latest_version
        ]
        segment_choices = [(segment.id, segment.name) for segment in segments]
    notices = [composed.errors[""]] if "" in composed.errors else []
    if composed.errors and not notices:
        notices = ["The campaign was not saved: see the fields marked below."]
    return page(
        "campaigns/new.html",
        status,
        form=composed.values,
        errors=composed.errors,
        segments=segment_choices,
        templates=templates,
        channels=CHANNELS,
        metrics=METRICS,
        days=DAY_LABELS,
        notices=notices,
    )


def _can_write() -> bool:
    return allows(g.user.role, Permission.CAMPAIGNS)
