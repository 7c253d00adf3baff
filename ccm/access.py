"""Who may do what: one table from role to permissions, read by the API (for keys) and the web app (for
users) alike, so a button hidden in the UI is also a request the server refuses.

Users have one of four roles (admin, marketer, agent, viewer). API keys have those too, plus two of
their own: ``standard``, the key of a backend system (everything but managing keys, users and
providers), and ``write``, the Segment-style write key that only sends events."""

from __future__ import annotations

import enum

from ccm.errors import Forbidden


class Role(enum.StrEnum):
    """A user's or an API key's role."""

    ADMIN = "admin"
    MARKETER = "marketer"
    AGENT = "agent"
    VIEWER = "viewer"
    STANDARD = "standard"
    WRITE = "write"


USER_ROLES = (Role.ADMIN, Role.MARKETER, Role.AGENT, Role.VIEWER)


class Permission(enum.StrEnum):
    """Something a request may do. Reading the workspace is ``VIEW``; each other one writes."""

    VIEW = "view"
    TEMPLATES = "templates.write"
    SEGMENTS = "segments.write"
    IMPORTS = "imports.write"
    CAMPAIGNS = "campaigns.write"
    PROFILES = "profiles.write"
    CONSENT = "consent.write"
    SEND = "messages.send"
    CONVERSATIONS = "conversations.write"
    EVENTS = "events.write"
    PRIVACY = "privacy.write"
    ADMIN = "workspace.admin"


_MARKETING = frozenset(
    {Permission.VIEW, Permission.TEMPLATES, Permission.SEGMENTS, Permission.IMPORTS, Permission.CAMPAIGNS}
)
_SUPPORT = frozenset(
    {Permission.VIEW, Permission.PROFILES, Permission.CONSENT, Permission.SEND, Permission.CONVERSATIONS}
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MARKETER: _MARKETING,
    Role.AGENT: _SUPPORT,
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.STANDARD: frozenset(Permission) - {Permission.ADMIN},
    Role.WRITE: frozenset({Permission.EVENTS}),
}


def allows(role: str, permission: Permission) -> bool:
    """Whether ``role`` may do ``permission``; an unknown role may do nothing."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def roles_allowing(permission: Permission) -> list[Role]:
    """The roles that may do ``permission``, in the order of :class:`Role`."""
    return [role for role in Role if permission in ROLE_PERMISSIONS[role]]


def require(role: str, permission: Permission, *, who: str = "this API key") -> None:
    """Refuse, before anything runs, what ``role`` may not do: the check the API makes for every key
    and the web app for every user (``who="your account"``).

    Raises:
      Forbidden: naming ``Authorization`` and the roles that would be allowed.
    """
    if allows(role, permission):
        return
    needed = ", ".join(roles_allowing(permission))
    hint = (
        "; a write key only sends events to the ingestion endpoints (/v1/track, /v1/batch …)" if role == "write" else ""
    )
    raise Forbidden(
        f"{who} has the role {role!r}; this needs {permission.value}, which the roles {needed} have{hint}",
        field="Authorization",
        details={"permission": permission.value, "roles": needed.split(", ")},
    )
