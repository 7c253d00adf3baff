"""The privacy export's download name: RFC 6266, an ASCII ``filename`` and the exact UTF-8
``filename*``, so that any external id — not only Latin-1 ones — can be written by a WSGI server."""

from __future__ import annotations

import urllib.parse

import pytest


@pytest.mark.parametrize(
    ("external_id", "fallback"),
    [
        ("élève-✓", "eleve-"),
        ("张伟", "profile"),
        ('a"b\\c', "a_b_c"),
        ("ada", "ada"),
    ],
)
def test_the_export_names_the_file_for_every_client(api, external_id, fallback):
    path = f"/v1/profiles/{urllib.parse.quote(external_id, safe='')}"
    assert api.put(path, json={"email": "p@example.com"}).status_code == 201
    answer = api.get(f"{path}/export")
    assert answer.status_code == 200
    disposition = answer.headers["Content-Disposition"]
    disposition.encode("ascii")  # what every server and proxy can carry
    quoted = urllib.parse.quote(f"{external_id}.json", safe="")
    assert disposition == f"attachment; filename=\"{fallback}.json\"; filename*=UTF-8''{quoted}"
    assert answer.json["profile"]["external_id"] == external_id
