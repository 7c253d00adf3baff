"""One row of a file, checked and turned into the values it writes.

A row with any bad value is skipped whole and reported, one report line per bad value: writing
the rest of it would leave a profile that silently lacks what the file said. An empty cell
means "not given": an import fills fields and never clears one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccm.channels.addresses import normalize_email_address, normalize_phone
from ccm.channels.base import InvalidAddress
from ccm.imports.mapping import SKIP, consent_of
from ccm.validation import check_locale, check_timezone

CONSENT_WORDS = {
    "yes": "granted",
    "y": "granted",
    "true": "granted",
    "1": "granted",
    "subscribed": "granted",
    "opt_in": "granted",
    "opt-in": "granted",
    "optin": "granted",
    "granted": "granted",
    "no": "revoked",
    "n": "revoked",
    "false": "revoked",
    "0": "revoked",
    "unsubscribed": "revoked",
    "opt_out": "revoked",
    "opt-out": "revoked",
    "optout": "revoked",
    "revoked": "revoked",
}
_EXTERNAL_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
_LOCALE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,4}$")
MAX_ATTRIBUTE_CHARS = 10_000


@dataclass
class RowValues:
    """What a valid row writes: profile fields given, attributes, consent decisions."""

    row: int
    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    consents: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(channel, topic, status, column)"""

    @property
    def external_id(self) -> str | None:
        return self.fields.get("external_id")


@dataclass(frozen=True)
class RowError:
    row: int
    column: str | None
    value: str | None
    reason: str


def read_row(
    row: int, cells: list[str], header: list[str], mapping: dict[str, str], region: str
) -> tuple[RowValues | None, list[RowError]]:
    """The row's values, or None and why not."""
    values, errors = RowValues(row), []
    if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
        errors.append(RowError(row, None, None, f"{len(cells)} cells for {len(header)} columns"))
    for column, raw in zip(header, cells, strict=False):
        target = mapping.get(column, SKIP)
        value = raw.strip()
        if target == SKIP or not value:
            continue
        problem = _take(values, target, value, column, region)
        if problem:
            errors.append(RowError(row, column, raw, problem))
    if not errors and not any(name in values.fields for name in ("external_id", "email", "phone")):
        errors.append(RowError(row, None, None, "no external_id, email or phone to match or create a profile"))
    return (None, errors) if errors else (values, [])


def _take(values: RowValues, target: str, value: str, column: str, region: str) -> str | None:
    """Store ``value`` for ``target`` in ``values``; the reason it is bad, or None."""
    try:
        if target.startswith("attributes."):
            if len(value) > MAX_ATTRIBUTE_CHARS:
                return f"longer than {MAX_ATTRIBUTE_CHARS} characters"
            values.attributes[target.removeprefix("attributes.")] = value
        elif target.startswith("consent."):
            return _take_consent(values, target, value, column)
        else:
            values.fields[target] = _FIELD_CHECKS[target](value, region)
    except (ValueError, InvalidAddress) as exc:
        return str(exc)
    return None


def _take_consent(values: RowValues, target: str, value: str, column: str) -> str | None:
    consent = consent_of(target)
    status = CONSENT_WORDS.get(value.lower())
    if consent is None or status is None:
        return "consent is yes/no, true/false, 1/0, subscribed/unsubscribed or opt_in/opt_out"
    values.consents.append((consent.channel, consent.topic, status, column))
    return None


def _external_id(value: str, _region: str) -> str:
    if not _EXTERNAL_ID.match(value):
        raise ValueError("an external_id is 1 to 255 characters, no control characters")
    return value


def _email(value: str, _region: str) -> str:
    if len(value) > 320:
        raise ValueError("not a valid email address: longer than 320 characters")
    return normalize_email_address(value)


def _phone(value: str, region: str) -> str:
    if len(value) > 32:
        raise ValueError("not a phone number: longer than 32 characters")
    return normalize_phone(value, region=region)


def _timezone(value: str, _region: str) -> str:
    return check_timezone(value)


def _locale(value: str, _region: str) -> str:
    if not _LOCALE.match(value) or len(value) > 35:
        raise ValueError(f"not a locale like 'en' or 'es-MX': {value!r}")
    return check_locale(value)


_FIELD_CHECKS = {
    "external_id": _external_id,
    "email": _email,
    "phone": _phone,
    "timezone": _timezone,
    "locale": _locale,
}


def identity_keys(cells: list[str], header: list[str], mapping: dict[str, str]) -> list[str]:
    """What makes a row the same person as an earlier one in the file: the same external id or
    the same email (case-insensitive); a row with neither, the same phone digits."""
    given = {mapping.get(column): cell.strip() for column, cell in zip(header, cells, strict=False) if cell.strip()}
    keys = [
        f"{name}:{given[name].lower() if name == 'email' else given[name]}"
        for name in ("external_id", "email")
        if given.get(name)
    ]
    if not keys and given.get("phone"):
        keys.append("phone:" + re.sub(r"\D", "", given["phone"]))
    return keys
