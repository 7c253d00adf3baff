"""Which provider kinds exist, and which providers serve a workspace's channel, in failover order.

A workspace's own providers (``/v1/providers``) come first; without any for a channel, the
environment's defaults apply: SMTP when ``CCM_SMTP_URL`` is set, else the local outbox for the
channels ``CCM_LOCAL_OUTBOX`` names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.base import Provider, ProviderSpec
from ccm.channels.local_outbox import LocalOutboxConfig, LocalOutboxProvider
from ccm.channels.models import ProviderAccount
from ccm.channels.providers.mailgun import MailgunConfig, MailgunProvider
from ccm.channels.providers.slack import SlackConfig, SlackProvider
from ccm.channels.providers.telegram import TelegramConfig, TelegramProvider
from ccm.channels.providers.twilio import TwilioConfig, TwilioProvider
from ccm.channels.providers.webhook import WebhookConfig, WebhookProvider
from ccm.channels.smtp import SmtpConfig, SmtpProvider
from ccm.config import Settings
from ccm.crypto import SecretBox
from ccm.db import Database

TWIML_EMPTY = ('<?xml version="1.0" encoding="UTF-8"?><Response/>', "text/xml")
"""Twilio reads the answer to an inbound message as TwiML: an empty one sends nothing back."""

PROVIDERS: Mapping[str, ProviderSpec] = MappingProxyType(
    {
        spec.kind: spec
        for spec in (
            ProviderSpec(
                "smtp",
                ("email",),
                SmtpConfig,
                lambda config, db: SmtpProvider.from_config(config),
                # no callbacks: bounces arrive as DSN emails (ccm smtp-inbound)
            ),
            ProviderSpec(
                "mailgun",
                ("email",),
                MailgunConfig,
                lambda config, db: MailgunProvider(config),
                callbacks=frozenset({"status"}),
            ),
            ProviderSpec(
                "twilio",
                ("sms", "chat"),
                TwilioConfig,
                lambda config, db: TwilioProvider(config),
                channel_of=lambda config: "chat" if config.whatsapp else "sms",
                callbacks=frozenset({"status", "inbound"}),
                callback_answer=TWIML_EMPTY,
            ),
            ProviderSpec(
                "webhook",
                ("sms", "chat"),
                WebhookConfig,
                lambda config, db: WebhookProvider(config),
                channel_of=lambda config: config.channel,
                callbacks=frozenset({"status", "inbound"}),
            ),
            ProviderSpec("slack", ("chat",), SlackConfig, lambda config, db: SlackProvider(config)),
            ProviderSpec(
                "telegram",
                ("chat",),
                TelegramConfig,
                lambda config, db: TelegramProvider(config),
                callbacks=frozenset({"status", "inbound"}),
            ),
            ProviderSpec(
                "local_outbox",
                ("email", "sms", "chat"),
                LocalOutboxConfig,
                lambda config, db: LocalOutboxProvider(config, db=db),
                channel_of=lambda config: config.channel,
            ),
        )
    }
)
"""Every provider kind, frozen. Adding one means adding it here, nowhere else (the contract test
in ``tests/channels/test_registry_contract.py`` then asks for its case)."""

CACHE_SECONDS = 5.0
"""How long a process keeps a workspace's provider list: configuration changes apply within it."""


@dataclass(frozen=True)
class Configured:
    """A provider instance and the identity its rate limit and circuit breaker are kept under."""

    key: str
    label: str
    provider: Provider
    spec: ProviderSpec


def build_provider(kind: str, values: dict[str, Any], *, db: Database) -> Provider:
    """Instantiate ``kind`` from its settings (validated by its config model).

    Raises:
      pydantic.ValidationError: the settings are not valid for this kind.
    """
    spec = PROVIDERS[kind]
    return spec.build(spec.config_model.model_validate(values), db)


class ChannelProviders:
    """The providers serving each workspace's channels in this process, cached briefly."""

    def __init__(self, settings: Settings, box: SecretBox, db: Database) -> None:
        self.box = box
        self.db = db
        self._defaults = _environment_defaults(settings, db)
        self._lists: dict[tuple[str, str], tuple[float, list[Configured]]] = {}
        self._instances: dict[tuple[str, Any], Configured] = {}
        self._lock = threading.Lock()

    def for_channel(self, session: Session, workspace_id: str, channel: str) -> list[Configured]:
        cached = self._lists.get((workspace_id, channel))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        configured = [self._instance(account) for account in _accounts(session, workspace_id, channel)]
        found = configured or self._defaults.get(channel, [])
        with self._lock:
            self._lists[(workspace_id, channel)] = (time.monotonic() + CACHE_SECONDS, found)
        return found

    @property
    def default_channels(self) -> frozenset[str]:
        """The channels served from the environment (``CCM_SMTP_URL``, the local outbox) when a
        workspace configures no provider for them."""
        return frozenset(self._defaults)

    def forget(self, workspace_id: str) -> None:
        """Drop this process's cached lists for a workspace (after it changed its providers)."""
        with self._lock:
            for key in [key for key in self._lists if key[0] == workspace_id]:
                del self._lists[key]

    def close(self) -> None:
        for configured in [*self._instances.values(), *(c for cs in self._defaults.values() for c in cs)]:
            configured.provider.close()

    def instance(self, account: ProviderAccount) -> Configured:
        """The provider for one account (cached while the account is unchanged)."""
        return self._instance(account)

    def _instance(self, account: ProviderAccount) -> Configured:
        key = (account.id, account.updated_at)
        with self._lock:
            found = self._instances.get(key)
        if found is None:
            values = {**account.settings, **(self.box.open(account.sealed_secrets) if account.sealed_secrets else {})}
            provider = build_provider(account.kind, values, db=self.db)
            found = Configured(account.id, account.label, provider, PROVIDERS[account.kind])
            with self._lock:
                stale = [k for k in self._instances if k[0] == account.id and k != key]
                replaced = [self._instances.pop(k) for k in stale]
                self._instances[key] = found
            for old in replaced:  # an older version of this account (it was changed)
                old.provider.close()
        return found


def _accounts(session: Session, workspace_id: str, channel: str) -> list[ProviderAccount]:
    return list(
        session.scalars(
            select(ProviderAccount)
            .where(
                ProviderAccount.workspace_id == workspace_id,
                ProviderAccount.channel == channel,
                ProviderAccount.enabled.is_(True),
            )
            .order_by(ProviderAccount.priority, ProviderAccount.created_at)
        )
    )


def _environment_defaults(settings: Settings, db: Database) -> dict[str, list[Configured]]:
    defaults: dict[str, list[Configured]] = {}
    if settings.smtp_url:
        smtp = SmtpProvider.from_url(settings.smtp_url, timeout=settings.smtp_timeout)
        defaults["email"] = [Configured("env:smtp", "CCM_SMTP_URL", smtp, PROVIDERS["smtp"])]
    for channel in settings.local_outbox_channels:
        if channel not in defaults:
            outbox = LocalOutboxProvider(LocalOutboxConfig(channel=channel), db=db)
            key = f"env:local_outbox:{channel}"
            defaults[channel] = [Configured(key, "local outbox", outbox, PROVIDERS["local_outbox"])]
    return defaults
