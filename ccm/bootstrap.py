"""Getting a fresh installation going: the embedded default's database, the default workspace and
its first API key, and demo data."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.config import Settings
from ccm.runtime import Runtime


def starter_templates() -> Path:
    """The starter templates: ``./templates`` when run from a checkout, else the ones beside the package."""
    local = Path("templates")
    return local if (local / "messages").is_dir() else Path(__file__).resolve().parent.parent / "templates"


def prepare_embedded(settings: Settings) -> None:
    """Create the data directory and bring the SQLite schema up to date."""
    from ccm.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)


def default_api_key(runtime: Runtime, *, workspace: str) -> str | None:
    """On the embedded default, the default workspace's first API key, kept (mode 0600) under the
    data directory so every ``ccm serve`` can print it. Elsewhere keys come from ``ccm api-keys create``."""
    from ccm.auth.models import ApiKeyRole
    from ccm.auth.service import authenticate, create_api_key
    from ccm.workspaces.service import get_or_create_workspace

    if not runtime.settings.embedded:
        return None
    path = runtime.settings.data_dir / "default-api-key"
    with runtime.db.unit_of_work() as session:
        if path.exists() and authenticate(session=session, token=path.read_text().strip()):
            return path.read_text().strip()
        ws, _ = get_or_create_workspace(session=session, name=workspace)
        _, token = create_api_key(
            session=session, workspace_id=ws.id, name="default (ccm serve)", role=ApiKeyRole.ADMIN
        )
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


FIRST_ADMIN_EMAIL = "admin@example.com"


def first_admin(runtime: Runtime, *, workspace: str) -> tuple[str, str] | None:
    """When the default workspace has no user, create its first admin and return the email and
    one-time password (to print once: only its hash is kept, and it must be changed at first login).
    None when the workspace has users already."""
    from ccm.access import Role
    from ccm.users.models import User
    from ccm.users.service import create_user
    from ccm.workspaces.service import get_or_create_workspace

    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name=workspace)
        if session.scalar(select(User.id).where(User.workspace_id == ws.id).limit(1)) is not None:
            return None
        if session.scalar(select(User.id).where(User.email_key == FIRST_ADMIN_EMAIL)) is not None:
            return None  # another workspace took the address: an operator set users up by hand
        _, password = create_user(session=session, workspace_id=ws.id, email=FIRST_ADMIN_EMAIL, role=Role.ADMIN)
    assert password is not None
    return FIRST_ADMIN_EMAIL, password


DEMO_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Dennis", "Radia"]


@dataclass(frozen=True)
class DemoSeeded:
    """What ``seed_demo`` did. Demo data never replaces what the workspace has: those objects are
    listed in ``skipped``."""

    profiles_created: int
    messages_queued: int
    skipped: list[str] = field(default_factory=list)
    """``template welcome``, ``snippet layouts/base.html``, ``profile demo-0001``…"""


def seed_demo(runtime: Runtime, *, workspace: str, profiles: int, progress: Callable[[], None]) -> DemoSeeded:
    """Import the starter templates, create demo profiles and queue a welcome message to each new
    one. Templates, snippets and profiles the workspace already has (with other content) are left
    alone; without the demo's own ``welcome`` template no welcome message is queued."""
    from ccm.message_templates.importer import import_templates
    from ccm.workspaces.service import get_or_create_workspace

    rng = random.Random(7)
    created = queued = 0
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name=workspace)
        report = import_templates(
            session=session, sandbox=runtime.sandbox, workspace_id=ws.id, root=starter_templates(), keep_existing=True
        )
        skipped = list(report.skipped)
        send_welcome = "template welcome" not in skipped
        for n in range(profiles):
            external_id = f"demo-{n + 1:04d}"
            if _create_demo_profile(session, ws.id, external_id, DEMO_NAMES[n % len(DEMO_NAMES)], n + 1, rng):
                created += 1
                if send_welcome:
                    _queue_welcome(runtime, session, ws.id, external_id)
                    queued += 1
            else:
                skipped.append(f"profile {external_id}")
            progress()
    return DemoSeeded(profiles_created=created, messages_queued=queued, skipped=skipped)


def _create_demo_profile(
    session: Session, workspace_id: str, external_id: str, name: str, number: int, rng: random.Random
) -> bool:
    """Create one demo profile; False, touching nothing, when the external id is taken."""
    from ccm.profiles.models import Profile
    from ccm.profiles.schemas import ProfileIn
    from ccm.profiles.service import upsert_profile

    choices = (
        rng.choice(["free", "pro"]),
        rng.choice(["Europe/Paris", "America/New_York", "Asia/Tokyo"]),
        rng.choice(["en", "es"]),
    )  # drawn either way, so a profile's data does not depend on the others
    if (
        session.scalar(
            select(Profile.id).where(Profile.workspace_id == workspace_id, Profile.external_id == external_id)
        )
        is not None
    ):
        return False
    plan, timezone, locale = choices
    upsert_profile(
        session=session,
        workspace_id=workspace_id,
        external_id=external_id,
        data=ProfileIn(
            email=f"{name.lower()}.{number}@example.com",
            attributes={"first_name": name, "plan": plan},
            timezone=timezone,
            locale=locale,
            channels=["email"],
        ),
    )
    return True


def _queue_welcome(runtime: Runtime, session: Session, workspace_id: str, external_id: str) -> None:
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message

    send_message(
        session=session,
        runtime=runtime,
        workspace_id=workspace_id,
        idempotency_key=f"demo-welcome-{external_id}",
        request=SendIn.model_validate({"to": {"external_id": external_id}, "template": "welcome"}),
    )
