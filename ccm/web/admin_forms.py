"""What the admin screens share: running one write in its own unit of work, turning a service's
error into a notice and a field error, and recording in the audit log who did it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import g, request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from ccm.audit.service import Target, record
from ccm.errors import CCMError
from ccm.http import validation_failed
from ccm.web.pages import db
from ccm.web.security import actor

T = TypeVar("T")


@dataclass
class Outcome:
    """What a form post came to: notices for the top of the page, errors by field, the status."""

    notices: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def shown(self) -> dict[str, Any]:
        """The page's ``notices`` and ``errors``."""
        return {"notices": self.notices, "errors": self.errors}

    def failed(self, exc: CCMError) -> None:
        self.status = exc.status
        self.notices.append(exc.message)
        for error in exc.details.get("errors", []) or [{"field": exc.details.get("field"), "message": exc.message}]:
            if error.get("field"):
                self.errors.setdefault(str(error["field"]), str(error["message"]))


def run_write(outcome: Outcome, work: Callable[[Session], T], *, prefix: str = "") -> T | None:
    """``work(session)`` in a unit of work of its own; a service error or a model refusing the
    input rolls it back and lands in ``outcome`` (with the status it carries), never a 500."""
    try:
        with db().unit_of_work() as session:
            return work(session)
    except ValidationError as exc:
        outcome.failed(validation_failed(exc, prefix=prefix))
    except CCMError as exc:
        outcome.failed(exc)
    return None


def audit(
    session: Session, action: str, target: Target, *, before: dict[str, Any] | None = None, after: Any = None
) -> None:
    """Record ``action`` by the logged-in user, from their address, in the write's transaction."""
    record(
        session=session,
        workspace_id=g.user.workspace_id,
        actor=actor(),
        action=action,
        target=target,
        before=before,
        after=after,
        ip=request.remote_addr,
    )
