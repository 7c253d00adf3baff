"""Profiles: create, update, read, list and delete customers."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ccm.channels.addresses import normalize_phone
from ccm.channels.base import InvalidAddress
from ccm.db import utcnow
from ccm.errors import NotFound, ValidationFailed
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile
from ccm.profiles.schemas import InlineProfile, ProfileIn, ProfilePatch
from ccm.workspaces.service import workspace_policy

WRITABLE = ("email", "phone", "chat", "attributes", "timezone", "locale", "channels", "preferences")


def get_profile(
    *, session: Session, workspace_id: str, external_id: str, lock: Literal["update", "key_share"] | None = None
) -> Profile:
    """The profile. ``lock`` holds its row until the transaction ends (PostgreSQL): ``update`` to
    change it, ``key_share`` to write rows that refer to it. A concurrent erasure then waits for
    this transaction, or wins first and this answers 404 — never an ``UPDATE`` that finds the row
    gone or a reference to a deleted profile (both were 500s).

    Raises:
      NotFound: the workspace has no profile with this external id.
    """
    statement = select(Profile).where(Profile.workspace_id == workspace_id, Profile.external_id == external_id)
    if lock is not None:
        # FOR KEY SHARE takes read=True: key_share alone is FOR NO KEY UPDATE, which would make
        # every consent POST wait for the profile's other writers
        statement = statement.with_for_update(key_share=lock == "key_share", read=lock == "key_share")
    profile = session.scalar(statement)
    if profile is None:
        raise NotFound(f"no profile with external_id {external_id!r}", field="external_id")
    return profile


def upsert_profile(*, session: Session, workspace_id: str, external_id: str, data: ProfileIn) -> tuple[Profile, bool]:
    """Create the profile or replace its fields. Returns (profile, created).

    Raises:
      ValidationFailed: the phone number is not valid (national numbers are read in the
        workspace's default region).
    """
    values = _plain(session, workspace_id, data, WRITABLE)
    try:
        with session.begin_nested():
            profile = Profile(workspace_id=workspace_id, external_id=external_id, **values)
            session.add(profile)
        return profile, True
    except IntegrityError:  # it exists (perhaps created concurrently): update it instead
        profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id, lock="update")
        _assign(profile, values)
        return profile, False


def patch_profile(*, session: Session, workspace_id: str, external_id: str, data: ProfilePatch) -> Profile:
    profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id, lock="update")
    values = _plain(session, workspace_id, data, data.model_fields_set)
    if "attributes" in values:
        values["attributes"] = _merge(profile.attributes, values["attributes"] or {})
    if "chat" in values:
        values["chat"] = _merge(profile.chat, values["chat"] or {})
    for name, empty in (("channels", []), ("preferences", {})):
        if name in values and values[name] is None:
            values[name] = empty
    _assign(profile, values)
    return profile


def list_profiles(
    *, session: Session, workspace_id: str, page: PageQuery, filters: dict[str, Any]
) -> tuple[list[Profile], str | None]:
    dialect = session.get_bind().dialect.name
    live = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    statement = _filtered(live, filters, dialect)
    rows = session.scalars(paginate(statement, Profile.id, page)).all()
    items, cursor = split_page(rows, page, lambda profile: profile.id)
    return list(items), cursor


def find_by_address(
    *, session: Session, workspace_id: str, channel: str, address: str, chat_key: str | None = None
) -> Profile | None:
    """The profile with ``address`` on ``channel`` (``profile.chat[chat_key]`` for chat); the
    first one when several share it."""
    if channel == "email":
        match = Profile.email == address
    elif channel == "sms":
        match = Profile.phone == address
    elif chat_key:
        match = Profile.chat[chat_key].as_string() == address
    else:
        return None
    return session.scalar(select(Profile).where(Profile.workspace_id == workspace_id, match).limit(1))


def resolve_recipient(
    *, session: Session, workspace_id: str, external_id: str | None, inline: InlineProfile | None
) -> Profile:
    """The profile a send request addresses: by external id, or from inline fields (upserted;
    without an external id the profile is matched on email, then phone, or created)."""
    if inline is None:
        assert external_id is not None
        try:
            return get_profile(session=session, workspace_id=workspace_id, external_id=external_id)
        except NotFound:
            raise NotFound(
                f"to.external_id: no profile with external_id {external_id!r}", field="to.external_id"
            ) from None
    try:
        if inline.external_id:
            profile, _ = upsert_profile(
                session=session,
                workspace_id=workspace_id,
                external_id=inline.external_id,
                data=ProfileIn(**inline.model_dump(exclude={"external_id"})),
            )
            return profile
        return _match_or_create(session=session, workspace_id=workspace_id, inline=inline)
    except ValidationFailed as exc:  # the inline profile is the request's "to"
        raise exc.under("to") from None


def _match_or_create(*, session: Session, workspace_id: str, inline: InlineProfile) -> Profile:
    values = _plain(session, workspace_id, inline, WRITABLE)
    for channel, field in (("email", "email"), ("sms", "phone")):
        match = (
            find_by_address(session=session, workspace_id=workspace_id, channel=channel, address=values[field])
            if values.get(field)
            else None
        )
        if match is not None:
            return match
    if not (inline.email or inline.phone or inline.chat):
        raise ValidationFailed("an inline recipient needs an external_id, email, phone or chat handle", field="to")
    profile = Profile(workspace_id=workspace_id, **values)
    session.add(profile)
    session.flush()
    return profile


def _plain(session: Session, workspace_id: str, data: Any, names: Any) -> dict[str, Any]:
    """The fields to write, as stored: preferences as JSON, phone numbers in E.164."""
    values = {name: getattr(data, name) for name in names if name in WRITABLE}
    if values.get("preferences") is not None:
        values["preferences"] = values["preferences"].model_dump(mode="json", exclude_none=True)
    if values.get("phone"):
        region = workspace_policy(session=session, workspace_id=workspace_id).default_region
        try:
            values["phone"] = normalize_phone(values["phone"], region=region)
        except InvalidAddress as exc:
            raise ValidationFailed(f"phone: {exc}", field="phone") from None
    return values


def _assign(profile: Profile, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(profile, name, value)
    profile.updated_at = utcnow()


def _merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _filtered(statement: Select[Any], filters: dict[str, Any], dialect: str) -> Select[Any]:
    """``filters`` as :meth:`ProfileListQuery.filters` gives them: checked and parsed."""
    for name, value in filters.items():
        if name in ("email", "phone"):
            statement = statement.where(getattr(Profile, name) == value)
        else:
            statement = statement.where(_attribute_equals(name.removeprefix("attributes."), value, dialect))
    return statement


def _attribute_equals(attribute: str, value: str | int | float | bool, dialect: str) -> Any:
    if dialect == "postgresql":  # JSONB containment: type-exact and able to use a GIN index
        return type_coerce(Profile.attributes, JSONB).contains({attribute: value})
    return func.json_extract(Profile.attributes, f'$."{attribute}"') == value


def template_context(profile: Any) -> dict[str, Any]:
    """The ``profile`` variable templates see: plain data, never the ORM object. ``profile`` is a
    Profile, or anything with its fields (a message loaded for delivery), or None."""
    if profile is None:
        return {"external_id": None, "email": None, "phone": None, "locale": None, "timezone": None, "attributes": {}}
    return {
        "external_id": profile.external_id,
        "email": profile.email,
        "phone": profile.phone,
        "locale": profile.locale,
        "timezone": profile.timezone,
        "attributes": dict(profile.attributes or {}),
    }


def get_profile_by_id(*, session: Session, workspace_id: str, profile_id: str) -> Profile:
    """The live or merged profile with this id (people who wrote in have no external id).

    Raises:
      NotFound: the workspace has no profile with this id.
    """
    profile = session.get(Profile, profile_id) if len(profile_id) <= 32 else None
    if profile is None or profile.workspace_id != workspace_id:
        raise NotFound(f"no profile with id {profile_id!r}", field="id")
    return profile
