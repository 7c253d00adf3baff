"""A message's reason and its code: the text before the first colon (``no_consent: email, news``
has the code ``no_consent``), which the dashboard and a campaign's results count by."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, func
from sqlalchemy.orm import Session

from ccm.db import dialect_of


def reason_code(session: Session, reason: Any) -> ColumnElement[Any]:
    """A reason's code, as SQL (``unknown`` for none)."""
    reason = func.coalesce(reason, "unknown")
    if dialect_of(session) == "postgresql":
        return func.split_part(reason, ":", 1)
    position = func.instr(reason, ":")
    return case((position > 0, func.substr(reason, 1, position - 1)), else_=reason)
