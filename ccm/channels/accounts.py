"""Workspaces' provider accounts: validated against each kind's config model, secrets sealed at
rest and never returned, checked on demand against the provider itself."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.base import DeliveryError, ProviderSpec
from ccm.channels.models import ProviderAccount
from ccm.channels.registry import PROVIDERS, build_provider
from ccm.channels.schemas import ProviderIn, ProviderPatch
from ccm.crypto import SecretBox
from ccm.db import Database, utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.http import validation_failed

MASK = "********"


def create_account(*, session: Session, box: SecretBox, workspace_id: str, data: ProviderIn) -> ProviderAccount:
    """Add a provider for a workspace.

    Raises:
      ValidationFailed: unknown kind, a channel the kind cannot serve, or settings its config
        model refuses (named ``config.<field>``).
      Conflict: the label is taken.
    """
    spec = _kind(data.kind)
    channel = _channel_of(spec, data.config, data.channel)
    if _by_label(session, workspace_id, data.label) is not None:
        raise Conflict(f"label: a provider labelled {data.label!r} exists", field="label")
    settings, secrets = _split(spec.config_model, data.config)
    account = ProviderAccount(
        workspace_id=workspace_id,
        kind=data.kind,
        channel=channel,
        label=data.label,
        priority=data.priority,
        enabled=data.enabled,
        settings=settings,
        sealed_secrets=box.seal(secrets) if secrets else "",
    )
    session.add(account)
    session.flush()
    return account


def update_account(
    *, session: Session, box: SecretBox, workspace_id: str, account_id: str, data: ProviderPatch
) -> ProviderAccount:
    """Change an account. ``config`` is merged into the current settings; a secret left out (or
    given as the mask) keeps its current value."""
    account = get_account(session=session, workspace_id=workspace_id, account_id=account_id)
    if data.label and data.label != account.label and _by_label(session, workspace_id, data.label) is not None:
        raise Conflict(f"label: a provider labelled {data.label!r} exists", field="label")
    for name in ("label", "priority", "enabled"):
        if name in data.model_fields_set and getattr(data, name) is not None:
            setattr(account, name, getattr(data, name))
    if data.config is not None:
        current = {**account.settings, **(box.open(account.sealed_secrets) if account.sealed_secrets else {})}
        merged = {**current, **{k: v for k, v in data.config.items() if v != MASK}}
        spec = _kind(account.kind)
        account.channel = _channel_of(spec, merged, None)  # a WhatsApp switch moves it to chat
        settings, secrets = _split(spec.config_model, merged)
        account.settings, account.sealed_secrets = settings, box.seal(secrets) if secrets else ""
    account.updated_at = utcnow()
    session.flush()
    return account


def get_account(*, session: Session, workspace_id: str, account_id: str) -> ProviderAccount:
    account = session.scalar(
        select(ProviderAccount).where(ProviderAccount.id == account_id, ProviderAccount.workspace_id == workspace_id)
    )
    if account is None:
        raise NotFound(f"no provider {account_id!r}", field="id")
    return account


def list_accounts(*, session: Session, workspace_id: str) -> list[ProviderAccount]:
    return list(
        session.scalars(
            select(ProviderAccount)
            .where(ProviderAccount.workspace_id == workspace_id)
            .order_by(ProviderAccount.channel, ProviderAccount.priority)
        )
    )


def check_account(*, box: SecretBox, db: Database, account: ProviderAccount) -> str | None:
    """Test the account's credentials against the provider; None when they work, else why not."""
    values = {**account.settings, **(box.open(account.sealed_secrets) if account.sealed_secrets else {})}
    provider = build_provider(account.kind, values, db=db)
    try:
        provider.check()
    except DeliveryError as exc:
        return f"{exc.reason}: {exc}"
    finally:
        provider.close()
    return None


def public_config(account: ProviderAccount, box: SecretBox) -> dict[str, Any]:
    """The settings as the API shows them: the secrets that are set replaced by a mask, never sent."""
    present = box.open(account.sealed_secrets) if account.sealed_secrets else {}
    return {**account.settings, **{name: MASK for name in present}}


def _kind(kind: str) -> ProviderSpec:
    if kind not in PROVIDERS:
        raise ValidationFailed(
            f"kind: unknown provider kind {kind!r}; one of {', '.join(sorted(PROVIDERS))}", field="kind"
        )
    return PROVIDERS[kind]


def _channel_of(spec: ProviderSpec, config: dict[str, Any], wanted: str | None) -> str:
    """The channel an account of this kind with ``config`` serves (some kinds decide it from
    their settings: a WhatsApp Twilio account serves chat)."""
    try:
        channel = spec.channel_for(spec.config_model.model_validate(config))
    except ValidationError as exc:
        raise validation_failed(exc, prefix="config.") from None
    if wanted is not None and wanted != channel:
        raise ValidationFailed(f"channel: this {spec.kind} account serves {channel}, not {wanted}", field="channel")
    return channel


def _split(model: type[BaseModel], values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = model.model_validate(values)
    secret_names = secret_fields(model)
    dumped = config.model_dump(mode="json")
    secrets = {
        name: getattr(config, name).get_secret_value() for name in secret_names if getattr(config, name) is not None
    }
    return {k: v for k, v in dumped.items() if k not in secret_names}, secrets


def secret_fields(model: type[BaseModel]) -> set[str]:
    """The fields of a config model that are sealed at rest and never shown back (``SecretStr``)."""
    return {
        name
        for name, field in model.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    }


def _by_label(session: Session, workspace_id: str, label: str) -> ProviderAccount | None:
    return session.scalar(
        select(ProviderAccount).where(ProviderAccount.workspace_id == workspace_id, ProviderAccount.label == label)
    )
