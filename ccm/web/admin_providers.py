"""The workspace's provider accounts (admins): list them, add or configure one through a form
generated from its kind's config model, check its credentials against the provider, enable or
disable it, delete it after a confirmation (refused while it is the last provider of a channel
messages wait on, see :mod:`ccm.channels.removal`). The same services as ``/v1/providers``; every
change is audited as there."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.audit.service import Target
from ccm.channels import accounts, removal
from ccm.channels.models import ProviderAccount
from ccm.channels.registry import PROVIDERS
from ccm.channels.schemas import ProviderIn, ProviderOut, ProviderPatch
from ccm.db import after_commit
from ccm.errors import ValidationFailed
from ccm.web.admin_forms import Outcome, audit, run_write
from ccm.web.config_form import config_fields, config_from_form, shown_value
from ccm.web.pages import db, page
from ccm.web.security import requires


def _runtime() -> Any:
    return current_app.extensions["ccm"]


def _out(account: ProviderAccount) -> dict[str, Any]:
    """The account as the API shows it (secrets masked): what the audit log keeps."""
    public = accounts.public_config(account, _runtime().secret_box)
    fields = {name: getattr(account, name) for name in ProviderOut.model_fields if name != "config"}
    return ProviderOut(**fields, config=public).model_dump(mode="json")


def _forget_after_commit(session: Session) -> None:
    workspace_id, providers = g.user.workspace_id, _runtime().providers
    after_commit(session, lambda: providers.forget(workspace_id))


def _list(outcome: Outcome) -> Response:
    with db().unit_of_work() as session:
        rows = [_out(account) for account in accounts.list_accounts(session=session, workspace_id=g.user.workspace_id)]
    return page("admin/providers.html", outcome.status, providers=rows, kinds=sorted(PROVIDERS), **outcome.shown())


def _form(
    kind: str, outcome: Outcome, account: dict[str, Any] | None = None, typed: dict[str, str] | None = None
) -> Response:
    """The form of a kind's account: ``account`` as the API shows it (None for a new one), and what
    was typed (``typed``: label and priority; the config from the posted form) shown again."""
    spec = PROVIDERS[kind]
    stored = (account or {}).get("config", {})
    posted = {k.removeprefix("config."): v for k, v in request.form.items() if k.startswith("config.")}
    settings = {**stored, **posted}
    secrets = accounts.secret_fields(spec.config_model)
    fields = [
        (item, "" if item.name in secrets else shown_value(item, settings)) for item in config_fields(spec.config_model)
    ]
    return page(
        "admin/provider_form.html",
        outcome.status,
        kind=kind,
        account=account,
        fields=fields,
        secrets_set={name for name in secrets if stored.get(name)},
        values={"label": "", "priority": "100", **(account or {}), **(typed or {})},
        **outcome.shown(),
    )


def _typed() -> dict[str, str]:
    return {"label": request.form.get("label", ""), "priority": request.form.get("priority", "")}


def _priority() -> int:
    raw = request.form.get("priority", "").strip()
    if not raw.isdigit():
        raise ValidationFailed("priority: a whole number from 0 to 10000", field="priority")
    return int(raw)


@requires(Permission.ADMIN)
def index() -> Response:
    return _list(Outcome())


@requires(Permission.ADMIN)
def new() -> Response:
    kind = request.args.get("kind", "")
    if kind not in PROVIDERS:
        outcome = Outcome(status=422, errors={"kind": f"one of {', '.join(sorted(PROVIDERS))}"})
        outcome.notices.append(f"kind: unknown provider kind {kind!r}")
        return _list(outcome)
    return _form(kind, Outcome())


@requires(Permission.ADMIN)
def create() -> Response:
    kind, outcome = request.form.get("kind", ""), Outcome()
    if kind not in PROVIDERS:
        outcome.failed(ValidationFailed(f"kind: unknown provider kind {kind!r}", field="kind"))
        return _list(outcome)

    def work(session: Session) -> ProviderAccount:
        data = ProviderIn.model_validate(
            {
                "kind": kind,
                "label": request.form.get("label", "").strip(),
                "priority": _priority(),
                "config": config_from_form(PROVIDERS[kind].config_model, request.form),
            }
        )
        account = accounts.create_account(
            session=session, box=_runtime().secret_box, workspace_id=g.user.workspace_id, data=data
        )
        _forget_after_commit(session)
        audit(session, "provider.create", Target("provider", account.id), after=_out(account))
        return account

    created = run_write(outcome, work)
    if created is None:
        return _form(kind, outcome, typed=_typed())
    outcome.notices.append(f"Added {created.label}.")
    return _list(outcome)


def _account(session: Session, account_id: str) -> ProviderAccount:
    return accounts.get_account(session=session, workspace_id=g.user.workspace_id, account_id=account_id)


@requires(Permission.ADMIN)
def edit(account_id: str) -> Response:
    outcome = Outcome()
    account = run_write(outcome, lambda session: _out(_account(session, account_id)))
    if account is None:
        return _list(outcome)
    return _form(account["kind"], outcome, account)


def _update(account_id: str, outcome: Outcome, data: dict[str, Any]) -> dict[str, Any] | None:
    """PATCH the account with ``data``, audited as ``provider.update``; its new state, or None."""

    def work(session: Session) -> dict[str, Any]:
        before = _out(_account(session, account_id))
        account = accounts.update_account(
            session=session,
            box=_runtime().secret_box,
            workspace_id=g.user.workspace_id,
            account_id=account_id,
            data=ProviderPatch.model_validate(data),
        )
        _forget_after_commit(session)
        after = _out(account)
        audit(session, "provider.update", Target("provider", account_id), before=before, after=after)
        return after

    return run_write(outcome, work)


@requires(Permission.ADMIN)
def update(account_id: str) -> Response:
    outcome = Outcome()
    current = run_write(outcome, lambda session: _out(_account(session, account_id)))
    if current is None:
        return _list(outcome)
    model = PROVIDERS[current["kind"]].config_model
    try:
        data = {
            "label": request.form.get("label", "").strip(),
            "priority": _priority(),
            "config": config_from_form(model, request.form),
        }
    except ValidationFailed as exc:
        outcome.failed(exc)
        return _form(current["kind"], outcome, current, _typed())
    changed = _update(account_id, outcome, data)
    if changed is None:
        return _form(current["kind"], outcome, current, _typed())
    outcome.notices.append(f"Saved {changed['label']}.")
    return _list(outcome)


@requires(Permission.ADMIN)
def enable(account_id: str) -> Response:
    return _switch(account_id, enabled=True)


@requires(Permission.ADMIN)
def disable(account_id: str) -> Response:
    return _switch(account_id, enabled=False)


def _switch(account_id: str, *, enabled: bool) -> Response:
    outcome = Outcome()
    changed = _update(account_id, outcome, {"enabled": enabled})
    if changed is not None:
        outcome.notices.append(f"{changed['label']} is {'enabled' if enabled else 'disabled'}.")
    return _list(outcome)


@requires(Permission.ADMIN)
def check(account_id: str) -> Response:
    """Test the credentials: the account is read in a short unit of work, and the network call
    made after it, holding no lock."""
    outcome = Outcome()
    account = run_write(outcome, lambda session: _account(session, account_id))
    if account is not None:
        error = accounts.check_account(box=_runtime().secret_box, db=_runtime().db, account=account)
        outcome.notices.append(
            f"{account.label}: " + ("the check passed." if error is None else f"the check failed: {error}")
        )
        outcome.status = 200
    return _list(outcome)


def _consequences(plan: removal.Removal, account: dict[str, Any]) -> list[str]:
    """What deleting the account changes, in the words the confirmation page uses."""
    channel = account["channel"]
    lines = [
        "Its settings and secrets are deleted; this cannot be undone (the audit log keeps its settings, "
        "secrets masked)."
    ]
    if not account["enabled"]:
        lines.append("It is disabled and sends nothing now: no message changes route.")
    elif plan.last_of_channel:
        lines.append(
            f"It is the only enabled {channel} provider: messages on {channel} would fall back to another "
            "channel or end skipped (no_provider)."
        )
    else:
        lines.append(
            f"Messages on {channel} go through the workspace's other {channel} providers (or the server's default)."
        )
    lines.append(
        "Reports the provider sends later about messages already sent through it (delivered, bounced) are refused, "
        "as for a disabled account: those messages stay as last reported."
    )
    return lines


@requires(Permission.ADMIN)
def confirm_delete(account_id: str) -> Response:
    """The confirmation step: what deleting the account would do, and the button that does it."""
    outcome = Outcome()

    def work(session: Session) -> tuple[removal.Removal, dict[str, Any]]:
        plan = removal.plan_removal(
            session=session,
            workspace_id=g.user.workspace_id,
            account_id=account_id,
            default_channels=_runtime().providers.default_channels,
        )
        return plan, _out(plan.account)

    found = run_write(outcome, work)
    if found is None:
        return _list(outcome)
    plan, account = found
    return page(
        "admin/confirm_delete.html",
        heading=f"Delete the provider {account['label']}?",
        facts=[
            ("Kind", account["kind"]),
            ("Channel", account["channel"]),
            ("State", "enabled" if account["enabled"] else "disabled"),
        ],
        consequences=_consequences(plan, account),
        refused=plan.refused,
        action=url_for("web_admin.provider_delete", account_id=account_id),
        cancel=url_for("web_admin.providers"),
        button=f"Delete {account['label']}",
    )


@requires(Permission.ADMIN)
def delete(account_id: str) -> Response:
    """Delete the account, audited as ``provider.delete`` with what it was (secrets masked)."""
    outcome = Outcome()

    def work(session: Session) -> str:
        before = _out(_account(session, account_id))
        removal.delete_account(
            session=session,
            workspace_id=g.user.workspace_id,
            account_id=account_id,
            default_channels=_runtime().providers.default_channels,
        )
        _forget_after_commit(session)
        audit(session, "provider.delete", Target("provider", account_id), before=before)
        return str(before["label"])

    label = run_write(outcome, work)
    if label is not None:
        outcome.notices.append(f"Deleted {label}.")
    return _list(outcome)
