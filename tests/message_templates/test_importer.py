"""Importing the file-based templates in templates/, and snapshots of every starter variant."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ccm.message_templates.importer import ImportFailed, import_folder

ROOT = Path(__file__).resolve().parents[2] / "templates"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
SAMPLE_DATA = {
    "welcome": {"first_name": "Ada"},
    "password-reset": {"first_name": "Ada", "reset_url": "https://example.com/reset?t=abc&u=1"},
    "order-shipped": {
        "first_name": "Ada",
        "order_number": "A-1001",
        "tracking_url": "https://example.com/t/1",
        "items": [{"name": "Kettle", "quantity": 1}, {"name": "Mug <large>", "quantity": 2}],
    },
    "newsletter": {
        "first_name": "Ada",
        "headline": "November news",
        "articles": [{"title": "Faster campaigns", "url": "https://example.com/a1", "summary": "Twice as fast."}],
    },
}


def run_import(runtime, workspace_id, root=ROOT):
    with runtime.db.unit_of_work() as session:
        return import_folder(session=session, sandbox=runtime.sandbox, workspace_id=workspace_id, root=root)


def test_import_publishes_every_starter_template_once(runtime, workspace, api):
    results = run_import(runtime, workspace[0])
    assert sorted((r.key, r.version, r.created) for r in results) == [
        ("newsletter", 1, True),
        ("order-shipped", 1, True),
        ("password-reset", 1, True),
        ("welcome", 1, True),
    ]
    again = run_import(runtime, workspace[0])
    assert {(r.version, r.created) for r in again} == {(1, False)}
    snippets = {s["name"] for s in api.get("/v1/snippets").json["items"]}
    assert snippets == {"layouts/base.html", "partials/footer.html", "partials/button.html"}


def test_a_bad_file_imports_nothing(runtime, workspace, api, tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(ROOT, root)
    (root / "messages" / "welcome" / "email.en.html").write_text("{% block content %}{{ x.__class__ }}{% endblock %}")
    with pytest.raises(ImportFailed, match="welcome"):
        run_import(runtime, workspace[0], root)
    assert api.get("/v1/templates").json["items"] == []
    assert api.get("/v1/snippets").json["items"] == []


def test_an_unknown_part_file_is_named(runtime, workspace, tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(ROOT, root)
    (root / "messages" / "welcome" / "fax.en.txt").write_text("hi")
    with pytest.raises(ImportFailed, match="fax.en.txt"):
        run_import(runtime, workspace[0], root)


@pytest.mark.parametrize("key", sorted(SAMPLE_DATA))
def test_starter_template_snapshots(runtime, workspace, api, key):
    """Every variant of every starter template, rendered: compare with the stored snapshot
    (``CCM_UPDATE_SNAPSHOTS=1 pytest ...`` rewrites them after a deliberate change)."""
    run_import(runtime, workspace[0])
    preview = api.post(f"/v1/templates/{key}/preview", json={"data": SAMPLE_DATA[key]}).json
    assert preview["problems"] == []
    for part in preview["parts"]:
        rendered = "\n".join(f"--- {name}\n{part[name]}" for name in ("subject", "text", "html", "body") if part[name])
        path = SNAPSHOTS / f"{key}.{part['channel']}.{part['locale']}.txt"
        if os.environ.get("CCM_UPDATE_SNAPSHOTS") or not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_text(rendered)
        assert rendered == path.read_text(), f"{path.name} changed; rerun with CCM_UPDATE_SNAPSHOTS=1 if intended"
