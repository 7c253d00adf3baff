"""``ccm import FILE.csv``: the same import, run in the command's own process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ccm.cli import main
from ccm.imports.models import ImportJob
from ccm.jobs import PendingJob
from tests.imports.conftest import count, profiles


@pytest.fixture
def cli(runtime, settings):
    env = {
        "CCM_DATABASE_URL": settings.database_url,
        "CCM_DATA_DIR": str(settings.data_dir),
        "CCM_SECRET_KEY": "test-secret",
        "CCM_REDIS_NAMESPACE": settings.redis_namespace,
        "CCM_IMPORT_CHUNK_ROWS": "7",
    }
    if settings.redis_url:
        env["CCM_REDIS_URL"] = settings.redis_url

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def test_imports_a_file_and_prints_one_summary_line(cli, runtime, tmp_path):
    rows = [f"u{i},p{i}@example.com,Ann" for i in range(40)]
    rows += ["u0,again@example.com,Ann", "u41,not-an-email,Bo", "u42,=cmd(),Cy"]
    path = tmp_path / "people.csv"
    path.write_text("id,email,First Name\n" + "\n".join(rows) + "\n")

    result = cli("import", str(path), "--workspace", "shop", "--map", "First Name=attributes.given_name")

    assert result.exit_code == 0, result.output
    (job_id,) = [job.id for job in _jobs(runtime)]
    assert result.stdout == (
        "imported 43 rows: 40 created, 0 updated, 0 unchanged, 2 invalid, 1 duplicates "
        f"(report: ccm imports report {job_id} or GET /v1/imports/{job_id}/report.csv)\n"
    )
    assert "importing" in result.stderr  # the progress bar
    workspace_id = _jobs(runtime)[0].workspace_id
    assert profiles(runtime, workspace_id)["u3"].attributes == {"given_name": "Ann"}
    assert count(runtime, PendingJob) == 0  # its job row is finished with it

    report = cli("imports", "report", job_id)
    assert report.stdout.splitlines() == [
        "row,column,value,reason",
        "42,,,duplicate of row 2",
        "43,email,not-an-email,not a valid email address: An email address must have an @-sign.",
        "44,email,'=cmd(),not a valid email address: An email address must have an @-sign.",
    ]


def test_the_same_file_again_is_all_unchanged(cli, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("id,email\nu1,a@example.com\nu2,b@example.com\n")
    cli("import", str(path))

    again = cli("import", str(path))

    assert again.stdout == "imported 2 rows: 0 created, 0 updated, 2 unchanged, 0 invalid, 0 duplicates\n"


def test_a_refused_file_exits_non_zero_and_imports_nothing(cli, runtime, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("id,email\nu1,a@example.com\n")

    result = cli("import", str(path), "--map", "email=nope")

    assert result.exit_code == 1
    assert "nothing imported: mapping.email: unknown field 'nope'" in result.stderr
    assert count(runtime, ImportJob) == 0


def _jobs(runtime):
    with runtime.db.read_only() as session:
        return list(session.query(ImportJob))
