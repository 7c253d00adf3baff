"""Getting a fresh installation going: the embedded default's database, the default workspace and
its first API key, and demo data."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

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
    from ccm.auth.service import authenticate, create_api_key
    from ccm.workspaces.service import get_or_create_workspace

    if not runtime.settings.embedded:
        return None
    path = runtime.settings.data_dir / "default-api-key"
    with runtime.db.unit_of_work() as session:
        if path.exists() and authenticate(session=session, token=path.read_text().strip()):
            return path.read_text().strip()
        ws, _ = get_or_create_workspace(session=session, name=workspace)
        _, token = create_api_key(session=session, workspace_id=ws.id, name="default (ccm serve)")
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


DEMO_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Dennis", "Radia"]


def seed_demo(runtime: Runtime, *, workspace: str, profiles: int, progress: Callable[[], None]) -> int:
    """Import the starter templates, create demo profiles and queue a welcome message to each."""
    from ccm.message_templates.importer import import_folder
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message
    from ccm.profiles.schemas import ProfileIn
    from ccm.profiles.service import upsert_profile
    from ccm.workspaces.service import get_or_create_workspace

    rng = random.Random(7)
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name=workspace)
        import_folder(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, root=starter_templates())
        for n in range(profiles):
            name = DEMO_NAMES[n % len(DEMO_NAMES)]
            external_id = f"demo-{n + 1:04d}"
            upsert_profile(session=session, workspace_id=ws.id, external_id=external_id, data=ProfileIn(
                email=f"{name.lower()}.{n + 1}@example.com",
                attributes={"first_name": name, "plan": rng.choice(["free", "pro"])},
                timezone=rng.choice(["Europe/Paris", "America/New_York", "Asia/Tokyo"]),
                locale=rng.choice(["en", "es"]), channels=["email"]))
            send_message(session=session, runtime=runtime, workspace_id=ws.id,
                         idempotency_key=f"demo-welcome-{external_id}",
                         request=SendIn.model_validate({"to": {"external_id": external_id}, "template": "welcome"}))
            progress()
    return profiles
