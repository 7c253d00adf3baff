"""Addresses in the form providers send to: emails (email-validator), phone numbers in E.164
(phonenumbers, with the workspace's default region for national numbers), chat handles."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ccm.channels.base import InvalidAddress


def normalize_email_address(address: str) -> str:
    """The ASCII form of an email address (IDN domains punycoded); raises InvalidAddress."""
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"not a valid email address: {exc}") from None
    return result.ascii_email or result.normalized


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


def phone_region(e164: str) -> str | None:
    """The ISO country code of an E.164 number (``FR`` for ``+33…``)."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
