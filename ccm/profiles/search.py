"""Finding a customer by what a support agent knows: the start of an email address or an external
id, a few digits of a phone number, or the start of a name — newest first, with the cursor
pagination of every list.

An email or external id prefix is a range on ``(workspace_id, email)`` or ``(workspace_id,
external_id)``, which an index answers under any collation (a ``LIKE 'x%'`` alone uses a btree only
under the C collation); the ``LIKE`` beside it only keeps the range exact. Phone digits and names
have no index of their own: those are read along ``(workspace_id, id)``, newest first, stopping at
a page of matches."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile

NAME_ATTRIBUTES = ("name", "first_name", "last_name")
_PHONE = re.compile(r"^\+?[\d\s().-]{4,}$")
_TOP = "\U0010ffff"  # sorts after every other character: the end of a prefix's range


def search_profiles(
    *, session: Session, workspace_id: str, query: str, page: PageQuery
) -> tuple[list[Profile], str | None]:
    """The live profiles matching ``query`` (all of them when it is blank), newest first.

    ``query`` is read by its shape: with an ``@`` the start of an email address; digits (with
    ``+``, spaces, dots, dashes, brackets) part of a phone number; anything else the start of an
    external id or of a name (``name``, ``first_name`` or ``last_name`` attributes, or
    ``first_name last_name``; a word of ``name``; any case)."""
    query = " ".join(query.split())
    live = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    if not query:
        statements = [live]
    elif "@" in query:
        statements = [live.where(_prefix(Profile.email, query.lower()))]
    elif _PHONE.match(query):
        digits = re.sub(r"\D", "", query)
        statements = [live.where(Profile.phone.contains(digits, autoescape=True))]
    else:
        statements = [live.where(_prefix(Profile.external_id, query)), live.where(_name_starts(query.lower()))]
    return _merged(session, statements, page)


def _prefix(column: InstrumentedAttribute[Any], prefix: str) -> ColumnElement[bool]:
    return (column >= prefix) & (column < prefix + _TOP) & column.startswith(prefix, autoescape=True)


def _name_starts(prefix: str) -> ColumnElement[bool]:
    """A name, or a word of ``name``, starts with ``prefix`` (lower case)."""
    names = [func.lower(Profile.attributes[name].as_string()) for name in NAME_ATTRIBUTES]
    full = func.lower(Profile.attributes["first_name"].as_string() + " " + Profile.attributes["last_name"].as_string())
    starts = [name.startswith(prefix, autoescape=True) for name in [*names, full]]
    return or_(*starts, names[0].contains(" " + prefix, autoescape=True))


def _merged(session: Session, statements: list[Select[Any]], page: PageQuery) -> tuple[list[Profile], str | None]:
    """One page of the union of ``statements``, each read a page at a time after the cursor."""
    found: dict[str, Profile] = {}
    for statement in statements:
        found.update((profile.id, profile) for profile in session.scalars(paginate(statement, Profile.id, page)))
    rows = sorted(found.values(), key=lambda profile: profile.id, reverse=True)
    items, cursor = split_page(rows, page, lambda profile: profile.id)
    return list(items), cursor
