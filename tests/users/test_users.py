"""Users and sessions of the web app, and ``ccm users``: through the service and the real CLI."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ccm.audit.models import AuditEntry
from ccm.bootstrap import FIRST_ADMIN_EMAIL, first_admin
from ccm.cli import main
from ccm.errors import Conflict, ValidationFailed
from ccm.users.models import User, UserSession
from ccm.users.service import (
    change_password,
    change_role,
    check_password,
    create_user,
    digest,
    revoke_session,
    session_user,
    set_disabled,
    start_session,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def uow(runtime):
    return runtime.db.unit_of_work


def _user(uow, workspace, email="Ann@Example.com", role="agent", password=PASSWORD):
    with uow() as session:
        return create_user(session=session, workspace_id=workspace[0], email=email, role=role, password=password)


def test_the_password_is_checked_and_stored_only_as_an_argon2_hash(uow, workspace):
    user, one_time = _user(uow, workspace)
    assert one_time is None and user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    with uow() as session:
        assert check_password(session=session, email="ann@EXAMPLE.com", password=PASSWORD).id == user.id
        assert check_password(session=session, email="ann@example.com", password=PASSWORD + "x") is None
        assert check_password(session=session, email="nobody@example.com", password=PASSWORD) is None


def test_email_is_unique_whatever_the_case_and_bad_input_names_the_field(uow, workspace):
    _user(uow, workspace)
    with pytest.raises(Conflict) as exc:
        _user(uow, workspace, email="ANN@example.com")
    assert exc.value.details["field"] == "email"
    for kwargs, field in (
        ({"email": "not-an-address"}, "email"),
        ({"role": "standard"}, "role"),
        ({"email": "bob@example.com", "password": "short"}, "password"),
    ):
        with pytest.raises(ValidationFailed) as bad:
            _user(uow, workspace, **kwargs)
        assert bad.value.details["field"] == field
    with uow() as session:
        assert session.scalars(select(User.email)).all() == ["Ann@example.com"]


def test_a_generated_password_must_be_changed(uow, workspace):
    with uow() as session:
        user, one_time = create_user(session=session, workspace_id=workspace[0], email="c@example.com", role="viewer")
    assert one_time and user.must_change_password
    with uow() as session:
        assert check_password(session=session, email="c@example.com", password=one_time) is not None


def test_a_session_lives_until_revoked_or_expired_and_only_its_digest_is_kept(uow, workspace):
    user, _ = _user(uow, workspace)
    with uow() as session:
        token = start_session(session=session, user_id=user.id, hours=1)
    with uow() as session:
        stored = session.scalars(select(UserSession)).one()
        assert stored.digest == digest(token) and token not in stored.digest
        seen = session_user(session=session, token=token)
        assert seen is not None and (seen.email, seen.role) == ("Ann@example.com", "agent")
        assert session_user(session=session, token=token + "x") is None
        revoke_session(session=session, session_id=seen.session_id)
    with uow() as session:
        assert session_user(session=session, token=token) is None
        expired = start_session(session=session, user_id=user.id, hours=1)
        session.execute(
            UserSession.__table__.update()
            .where(UserSession.digest == digest(expired))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    with uow() as session:
        assert session_user(session=session, token=expired) is None


def test_changing_the_password_revokes_the_other_sessions(uow, workspace):
    user, _ = _user(uow, workspace)
    with uow() as session:
        here = start_session(session=session, user_id=user.id, hours=1)
        elsewhere = start_session(session=session, user_id=user.id, hours=1)
    with uow() as session:
        current = session_user(session=session, token=here)
        with pytest.raises(ValidationFailed) as wrong:
            change_password(session=session, user_id=user.id, current="nope", new="x" * 12, keep_session=None)
        assert wrong.value.details["field"] == "current_password"
        change_password(
            session=session,
            user_id=user.id,
            current=PASSWORD,
            new="a new long password",
            keep_session=current.session_id,
        )
    with uow() as session:
        assert session_user(session=session, token=here) is not None
        assert session_user(session=session, token=elsewhere) is None
        assert check_password(session=session, email="ann@example.com", password="a new long password")


def test_the_first_admin_is_made_once(runtime):
    made = first_admin(runtime, workspace="default")
    assert made is not None and made[0] == FIRST_ADMIN_EMAIL
    assert first_admin(runtime, workspace="default") is None
    with runtime.db.unit_of_work() as session:
        admin = check_password(session=session, email=FIRST_ADMIN_EMAIL, password=made[1])
        assert admin is not None and admin.role == "admin" and admin.must_change_password


@pytest.fixture
def cli(runtime, settings):
    env = {"CCM_DATABASE_URL": settings.database_url, "CCM_DATA_DIR": str(settings.data_dir), "CCM_SECRET_KEY": "t"}

    def run(*args: str, stdin: str | None = None):
        return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    return run


def test_ccm_users_create_prints_the_one_time_password_alone_on_the_last_line(cli, uow):
    result = cli("users", "create", "--workspace", "acme", "--email", "Dee@example.com", "--role", "marketer")
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1]
    assert " " not in password and len(password) >= 12
    with uow() as session:
        dee = check_password(session=session, email="dee@example.com", password=password)
        assert dee.role == "marketer"
    audited = [(action, actor.startswith("cli:")) for action, actor, _, _ in _audited(uow, dee.id)]
    assert audited == [("user.create", True)]
    listed = cli("users", "list", "--workspace", "acme")
    assert (
        "Dee@example.com" in listed.output and "marketer" in listed.output and "must change password" in listed.output
    )


def test_ccm_users_create_takes_a_password_on_stdin_and_refuses_a_duplicate(cli, uow):
    args = ("users", "create", "--email", "eve@example.com", "--role", "viewer", "--password-stdin")
    assert cli(*args, stdin="a password from stdin\n").exit_code == 0
    with uow() as session:
        eve = check_password(session=session, email="eve@example.com", password="a password from stdin")
        assert eve is not None and not eve.must_change_password
    again = cli(*args, stdin="a password from stdin\n")
    assert again.exit_code == 1 and "email" in again.output
    bad_role = cli("users", "create", "--email", "f@example.com", "--role", "standard")
    assert bad_role.exit_code == 2


def _audited(uow, user_id):
    with uow() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.target_type == "user", AuditEntry.target_id == user_id)
        ).all()
        return [(row.action, row.actor, row.before, row.after) for row in sorted(rows, key=lambda row: row.id)]


def test_creating_changing_the_role_of_and_disabling_a_user_are_audited(uow, workspace):
    admin, _ = _user(uow, workspace, email="boss@example.com", role="admin")
    boss = "user:boss@example.com"
    with uow() as session:
        user, _ = create_user(
            session=session, workspace_id=workspace[0], email="g@example.com", role="agent", actor=boss
        )
        token = start_session(session=session, user_id=user.id, hours=1)
    with uow() as session:
        change_role(session=session, user=session.get(User, user.id), role="marketer", actor=boss)
        set_disabled(session=session, user=session.get(User, user.id), disabled=True, actor=boss)
        set_disabled(session=session, user=session.get(User, user.id), disabled=True, actor=boss)
    with uow() as session:
        assert session_user(session=session, token=token) is None
        assert check_password(session=session, email="g@example.com", password="x" * 12) is None
    agent, marketer = {"email": "g@example.com", "role": "agent", "disabled": False}, {"role": "marketer"}
    assert _audited(uow, user.id) == [
        ("user.create", boss, None, agent),
        ("user.role", boss, agent, {**agent, **marketer}),
        ("user.disable", boss, {**agent, **marketer}, {**agent, **marketer, "disabled": True}),
    ]
    assert _audited(uow, admin.id)[0][:2] == ("user.create", "system")


def test_the_last_admin_can_be_neither_disabled_nor_demoted(uow, workspace):
    admin, _ = _user(uow, workspace, email="solo@example.com", role="admin")
    with uow() as session:
        for change, field in (
            (lambda: set_disabled(session=session, user=session.get(User, admin.id), disabled=True, actor="t"), "id"),
            (lambda: change_role(session=session, user=session.get(User, admin.id), role="viewer", actor="t"), "role"),
        ):
            with pytest.raises(Conflict) as refused:
                change()
            assert refused.value.details["field"] == field
    second, _ = _user(uow, workspace, email="second@example.com", role="admin")
    with uow() as session:
        change_role(session=session, user=session.get(User, admin.id), role="viewer", actor="t")
    with uow() as session:
        assert session.get(User, admin.id).role == "viewer"
        with pytest.raises(ValidationFailed):
            change_role(session=session, user=session.get(User, second.id), role="standard", actor="t")


def test_ccm_users_disable_ends_the_sessions_and_is_audited_as_the_operator(cli, uow, workspace):
    user, _ = _user(uow, workspace)
    with uow() as session:
        token = start_session(session=session, user_id=user.id, hours=1)
    disabled = cli("users", "disable", "--workspace", "acme", "--email", "ANN@example.com")
    assert disabled.exit_code == 0, disabled.output
    with uow() as session:
        assert session_user(session=session, token=token) is None
        assert check_password(session=session, email="ann@example.com", password=PASSWORD) is None
    assert "disabled" in cli("users", "list", "--workspace", "acme").output
    unknown = cli("users", "disable", "--workspace", "acme", "--email", "nobody@example.com")
    assert unknown.exit_code == 1 and "email" in unknown.output
    assert cli("users", "disable", "--workspace", "nope", "--email", "ann@example.com").exit_code == 1
    assert cli("users", "enable", "--workspace", "acme", "--email", "ann@example.com").exit_code == 0
    assert cli("users", "role", "--workspace", "acme", "--email", "ann@example.com", "--role", "viewer").exit_code == 0
    actions = [(action, actor.startswith("cli:")) for action, actor, _, _ in _audited(uow, user.id)]
    assert actions == [("user.create", False), ("user.disable", True), ("user.enable", True), ("user.role", True)]
    with uow() as session:
        assert check_password(session=session, email="ann@example.com", password=PASSWORD).role == "viewer"
