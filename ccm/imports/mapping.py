"""Which profile field each column of a file fills.

A target is ``external_id``, ``email``, ``phone``, ``timezone``, ``locale``,
``attributes.<name>``, ``consent.<channel>`` or ``consent.<channel>:<topic>``, or ``skip``.
Headers are matched to fields by name, whatever their case, spaces or punctuation; any other
column becomes ``attributes.<header in snake_case>``. An explicit mapping overrides that per column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ccm.errors import ValidationFailed

FIELDS = ("external_id", "email", "phone", "timezone", "locale")
IDENTIFYING = ("external_id", "email", "phone")
CONSENT_CHANNELS = ("email", "sms", "chat")
SKIP = "skip"

_SYNONYMS = {
    "external_id": ("external_id", "externalid", "id", "user_id", "userid", "customer_id", "contact_id"),
    "email": ("email", "e_mail", "email_address", "mail"),
    "phone": ("phone", "phone_number", "mobile", "mobile_phone", "telephone", "tel", "cell"),
    "timezone": ("timezone", "time_zone", "tz"),
    "locale": ("locale", "language", "lang"),
    "consent.email": ("email_consent", "consent_email", "email_opt_in", "email_optin", "email_subscribed"),
    "consent.sms": ("sms_consent", "consent_sms", "sms_opt_in", "sms_optin", "sms_subscribed"),
}
_BY_NAME = {name: target for target, names in _SYNONYMS.items() for name in names}
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_TOPIC = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Consent:
    channel: str
    topic: str


def snake_case(header: str) -> str:
    """``"First Name"``, ``"firstName"``, ``"first-name"`` -> ``first_name``."""
    return _NON_WORD.sub("_", _CAMEL.sub("_", header.strip()).lower()).strip("_")[:100]


def auto_target(header: str, index: int) -> str:
    if not header.strip():
        return SKIP
    name = snake_case(header)
    return _BY_NAME.get(name) or f"attributes.{name or f'column_{index + 1}'}"


def auto_mapping(header: list[str]) -> dict[str, str]:
    """Every named column's target as matched by name (no explicit mapping)."""
    return {name: auto_target(name, index) for index, name in enumerate(header) if name}


def build_mapping(header: list[str], explicit: Mapping[str, str] | None, *, field: str = "mapping") -> dict[str, str]:
    """Every column's target: automatic, overridden by ``explicit`` (keyed by header).

    Raises:
      ValidationFailed: ``explicit`` names a column the file lacks or a field that does not
        exist, two columns fill one field, or no column identifies the profile.
    """
    mapping = auto_mapping(header)
    for column, target in (explicit or {}).items():
        where = f"{field}.{column}"
        if column not in mapping:
            raise ValidationFailed(f"{where}: the file has no column {column!r}", field=where)
        check_target(target, where)
        mapping[column] = target
    _check_distinct(mapping, list(explicit or ()), field)
    if not any(target in IDENTIFYING for target in mapping.values()):
        raise ValidationFailed(
            f"{field}: no column is mapped to external_id, email or phone, so no row could be matched to a profile",
            field=field,
        )
    return mapping


def check_target(target: str, where: str) -> None:
    """Raises ValidationFailed naming ``where`` unless ``target`` is a field a column can fill."""
    if not isinstance(target, str):
        raise ValidationFailed(f"{where}: a target field name is a string", field=where)
    if target in FIELDS or target == SKIP:
        return
    if target.startswith("attributes.") and _ATTRIBUTE.match(target.removeprefix("attributes.")):
        return
    if target.startswith("consent.") and consent_of(target) is not None:
        return
    raise ValidationFailed(
        f"{where}: unknown field {target!r}; use one of {', '.join(FIELDS)}, attributes.<name>, "
        "consent.<email|sms|chat>[:<topic>] or skip",
        field=where,
    )


def consent_of(target: str) -> Consent | None:
    """``consent.email:news`` -> Consent("email", "news"); ``consent.sms`` covers every topic."""
    channel, _, topic = target.removeprefix("consent.").partition(":")
    if channel not in CONSENT_CHANNELS or (topic and not _TOPIC.match(topic)):
        return None
    return Consent(channel, topic or "*")


def _check_distinct(mapping: dict[str, str], explicit: list[str], field: str) -> None:
    """Each field filled by one column; a clash is named at the column mapped explicitly."""
    seen: dict[str, str] = {}
    for column in [*explicit, *(name for name in mapping if name not in explicit)]:
        target = mapping[column]
        if target == SKIP:
            continue
        if target in seen:
            where = f"{field}.{column if column in explicit else seen[target]}"
            raise ValidationFailed(
                f"{where}: columns {seen[target]!r} and {column!r} both fill {target}; map one to skip", field=where
            )
        seen[target] = column


def parse_mapping_pairs(pairs: list[str], *, field: str = "--map") -> dict[str, str]:
    """``["Header=field", …]`` (the CLI's ``--map``) as a mapping."""
    explicit = {}
    for pair in pairs:
        column, sep, target = pair.rpartition("=")
        if not sep or not column:
            raise ValidationFailed(f"{field}: {pair!r} is not Header=field", field=field)
        explicit[column.strip()] = target.strip()
    return explicit
