"""The vendored scripts are the bytes the manifest names, and the layout asks the browser to check them."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "ccm" / "web"
MANIFEST = json.loads((WEB / "static" / "vendor" / "manifest.json").read_text())
LAYOUT = (WEB / "templates" / "base.html").read_text()


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda entry: entry["name"])
def test_each_vendored_file_matches_its_manifest_and_the_layout(entry):
    data = (WEB / "static" / "vendor" / entry["file"]).read_bytes()
    sha384 = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    assert sha384 == entry["sha384"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]) and entry["version"] in entry["file"]
    assert entry["source"].startswith("https://registry.npmjs.org/")
    tag = re.search(rf'<script src="[^"]*{re.escape(entry["file"])}[^"]*" integrity="([^"]+)"', LAYOUT)
    assert tag and tag.group(1) == sha384


def test_the_layout_has_no_inline_script_and_every_script_is_served(app):
    assert not re.search(r"<script(?![^>]*\bsrc=)", LAYOUT)
    client = app.test_client()
    for entry in MANIFEST:
        assert client.get(f"/assets/vendor/{entry['file']}").status_code == 200
    assert client.get("/assets/csrf.js").status_code == 200
