"""Importing profiles through /v1/imports: detection, mapping, idempotency, report."""

from __future__ import annotations

import codecs
import csv
import io

import pytest

from ccm.consent.models import ConsentRecord
from ccm.imports.models import ImportRowError
from ccm.profiles.models import Profile
from tests.imports.conftest import consent_records, count, imported, profiles, run, upload

PEOPLE = (
    "External ID,Email,First Name,Plan,Time Zone\n"
    "u1,ann@example.com,Ann,pro,Europe/Paris\n"
    'u2,bob@example.com,"Bob, Jr.",free,America/New_York\n'
)


def test_imports_rows_as_profiles_with_auto_mapped_columns(api, runtime, workspace):
    result = imported(api, runtime, PEOPLE)

    assert result["status"] == "completed"
    assert result["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "invalid": 0, "duplicate": 0}
    assert result["processed_rows"] == result["total_rows"] == 2 and result["percent"] == 100.0
    assert result["mapping"] == {
        "External ID": "external_id",
        "Email": "email",
        "First Name": "attributes.first_name",
        "Plan": "attributes.plan",
        "Time Zone": "timezone",
    }
    found = profiles(runtime, workspace[0])
    assert found["u2"].email == "bob@example.com"
    assert found["u2"].attributes == {"first_name": "Bob, Jr.", "plan": "free"}
    assert found["u1"].timezone == "Europe/Paris"


def test_upload_answers_the_detected_columns_and_a_preview(api):
    response = upload(api, PEOPLE)

    assert response.status_code == 202
    body = response.json
    assert body["status"] == "pending" and body["encoding"] == "utf-8" and body["delimiter"] == ","
    assert body["columns"][2] == {"header": "First Name", "field": "attributes.first_name"}
    assert body["preview"][1]["First Name"] == "Bob, Jr."
    assert body["id"].startswith("imp_")


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (codecs.BOM_UTF8 + PEOPLE.replace("Ann", "Anaïs").encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF16_LE + PEOPLE.replace("Ann", "Anaïs").encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + PEOPLE.replace("Ann", "Anaïs").encode("utf-16-be"), "utf-16-be"),
        (PEOPLE.replace("Ann", "Anaïs").encode("utf-16-le"), "utf-16-le"),  # no mark: told by its NUL bytes
        (PEOPLE.replace("Ann", "Anaïs").replace("pro", "pro €").encode("cp1252"), "windows-1252"),
        (PEOPLE.replace("Ann", "Anaïs").replace("pro", "pro \x81").encode("latin-1"), "iso-8859-1"),
    ],
)
def test_reads_byte_order_marks_and_windows_encodings(api, runtime, workspace, encoded, encoding):
    result = imported(api, runtime, encoded)

    assert result["encoding"] == encoding
    assert result["columns"][0]["header"] == "External ID"  # no BOM left in the first header
    assert profiles(runtime, workspace[0])["u1"].attributes["first_name"] == "Anaïs"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_detects_the_delimiter(api, runtime, workspace, delimiter):
    rows = [["id", "email", "city"], ["u1", "ann@example.com", "Lyon, France"], ["u2", "bob@example.com", "Köln"]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)

    result = imported(api, runtime, buffer.getvalue())

    assert result["delimiter"] == delimiter
    assert profiles(runtime, workspace[0])["u1"].attributes == {"city": "Lyon, France"}


def test_quoted_fields_may_hold_line_breaks(api, runtime, workspace):
    result = imported(api, runtime, 'id,email,note\nu1,ann@example.com,"line one\nline two"\nu2,bob@example.com,x\n')

    assert result["counts"]["created"] == 2
    assert profiles(runtime, workspace[0])["u1"].attributes["note"] == "line one\nline two"


def test_an_explicit_mapping_overrides_the_automatic_one(api, runtime, workspace):
    content = "Customer,Mail,Tier,Ignore me\nc9,CAROL@Example.com,gold,zzz\n"
    mapping = {"Customer": "external_id", "Mail": "email", "Tier": "attributes.plan", "Ignore me": "skip"}

    result = imported(api, runtime, content, mapping=mapping)

    carol = profiles(runtime, workspace[0])["c9"]
    assert carol.email == "CAROL@example.com"
    assert carol.attributes == {"plan": "gold"}
    assert result["columns"][3] == {"header": "Ignore me", "field": "skip"}


def test_importing_the_same_file_twice_changes_nothing_the_second_time(api, runtime, workspace):
    content = PEOPLE + "u3,cy@example.com,Cy,pro,Asia/Tokyo\n"
    imported(api, runtime, content, mapping={"Plan": "attributes.plan"})
    before = {key: p.updated_at for key, p in profiles(runtime, workspace[0]).items()}

    again = imported(api, runtime, content)

    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 3, "invalid": 0, "duplicate": 0}
    assert count(runtime, Profile) == 3
    assert {key: p.updated_at for key, p in profiles(runtime, workspace[0]).items()} == before


def test_a_changed_row_updates_its_profile_and_keeps_what_the_file_does_not_say(api, runtime, workspace):
    imported(api, runtime, PEOPLE)
    result = imported(api, runtime, "id,plan,phone\nu1,enterprise,+33 6 12 34 56 78\n")

    assert result["counts"]["updated"] == 1
    ann = profiles(runtime, workspace[0])["u1"]
    assert ann.attributes == {"first_name": "Ann", "plan": "enterprise"}
    assert ann.email == "ann@example.com" and ann.phone == "+33612345678"


def test_rows_without_an_external_id_are_matched_by_email(api, runtime, workspace):
    imported(api, runtime, PEOPLE)
    result = imported(api, runtime, "email,city\nANN@example.com,Paris\nnew@example.com,Rome\n")

    assert result["counts"] == {"created": 1, "updated": 1, "unchanged": 0, "invalid": 0, "duplicate": 0}
    assert profiles(runtime, workspace[0])["u1"].attributes["city"] == "Paris"


def test_duplicates_inside_the_file_are_reported_with_the_row_they_repeat(api, runtime, workspace):
    content = "id,email\nu1,a@example.com\nu2,b@example.com\nu1,c@example.com\nu3,B@example.com\n"
    result = imported(api, runtime, content)

    assert result["counts"]["created"] == 2 and result["counts"]["duplicate"] == 2
    errors = api.get(f"/v1/imports/{result['id']}/errors").json["items"]
    assert [(e["row"], e["reason"]) for e in errors] == [(4, "duplicate of row 2"), (5, "duplicate of row 3")]
    assert profiles(runtime, workspace[0])["u1"].email == "a@example.com"


def test_invalid_rows_are_skipped_and_reported_per_value(api, runtime, workspace):
    content = (
        "id,email,phone,timezone,locale\n"
        "u1,ann@example.com,,Europe/Paris,fr\n"
        "u2,not-an-email,+1 555,Mars/Olympus,\n"
        "u3,cy@example.com,,,english please\n"
    )
    result = imported(api, runtime, content)

    assert result["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "invalid": 2, "duplicate": 0}
    assert set(profiles(runtime, workspace[0])) == {"u1"}
    errors = api.get(f"/v1/imports/{result['id']}/errors").json["items"]
    assert [(e["row"], e["column"]) for e in errors] == [(3, "email"), (3, "phone"), (3, "timezone"), (4, "locale")]
    assert "unknown IANA time zone" in errors[2]["reason"] and errors[2]["value"] == "Mars/Olympus"


def test_phone_numbers_are_read_in_the_workspace_region(api, runtime, workspace):
    imported(api, runtime, "id,phone\nu1,(415) 555-0132\n")

    assert profiles(runtime, workspace[0])["u1"].phone == "+14155550132"


def test_the_report_downloads_as_formula_safe_csv(api, runtime):
    content = 'id,email,notes\nu1,=HYPERLINK("http://evil"),x\nu2,@SUM(A1),y\n'
    result = imported(api, runtime, content)

    response = api.get(f"/v1/imports/{result['id']}/report.csv")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert lines[0] == ["row", "column", "value", "reason"]
    assert [line[:3] for line in lines[1:]] == [
        ["2", "email", '\'=HYPERLINK("http://evil")'],
        ["3", "email", "'@SUM(A1)"],
    ]
    assert count(runtime, ImportRowError) == 2


def test_errors_page_through_the_report_in_row_order(api, runtime):
    content = "id,email\n" + "".join(f"u{i},bad{i}\n" for i in range(7))
    result = imported(api, runtime, content)

    first = api.get(f"/v1/imports/{result['id']}/errors?limit=4").json
    rest = api.get(f"/v1/imports/{result['id']}/errors?limit=4&cursor={first['next_cursor']}").json

    assert [e["row"] for e in first["items"] + rest["items"]] == list(range(2, 9))
    assert rest["next_cursor"] is None


def test_consent_columns_land_in_the_consent_history_with_their_source(api, runtime, workspace):
    content = "id,email,Email Consent,News\nu1,ann@example.com,yes,opt_out\nu2,bob@example.com,unsubscribed,1\n"
    mapping = {"News": "consent.email:newsletter"}

    result = imported(api, runtime, content, mapping=mapping, consent_source="spring fair signup sheet")

    records = {(r.profile_id, r.topic): r for r in consent_records(runtime)}
    ann = profiles(runtime, workspace[0])["u1"]
    assert records[(ann.id, "*")].status == "granted" and records[(ann.id, "newsletter")].status == "revoked"
    record = records[(ann.id, "*")]
    assert record.source == "import" and record.actor == result["id"]
    assert record.proof == {
        "import_id": result["id"],
        "file": "people.csv",
        "row": 2,
        "column": "Email Consent",
        "consent_source": "spring fair signup sheet",
    }
    history = api.get("/v1/profiles/u1/consent").json
    assert {(c["topic"], c["status"], c["source"]) for c in history["current"]} == {
        ("*", "granted", "import"),
        ("newsletter", "revoked", "import"),
    }


def test_an_unchanged_consent_is_not_recorded_again(api, runtime):
    content = "id,email,sms consent\nu1,ann@example.com,true\n"
    imported(api, runtime, content)

    again = imported(api, runtime, content)

    assert again["counts"]["unchanged"] == 1
    assert count(runtime, ConsentRecord) == 1


def test_a_consent_value_that_is_not_yes_or_no_is_a_row_error(api, runtime):
    result = imported(api, runtime, "id,email consent\nu1,maybe\n")

    assert result["counts"]["invalid"] == 1
    (error,) = api.get(f"/v1/imports/{result['id']}/errors").json["items"]
    assert error["column"] == "email consent" and error["value"] == "maybe" and "yes/no" in error["reason"]


def test_a_raw_text_csv_body_is_accepted_with_its_filename(api, runtime, workspace):
    response = api.post(
        "/v1/imports?filename=crm.csv&mapping=%7B%22Plan%22%3A%22skip%22%7D",
        data=PEOPLE,
        content_type="text/csv",
        json=None,
    )

    assert response.status_code == 202, response.json
    assert response.json["filename"] == "crm.csv" and response.json["mapping"]["Plan"] == "skip"
    run(runtime, response.json["id"])
    assert "plan" not in profiles(runtime, workspace[0])["u1"].attributes


def test_imports_are_listed_newest_first_and_scoped_to_the_workspace(api, runtime):
    first = upload(api, PEOPLE).json["id"]
    second = upload(api, PEOPLE).json["id"]

    listed = api.get("/v1/imports").json["items"]

    assert [item["id"] for item in listed] == [second, first]
    assert api.get("/v1/imports/imp_00000000000000000000000000").status_code == 404
