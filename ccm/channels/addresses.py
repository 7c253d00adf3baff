"""Addresses in the form providers send to: emails (email-validator), phone numbers in E.164
(phonenumbers, with the workspace's default region for national numbers), chat handles."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ccm.channels.base import InvalidAddress, Provider

# An address already in normalized form (as profiles store them): lower-case ASCII domain, plain
# local part. Recognising it skips email-validator's full parse, which costs ~150 µs per send.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SEPARATORS = re.compile(r"[\s().-]")
_NORMALIZED = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


def normalize_email_address(address: str) -> str:
    """The ASCII form of an email address (IDN domains punycoded); raises InvalidAddress."""
    if len(address) <= 254 and _NORMALIZED.match(address):
        return address
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"not a valid email address: {exc}") from None
    return result.ascii_email or result.normalized


def normalize_e164(address: str) -> str:
    """``+`` and 8 to 15 digits, once spaces, dots, dashes and brackets are removed.

    Raises:
      InvalidAddress: anything else (national numbers must have been made E.164 before).
    """
    number = _SEPARATORS.sub("", address)
    if not _E164.fullmatch(number):
        raise InvalidAddress(f"{address!r} is not an E.164 phone number (+ and 8 to 15 digits)")
    return number


def normalize_phone(address: str, *, region: str | None = None) -> str:
    """E.164 (``+14155550100``) for a valid number; national numbers need ``region`` (``US``, ``FR``).

    Raises:
      InvalidAddress: unparseable, impossible or invalid for its country.
    """
    try:
        number = phonenumbers.parse(address, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"{address!r} is not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def chat_handle(provider: Provider, handles: dict[str, str] | object) -> str | None:
    """The profile's chat handle for ``provider``: ``{"telegram": "12345", "slack": "https://…",
    "whatsapp": "+1…"}`` keyed by ``provider.handle_key`` (``None`` takes any handle, as the local
    outbox does)."""
    if not isinstance(handles, dict) or not handles:
        return None
    key = provider.handle_key
    return next(iter(handles.values())) if key is None else handles.get(key)


def phone_region(e164: str) -> str | None:
    """The ISO country code of an E.164 number (``FR`` for ``+33…``)."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
