"""The imports screens through the Flask test client: choosing a file shows how it reads and its
columns, starting it runs the same import as the API, the progress panel, pause/resume/cancel,
the row report, bad files and mappings named at their control, and what each role may do."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from ccm.audit.models import AuditEntry
from ccm.imports.models import ImportJob
from ccm.profiles.models import Profile
from tests.imports.conftest import run
from tests.web.conftest import csrf_of

WRITERS = ("admin", "marketer")
READERS = ("viewer", "agent")
PEOPLE = "Email;First Name;Plan\nana@example.com;Ana;pro\nnot-an-email;Bob;free\nana@example.com;Ana again;pro\n"


def form(client, content: str | bytes = PEOPLE, **fields):
    data = content.encode("windows-1252") if isinstance(content, str) else content
    token = csrf_of(client.get("/imports/").text)
    return {"csrf_token": token, "file": (io.BytesIO(data), "people.csv"), **fields}


def jobs(runtime) -> list[ImportJob]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(ImportJob)))


def profiles(runtime) -> list[Profile]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(Profile)))


@pytest.mark.parametrize("role", WRITERS + READERS)
def test_every_role_sees_imports_in_the_menu(web_client, role):
    client = web_client(role)
    assert 'href="/imports/"' in client.get("/").text
    listing = client.get("/imports/")
    assert listing.status_code == 200
    assert ('<label for="file">CSV file of profiles</label>' in listing.text) == (role in WRITERS)


def test_choosing_a_file_shows_how_it_reads_and_maps_its_columns(web_client, runtime):
    client = web_client("marketer")
    answer = client.post("/imports/inspect", data=form(client, PEOPLE.replace("Bob", "Bérénice")))
    assert answer.status_code == 200
    assert '<span data-detected="encoding">windows-1252</span>' in answer.text
    assert '<span data-detected="delimiter">semicolon</span>' in answer.text
    assert 'name="map:Email" value="email"' in answer.text
    assert 'name="map:First Name" value="attributes.first_name"' in answer.text
    assert "<td>Bérénice</td>" in answer.text  # the preview of the first rows
    assert jobs(runtime) == []  # looking stores nothing


def test_a_new_file_is_read_afresh_not_with_the_options_of_the_last(web_client, runtime):
    client = web_client("marketer")
    stale = {"encoding": "utf-16-le", "delimiter": ",", "map:Plan": "skip"}
    answer = client.post("/imports/inspect", data=form(client, "id,plan\n1,pro\n", fresh="1", **stale))
    assert answer.status_code == 200, answer.text
    assert '<span data-detected="delimiter">comma</span>' in answer.text and 'id="err-mapping"></p>' in answer.text
    kept = client.post("/imports/inspect", data=form(client, "id;plan\n1;pro\n", delimiter=",", encoding="utf-8"))
    assert '<span data-detected="delimiter">comma</span>' in kept.text  # as chosen: one column "id;plan"
    started = client.post("/imports/", data=form(client, "id,plan\n1,pro\n", **{"map:Plan": "skip"}))
    assert started.status_code == 422
    assert re.search(r'id="err-mapping">mapping.Plan: the file has no column', started.text)


@pytest.mark.parametrize(
    ("content", "fields", "control", "slot"),
    [
        (b"", {}, "file", "err-file"),
        (b"\x00\x01\x02binary", {}, "file", "err-file"),
        ("Name;Plan\nAna;pro\n", {}, "mapping", "err-mapping"),
        (PEOPLE, {"map:Plan": "plan"}, "map:Plan", "err-map-2"),
        (PEOPLE, {"map:First Name": "email"}, "map:First Name", "err-map-1"),
    ],
)
def test_a_bad_file_or_mapping_is_refused_next_to_its_control(web_client, runtime, content, fields, control, slot):
    client = web_client("marketer")
    answer = client.post("/imports/", data=form(client, content, **fields), headers={"HX-Request": "true"})
    assert answer.status_code in (413, 422)
    assert re.search(rf'id="{slot}">[^<]+<', answer.text), answer.text
    full = client.post("/imports/", data=form(client, content, **fields))
    assert full.status_code == answer.status_code and f'id="{slot}">' in full.text
    assert jobs(runtime) == [] and profiles(runtime) == []


@pytest.mark.settings(max_request_bytes=100, import_max_bytes=100_000)
def test_a_file_larger_than_other_requests_may_be_is_taken_up_to_the_import_limit(web_client, runtime):
    client = web_client("marketer")
    answer = client.post("/imports/", data=form(client, PEOPLE * 20))
    assert answer.status_code == 302 and len(jobs(runtime)) == 1


@pytest.mark.settings(import_max_bytes=50)
def test_a_file_over_the_limit_is_refused_naming_the_file(web_client, runtime):
    client = web_client("marketer")
    answer = client.post("/imports/", data=form(client, PEOPLE * 3), headers={"HX-Request": "true"})
    assert answer.status_code == 413 and "CCM_IMPORT_MAX_BYTES" in answer.text
    assert jobs(runtime) == []


@pytest.mark.parametrize("role", WRITERS)
def test_starting_runs_the_import_and_the_panel_shows_its_summary(web_client, runtime, role):
    client = web_client(role)
    started = client.post("/imports/", data=form(client, consent_source="web form"), headers={"HX-Request": "true"})
    assert started.status_code == 204
    (job,) = jobs(runtime)
    assert started.headers["HX-Redirect"] == f"/imports/{job.id}"
    waiting = client.get(f"/imports/{job.id}/progress")
    assert 'hx-trigger="every 1s"' in waiting.text and 'value="0.0"' in waiting.text
    assert run(runtime, job.id) == "completed"
    done = client.get(f"/imports/{job.id}/progress")
    assert '<progress id="import-progress" max="100" value="100.0">' in done.text
    assert 'data-percent="100.0">100.0 %' in done.text and "every 1s" not in done.text
    for name, value in {"created": 1, "updated": 0, "invalid": 1, "duplicate": 1}.items():
        assert f'data-count="{name}">{value}<' in done.text
    assert [p.email for p in profiles(runtime)] == ["ana@example.com"]


def test_the_row_report_is_the_apis_csv_and_is_audited(web_client, runtime, api):
    client = web_client("marketer")
    client.post("/imports/", data=form(client))
    (job,) = jobs(runtime)
    run(runtime, job.id)
    report = client.get(f"/imports/{job.id}/report.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert report.headers["Content-Disposition"] == f'attachment; filename="{job.id}-report.csv"'
    assert report.data == api.get(f"/v1/imports/{job.id}/report.csv").data
    assert report.text.splitlines()[0] == "row,column,value,reason"
    assert len(report.text.splitlines()) == 3  # the invalid row and the duplicate
    with runtime.db.read_only() as session:
        actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "export.import_report")).all()
    assert "user:marketer@example.com" in actors


def test_pause_resume_and_cancel_change_the_import(web_client, runtime):
    client = web_client("marketer")
    client.post("/imports/", data=form(client))
    (job,) = jobs(runtime)
    token = csrf_of(client.get(f"/imports/{job.id}").text)
    htmx = {"HX-Request": "true"}
    paused = client.post(f"/imports/{job.id}/pause", data={"csrf_token": token}, headers=htmx)
    assert 'data-status="paused"' in paused.text and ">Resume</button>" in paused.text
    assert "every 1s" not in paused.text
    resumed = client.post(f"/imports/{job.id}/resume", data={"csrf_token": token}, headers=htmx)
    assert 'data-status="pending"' in resumed.text and "every 1s" in resumed.text
    assert client.post(f"/imports/{job.id}/cancel", data={"csrf_token": token}).status_code == 302
    again = client.post(f"/imports/{job.id}/resume", data={"csrf_token": token}, headers=htmx)
    assert again.status_code == 409 and "the import is cancelled: it cannot be resumed" in again.text
    assert jobs(runtime)[0].status == "cancelled"


@pytest.mark.parametrize("role", READERS)
def test_readers_see_progress_but_a_forced_write_is_refused(web_client, runtime, role):
    writer = web_client("marketer")
    writer.post("/imports/", data=form(writer))
    (job,) = jobs(runtime)
    client = web_client(role)
    shown = client.get(f"/imports/{job.id}")
    assert shown.status_code == 200 and "Pause</button>" not in shown.text
    token = csrf_of(shown.text)
    assert client.post("/imports/", data={**form(writer), "csrf_token": token}).status_code == 403
    assert client.post("/imports/inspect", data={**form(writer), "csrf_token": token}).status_code == 403
    assert client.post(f"/imports/{job.id}/cancel", data={"csrf_token": token}).status_code == 403
    assert client.get(f"/imports/{job.id}/report.csv").status_code == 403
    (unchanged,) = jobs(runtime)
    assert unchanged.status == "pending"


def test_an_upload_without_its_token_is_refused(web_client, runtime):
    client = web_client("admin")
    data = form(client)
    del data["csrf_token"]
    assert client.post("/imports/", data=data).status_code == 403
    assert jobs(runtime) == []


def test_an_unknown_import_is_404(web_client):
    assert web_client("viewer").get("/imports/imp_nothing").status_code == 404


def test_a_file_name_no_column_can_store_is_refused(web_client, runtime):
    client = web_client("marketer")
    data = {**form(client), "file": (io.BytesIO(PEOPLE.encode()), "people\x00.csv")}
    answer = client.post("/imports/", data=data)
    assert answer.status_code == 422 and "file.filename: NUL characters" in answer.text
    assert client.get("/imports/imp\x00x").status_code == 422
    assert jobs(runtime) == []
