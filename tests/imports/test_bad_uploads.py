"""A file that cannot be imported is refused whole, naming the field, and nothing is written."""

from __future__ import annotations

import pytest

from ccm.imports.models import ImportChunk, ImportJob
from ccm.jobs import PendingJob
from tests.imports.conftest import count, run, upload


def refused(api, runtime, content, **form):
    response = upload(api, content, **form)
    assert count(runtime, ImportJob) == count(runtime, ImportChunk) == count(runtime, PendingJob) == 0
    return response.status_code, response.json["error"]["details"]["field"], response.json["error"]["message"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"id,email\n", "no rows under the header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        (b"id,Email,EMAIL\nu1,a@example.com,b@example.com\n", "names the column 'EMAIL' twice"),
        (b"ann@example.com,Ann\nbob@example.com,Bob\n", "no header row"),
        (b'id,email\nu1,"never closed\n', None),
    ],
)
def test_an_unreadable_file_is_a_422_naming_the_file(api, runtime, content, says):
    status, field, message = refused(api, runtime, content)

    assert (status, field) == (422, "file")
    assert says is None or says in message


def test_a_file_with_no_identifying_column_is_refused(api, runtime):
    assert refused(api, runtime, "first name,city\nAnn,Lyon\n")[:2] == (422, "mapping")


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"Email": "emails"}, "mapping.Email"),
        ({"Email": "consent.fax"}, "mapping.Email"),
        ({"Email": "attributes.has space"}, "mapping.Email"),
        ({"Nope": "email"}, "mapping.Nope"),
        ({"id": "email"}, "mapping.id"),
        ({"Email": 5}, "mapping.Email"),
        ("[1, 2]", "mapping"),
        ("{not json", "mapping"),
    ],
)
def test_a_mapping_that_does_not_fit_is_a_422_naming_it(api, runtime, mapping, field):
    status, named, _ = refused(api, runtime, "id,Email\nu1,a@example.com\n", mapping=mapping)

    assert (status, named) == (422, field)


@pytest.mark.settings(import_max_bytes=100)
def test_a_file_over_the_limit_is_a_413(api, runtime):
    status, field, message = refused(api, runtime, "id,email\n" + "u1,a@example.com\n" * 20)

    assert (status, field) == (413, "file") and "CCM_IMPORT_MAX_BYTES" in message


def test_a_form_without_a_file_is_a_422(api, runtime):
    response = api.post("/v1/imports", data={"mapping": "{}"}, content_type="multipart/form-data", json=None)

    assert response.status_code == 422 and response.json["error"]["details"]["field"] == "file"
    assert count(runtime, ImportJob) == 0


def test_a_json_body_is_refused_naming_the_body(api, runtime):
    response = api.post("/v1/imports", json={"file": "id\n1\n"})

    assert response.status_code == 422 and response.json["error"]["details"]["field"] == "body"


def test_a_bad_consent_source_is_a_422(api, runtime):
    status, field, _ = refused(api, runtime, "id\nu1\n", consent_source="x" * 201)

    assert (status, field) == (422, "consent_source")


def test_pausing_a_finished_import_is_a_409(api, runtime):
    created = upload(api, "id\nu1\n").json["id"]
    run(runtime, created)

    response = api.post(f"/v1/imports/{created}/pause")

    assert response.status_code == 409 and response.json["error"]["details"]["field"] == "status"


@pytest.mark.settings(max_request_bytes=1000)
def test_an_upload_may_be_larger_than_other_requests_up_to_the_import_limit(api, runtime):
    content = "id,email\n" + "".join(f"u{i},p{i}@example.com\n" for i in range(300))

    response = upload(api, content)

    assert len(content) > 1000 and response.status_code == 202, response.json
    assert response.json["total_rows"] == 300
