"""The admin screens through the Flask test client: each page and form as an admin; every form
refused (403, nothing changed) to the other roles; bad input a 4xx naming the field."""

from __future__ import annotations

import pytest

from tests.web.conftest import csrf_of

PAGES = ("/admin/users", "/admin/providers", "/admin/keys", "/admin/audit", "/admin/settings", "/admin/webhooks")


@pytest.mark.parametrize("path", PAGES)
def test_an_admin_reads_each_admin_page(web_client, path):
    answer = web_client("admin").get(path)
    assert answer.status_code == 200, answer.text
    assert 'aria-label="Admin"' in answer.text
