"""``Idempotency-Key`` on ``POST /v1/imports``: a retried upload is the same import, not a second one."""

from __future__ import annotations

from ccm.imports.models import ImportJob
from tests.imports.conftest import count, upload

PEOPLE = "External ID,Email\nu1,ann@example.com\nu2,bob@example.com\n"


def test_a_retried_upload_with_the_same_key_is_the_same_import(api, runtime):
    first = upload(api, PEOPLE, key="upload-1")
    again = upload(api, PEOPLE, key="upload-1")  # a new multipart boundary: the same file all the same

    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(runtime, ImportJob) == 1


def test_the_same_key_with_another_file_is_refused(api, runtime):
    assert upload(api, PEOPLE, key="upload-1").status_code == 202

    other = upload(api, PEOPLE.replace("ann@", "anne@"), key="upload-1")

    assert other.status_code == 422
    assert "Idempotency-Key" in other.json["error"]["message"]
    assert count(runtime, ImportJob) == 1


def test_the_same_key_with_other_options_is_refused(api, runtime):
    assert upload(api, PEOPLE, key="upload-1").status_code == 202

    other = upload(api, PEOPLE, key="upload-1", consent_source="newsletter form")

    assert other.status_code == 422
    assert count(runtime, ImportJob) == 1


def test_the_same_key_on_a_raw_text_csv_body_replays_too(api, runtime):
    def send():
        return api.post(
            "/v1/imports?filename=people.csv",
            data=PEOPLE,
            content_type="text/csv",
            json=None,
            headers={"Idempotency-Key": "raw-1"},
        )

    first, again = send(), send()

    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"]
    assert count(runtime, ImportJob) == 1


def test_without_a_key_two_uploads_are_two_imports(api, runtime):
    assert upload(api, PEOPLE).json["id"] != upload(api, PEOPLE).json["id"]
    assert count(runtime, ImportJob) == 2
