"""A write to a profile (or to rows that refer to it) and its erasure, racing on PostgreSQL:
the erasure waits for the write instead of deleting the row under it (which was a 500)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ccm.consent.schemas import ConsentIn
from ccm.consent.service import record_consent
from ccm.db import commit
from ccm.profiles.privacy import erase_profile
from ccm.profiles.schemas import ProfilePatch
from ccm.profiles.service import get_profile, patch_profile
from tests.support.factories import put_profile


def _patch(session: Session, workspace_id: str) -> Any:
    data = ProfilePatch.model_validate({"locale": "fr"})
    return patch_profile(session=session, workspace_id=workspace_id, external_id="u1", data=data)


def _consent(session: Session, workspace_id: str) -> Any:  # as POST /v1/profiles/{id}/consent does
    profile = get_profile(session=session, workspace_id=workspace_id, external_id="u1", lock="key_share")
    data = ConsentIn.model_validate({"channel": "email", "status": "granted"})
    return record_consent(session=session, workspace_id=workspace_id, profile_id=profile.id, data=data, actor="test")


@pytest.mark.parametrize("write", [_patch, _consent], ids=["patch", "consent"])
def test_an_erasure_racing_a_write_waits_for_it_instead_of_breaking_it(api, runtime, workspace, write):
    if runtime.db.is_sqlite:
        pytest.skip("row locks are PostgreSQL's; SQLite lets one writer in at a time")
    put_profile(api, "u1", email="ada@example.com")
    writing = runtime.db.sessionmaker()
    write(writing, workspace[0])
    erased = threading.Event()

    def erase() -> None:
        with runtime.db.unit_of_work() as session:
            erase_profile(session=session, workspace_id=workspace[0], external_id="u1", region=None)
        erased.set()

    eraser = threading.Thread(target=erase)
    eraser.start()
    try:
        assert not erased.wait(0.5), "the erasure went ahead under a write to the profile"
        writing.flush()  # unlocked: StaleDataError or a foreign-key violation, the row deleted under it
        commit(writing)
    finally:
        writing.close()
        eraser.join(10)
    assert erased.is_set()
    assert api.get("/v1/profiles/u1").status_code == 404
