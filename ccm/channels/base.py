"""The provider interface: what every email, SMS and chat provider implements.

A provider takes a frozen :class:`OutboundMessage` (never an ORM object) and either returns a
:class:`Receipt` or raises one of the closed set of :class:`DeliveryError` subclasses, which decide
what happens next: retry later, fail now, or fail loudly because CCM is misconfigured.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from ccm.db import Database
    from ccm.socket_writes import Write


@dataclass(frozen=True)
class OutboundMessage:
    """Everything a provider needs to send one message, already rendered.

    For email, ``raw`` holds the complete RFC 5322 message (CRLF line endings) and
    ``envelope_from`` the SMTP reverse path; for other channels ``body`` holds the text.
    """

    message_id: str
    workspace_id: str
    channel: str
    to: str
    body: str = ""
    raw: bytes = b""
    envelope_from: str = ""
    subject: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """The provider took the message. ``status`` is ``sent`` (handed over; delivery is reported
    later, if at all) or ``delivered`` (it reached its destination, as with the local outbox)."""

    provider_message_id: str | None
    status: str = "sent"


class DeliveryError(Exception):
    """Base of the closed set of provider errors. ``reason`` is a short machine-readable code."""

    reason: str = "delivery_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Try again later: network trouble, rate limits, HTTP 5xx and 429 answers, SMTP 4xx."""

    reason = "transient_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        may_have_been_sent: bool = False,
    ):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        self.may_have_been_sent = may_have_been_sent
        """The request went out and no answer came back, from a provider that dedupes retries:
        retrying the *same* account is safe, handing the message to another one is not."""


class PermanentDeliveryError(DeliveryError):
    """This message can never be delivered as addressed: invalid address, SMTP 5xx, HTTP 4xx
    validation errors, rejected content."""

    reason = "permanent_error"


class OutcomeUnknownError(DeliveryError):
    """The connection broke after the message was handed over (past the commit point) and before
    the provider answered: it may have been accepted. Never retried, to avoid a duplicate."""

    reason = "outcome_unknown"


class ProviderConfigError(DeliveryError):
    """CCM's own configuration is wrong (credentials, TLS, missing settings). Fails loudly."""

    reason = "provider_config_error"


CommitPoint = Callable[[], None]
"""Called by a provider right before the step after which the message may have been accepted
(the final ``.`` of SMTP DATA, the HTTP request). It records the attempt durably and raises if this
worker no longer owns the message, in which case the provider must abort without sending."""


@dataclass(frozen=True)
class FinalWrites:
    """What finishes some messages of a batch: bytes to write on sockets (SMTP: each connection's
    final dot), and ``done``, to be told which of those writes failed (by position) once made."""

    writes: Sequence[Write]
    done: Callable[[dict[int, OSError]], None]


Release = Callable[[Collection[str]], FinalWrites]
"""The writes that finish the given messages of a batch (it writes nothing itself)."""

BatchCommitPoint = Callable[[Sequence[str], Release], Collection[str]]
"""The commit point of a batch: given the ids of the messages that reached their irrevocable
step, record them durably in one go and answer the ids this worker still owns (only those may be
finished); raise to abandon them all. It may call ``release(owned)`` once and make the writes in
the same instant as its record leaves for the database (:func:`ccm.db_commit.commit_writing`) — a
worker killed between the two would lose the messages not yet finished — then tell ``done``; it
must not raise once they are made. If it does not call ``release``, the provider finishes the
owned ids after it returns."""


@runtime_checkable
class SendsBatches(Protocol):
    """A provider that can hand over many messages with one commit point (SMTP: a connection
    each, final dots held back): the batched delivery path uses it where it is offered."""

    def send_batch(
        self, messages: Sequence[OutboundMessage], *, commit_point: BatchCommitPoint
    ) -> dict[str, Receipt | DeliveryError]: ...


class InvalidAddress(ValueError):
    """The address cannot be used by this provider (the message is skipped, never sent)."""


@dataclass(frozen=True)
class ProviderLimits:
    """What a provider accepts: the longest body (characters) and its request rate (per second,
    shared by every worker process)."""

    max_body_chars: int | None = None
    rate_per_second: float | None = None


class Provider(Protocol):
    """One configured provider: what the delivery core and the callback endpoints call.

    ``name`` is its kind in the registry; ``channel`` the channel this instance serves (a Twilio
    account serves ``sms`` or, for WhatsApp, ``chat``); ``handle_key`` the key of its handles in a
    profile's ``chat`` map (None: any handle will do). What a kind *is* — its channels, config
    model, callbacks — is its :class:`ProviderSpec` in :data:`ccm.channels.registry.PROVIDERS`.
    """

    name: ClassVar[str]

    @property
    def channel(self) -> str: ...

    @property
    def handle_key(self) -> str | None: ...

    limits: ProviderLimits

    def normalize_address(self, address: str) -> str:
        """The address in the form this provider sends to; raises :class:`InvalidAddress`."""
        ...

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Hand the message over, calling ``commit_point`` right before the irrevocable step.
        Raises one of the :class:`DeliveryError` subclasses (or what the commit point raised)."""
        ...

    def check(self) -> None:
        """Test the credentials against the provider. Raises ProviderConfigError (wrong
        credentials or settings) or TransientDeliveryError (unreachable)."""
        ...

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Raise :class:`WebhookRejected` unless the callback provably comes from the provider."""
        ...

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]: ...

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProviderSpec:
    """What CCM knows about a provider kind before there is an instance: one registry entry.

    ``build`` makes an instance from a validated ``config_model`` and the database (only the local
    outbox uses it); ``channel_of`` answers which of ``channels`` an instance with that config
    serves (the first, unless the kind decides it from its settings). ``callbacks`` names what
    the provider calls back with (``status`` reports, ``inbound`` messages); ``callback_answer``
    is the ``(body, mimetype)`` it wants in reply (the others get ``{"ok": true}``).
    """

    kind: str
    channels: tuple[str, ...]
    config_model: type[BaseModel]
    build: Callable[[Any, Database], Provider]
    channel_of: Callable[[Any], str] | None = None
    callbacks: frozenset[str] = frozenset()
    callback_answer: tuple[str, str] | None = None

    def channel_for(self, config: BaseModel) -> str:
        return self.channel_of(config) if self.channel_of else self.channels[0]


# Callbacks from providers (status reports, inbound replies) -------------------------------------


class WebhookRejected(Exception):
    """A callback that is not provably from the provider (bad or missing signature, replay)."""


@dataclass(frozen=True)
class InboundRequest:
    """A provider's HTTP callback as CCM received it. ``public_url`` is the URL the provider was
    given (``CCM_PUBLIC_URL`` + path): behind a proxy it differs from ``url`` in scheme or host,
    and signatures are computed over the one the provider called."""

    method: str
    url: str
    public_url: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes
    form: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusEvent:
    """What a provider reports about a message it accepted.

    ``kind`` is one of ``delivered``, ``bounced_hard``, ``bounced_soft``, ``complained``,
    ``failed``, ``read``, ``opened``, ``clicked``, ``unsubscribed``; ``event_id`` is stable across
    the provider's retries of the same report (used to drop duplicates)."""

    provider_message_id: str
    kind: str
    event_id: str
    occurred_at: str | None = None
    recipient: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundText:
    """A message a person sent us on a channel (an SMS or chat reply)."""

    channel: str
    from_address: str
    to_address: str | None
    body: str
    provider_message_id: str
    received_at: str | None = None


class NoCallbacks:
    """The callback half of :class:`Provider` for providers that call nothing back: their
    ``callbacks`` is empty, so the callback endpoints answer 404 before reaching these."""

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        raise WebhookRejected("this provider sends no callbacks")

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        return []

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        return []
