"""Which providers exist, and which are configured for a channel in this process."""

from __future__ import annotations

from ccm.channels.base import Provider
from ccm.channels.local_outbox import LocalOutboxProvider
from ccm.channels.smtp import SmtpProvider
from ccm.config import Settings

PROVIDERS: dict[str, type] = {
    "smtp": SmtpProvider,
    "local_outbox": LocalOutboxProvider,
}


class ChannelProviders:
    """The providers configured for each channel, in failover order.

    Email goes over SMTP when ``CCM_SMTP_URL`` is set, else into the local outbox. SMS and chat have
    no providers yet: such messages end ``skipped(no_provider)``.
    """

    def __init__(self, settings: Settings) -> None:
        email: Provider = (SmtpProvider.from_url(settings.smtp_url, timeout=settings.smtp_timeout)
                           if settings.smtp_url else LocalOutboxProvider())
        self._by_channel: dict[str, list[Provider]] = {"email": [email], "sms": [], "chat": []}

    def for_channel(self, workspace_id: str, channel: str) -> list[Provider]:
        return self._by_channel.get(channel, [])

    def close(self) -> None:
        for providers in self._by_channel.values():
            for provider in providers:
                provider.close()
