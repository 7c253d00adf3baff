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

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile

NAME_ATTRIBUTES = ("name", "first_name", "last_name")
_PHONE = re.compile(r"^\+?[\d\s().-]{4,}$")
_NAME = re.compile(r"^[^\W\d_]+(?:[ '.-]+[^\W\d_]*)*$")  # letters, and spaces ' . - between them
_TOP = "\U0010ffff"  # sorts after every other character: the end of a prefix's range


def search_profiles(
    *, session: Session, workspace_id: str, query: str, page: PageQuery
) -> tuple[list[Profile], str | None]:
    """The live profiles matching ``query`` (all of them when it is blank), newest first.

    ``query`` is read by its shape: with an ``@`` the start of an email address; digits (with
    ``+``, spaces, dots, dashes, brackets) part of a phone number; anything else the start of an
    external id, or — when it is letters, spaces, apostrophes, dots and dashes only — of a word of
    the person's names (``name``, ``first_name``, ``last_name`` attributes; any case)."""
    return _merged(session, search_statements(workspace_id=workspace_id, query=query), page)


def search_statements(*, workspace_id: str, query: str) -> list[Select[Any]]:
    """The statements :func:`search_profiles` pages through (one, or two whose union it is)."""
    query = " ".join(query.split())
    live = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    if not query:
        statements = [live]
    elif "@" in query:
        statements = [live.where(_prefix(Profile.email, query.lower()))]
    elif _PHONE.match(query):
        digits = re.sub(r"\D", "", query)
        statements = [live.where(Profile.phone.contains(digits, autoescape=True))]
    elif _NAME.match(query):
        statements = [live.where(_prefix(Profile.external_id, query)), live.where(_name_starts(query.lower()))]
    else:  # digits or signs: no name has them
        statements = [live.where(_prefix(Profile.external_id, query))]
    return statements


def _prefix(column: InstrumentedAttribute[Any], prefix: str) -> ColumnElement[bool]:
    return (column >= prefix) & (column < prefix + _TOP) & column.startswith(prefix, autoescape=True)


def _name_starts(prefix: str) -> ColumnElement[bool]:
    """A word of the person's names (``name``, ``first_name``, ``last_name``, in that order)
    starts with ``prefix`` (lower case): one expression per row, the cheapest to scan."""
    names = [func.coalesce(Profile.attributes[name].as_string(), "") for name in NAME_ATTRIBUTES]
    words = func.lower(" " + names[0] + " " + names[1] + " " + names[2])
    return words.contains(" " + prefix, autoescape=True)


def _merged(session: Session, statements: list[Select[Any]], page: PageQuery) -> tuple[list[Profile], str | None]:
    """One page of the union of ``statements``, each read a page at a time after the cursor."""
    found: dict[str, Profile] = {}
    for statement in statements:
        found.update((profile.id, profile) for profile in session.scalars(paginate(statement, Profile.id, page)))
    rows = sorted(found.values(), key=lambda profile: profile.id, reverse=True)
    items, cursor = split_page(rows, page, lambda profile: profile.id)
    return list(items), cursor
