"""Field validators shared by request schemas: addresses, time zones, locales, header values."""

from __future__ import annotations

import re
import zoneinfo
from email.utils import getaddresses
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

Channel = Literal["email", "sms", "chat"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "chat")

_LOCALE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
_PHONE = re.compile(r"^\+?[0-9 ().-]{6,24}$")
_HEADER_BREAKS = re.compile("[\r\n\x00\u2028\u2029]")


def normalize_email(value: str) -> str:
    """The normalized ASCII form of an address (IDN domains punycoded), or ValueError."""
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.ascii_email or result.normalized


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def check_locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError(f"not a locale tag like 'en' or 'es-MX': {value!r}")
    language, *rest = value.split("-")
    return "-".join([language.lower(), *(part.upper() if len(part) == 2 else part for part in rest)])


def check_phone(value: str) -> str:
    if not _PHONE.match(value):
        raise ValueError("not a phone number; use E.164 such as +14155550100")
    return value


def check_header_value(value: str) -> str:
    if _HEADER_BREAKS.search(value):
        raise ValueError("line breaks and NUL are not allowed in header values")
    return value


def check_mailbox(value: str) -> str:
    """A From value: ``addr@example.com`` or ``Display Name <addr@example.com>``."""
    check_header_value(value)
    found = getaddresses([value])
    address = found[0][1] if len(found) == 1 else ""
    if not address:
        raise ValueError(f"not an address like 'Shop <hello@shop.example>': {value!r}")
    normalize_email(address)
    return value.strip()


def check_unique_channels(value: list[Channel]) -> list[Channel]:
    if len(set(value)) != len(value):
        raise ValueError("each channel may appear once")
    return value


Email = Annotated[str, AfterValidator(normalize_email)]
TimeZone = Annotated[str, AfterValidator(check_timezone)]
Locale = Annotated[str, AfterValidator(check_locale)]
Phone = Annotated[str, AfterValidator(check_phone)]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]
Mailbox = Annotated[str, Field(max_length=320), AfterValidator(check_mailbox)]
ChannelRanking = Annotated[list[Channel], AfterValidator(check_unique_channels)]
