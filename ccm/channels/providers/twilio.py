"""Twilio Programmable Messaging: SMS, or WhatsApp through the same Messages API.

https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ccm.channels.base import (
    CommitPoint,
    DeliveryError,
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderConfigError,
    ProviderLimits,
    Receipt,
)
from ccm.channels.http import (
    READ_TIMEOUT,
    as_check_error,
    classify_response,
    describe,
    make_client,
    response_json,
    send_probe,
    send_with_commit_point,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LABEL = "Twilio"
WHATSAPP = "whatsapp:"
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SEPARATORS = re.compile(r"[\s().-]")
# Twilio error codes (https://www.twilio.com/docs/api/errors) that say something about the recipient
# or our account rather than the request; any other 4xx is a plain rejection.
_INVALID_ADDRESS = frozenset({21211, 21214, 21217, 21401, 21612, 21614, 63003})
_UNSUBSCRIBED = frozenset({21610})
_CONFIG = frozenset({20003, 20404, 21212, 21606, 21659})


def normalize_e164(address: str) -> str:
    """``+`` and 8 to 15 digits, once spaces, dots, dashes and brackets are removed.

    Raises:
      InvalidAddress: anything else (national numbers must have been made E.164 before).
    """
    number = _SEPARATORS.sub("", address)
    if not _E164.fullmatch(number):
        raise InvalidAddress(f"{address!r} is not an E.164 phone number (+ and 8 to 15 digits)")
    return number


class TwilioConfig(BaseModel):
    """Settings of a Twilio account. Exactly one of ``from_number`` and ``messaging_service_sid``.

    ``whatsapp`` sends WhatsApp messages (channel ``chat``) from a WhatsApp-enabled sender.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_number: str | None = None
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    whatsapp: bool = False
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    rate_per_second: float = Field(10.0, gt=0)

    @field_validator("from_number")
    @classmethod
    def _e164_sender(cls, value: str | None) -> str | None:
        return None if value is None else normalize_e164(value.removeprefix(WHATSAPP))

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioConfig:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self


class TwilioProvider:
    """Sends ``OutboundMessage.body`` as an SMS, or a WhatsApp message when configured so.

    Twilio does not dedupe a repeated request, so an answer lost after the request went out is
    an :class:`~ccm.channels.base.OutcomeUnknownError`.
    """

    name: ClassVar[str] = "twilio"
    config_model: ClassVar[type[BaseModel]] = TwilioConfig
    channels: ClassVar[tuple[str, ...]] = ("sms", "chat")
    in_transaction: ClassVar[bool] = False
    idempotent_retries: ClassVar[bool] = False

    def __init__(self, config: TwilioConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = "chat" if config.whatsapp else "sms"
        self.handle_key = "whatsapp"  # a profile's chat handle for WhatsApp: {"whatsapp": "+1…"}
        self.limits = ProviderLimits(max_body_chars=1600, rate_per_second=config.rate_per_second)
        self._account_url = f"{str(config.base_url).rstrip('/')}/2010-04-01/Accounts/{config.account_sid}"
        self._secrets = (config.auth_token.get_secret_value(),)
        self._client = make_client(timeout=timeout, auth=(config.account_sid, self._secrets[0]))

    def __repr__(self) -> str:
        return (f"TwilioProvider(account_sid={self.config.account_sid!r}, channel={self.channel!r}, "
                f"base_url={str(self.config.base_url)!r})")

    def normalize_address(self, address: str) -> str:
        """The number in E.164; a ``whatsapp:`` prefix is accepted (and dropped) for WhatsApp."""
        if self.config.whatsapp:
            address = address.removeprefix(WHATSAPP)
        return normalize_e164(address)

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint, session: Session | None = None) -> Receipt:
        """Create a Message resource; its ``sid`` becomes the receipt's id.

        Raises:
          PermanentDeliveryError: Twilio refused the message (``invalid_address``,
            ``unsubscribed`` or ``rejected``), or the address is not E.164.
          ProviderConfigError: wrong credentials, account or sender.
          TransientDeliveryError, OutcomeUnknownError: see :mod:`ccm.channels.http`.
        """
        form = {"To": self._wire_address(message.to), "Body": message.body, **self._sender()}
        request = self._client.build_request("POST", f"{self._account_url}/Messages.json", data=form)
        response = send_with_commit_point(self._client, request, commit_point=commit_point,
                                          idempotent=self.idempotent_retries, label=LABEL, secrets=self._secrets)
        if not response.is_success:
            raise self._error(response)
        return Receipt(provider_message_id=response_json(response).get("sid"), status="sent")

    def check(self) -> None:
        """Fetch the account resource: proves the SID and token."""
        request = self._client.build_request("GET", f"{self._account_url}.json")
        response = send_probe(self._client, request, label=LABEL, secrets=self._secrets)
        if not response.is_success:
            raise as_check_error(self._error(response))

    def close(self) -> None:
        self._client.close()

    def _wire_address(self, address: str) -> str:
        try:
            number = self.normalize_address(address)
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        return WHATSAPP + number if self.config.whatsapp else number

    def _sender(self) -> dict[str, str]:
        if self.config.messaging_service_sid:
            return {"MessagingServiceSid": self.config.messaging_service_sid}
        number = self.config.from_number or ""
        return {"From": WHATSAPP + number if self.config.whatsapp else number}

    def _error(self, response: httpx.Response) -> DeliveryError:
        """Map Twilio's error JSON (``{"code": 21211, "message": ...}``), then the shared rules."""
        body = response_json(response)
        code, text = body.get("code"), body.get("message")
        detail = f"{code} {text}" if code and text else None
        status = response.status_code
        message = describe(response, label=LABEL, detail=detail, secrets=self._secrets)
        if code in _CONFIG or status == 404:
            return ProviderConfigError(message, reason="auth_failed" if status in (401, 403) else "misconfigured")
        if 400 <= status < 500 and status != 429:
            if code in _INVALID_ADDRESS:
                return PermanentDeliveryError(message, reason="invalid_address")
            if code in _UNSUBSCRIBED:
                return PermanentDeliveryError(message, reason="unsubscribed")
        return classify_response(response, label=LABEL, detail=detail, secrets=self._secrets)
