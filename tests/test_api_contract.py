"""The OpenAPI document is the truth: schemathesis drives a live server from it — the embedded
default (``ccm serve`` on SQLite) and production (gunicorn on PostgreSQL + Redis) — and the run
fails on any 5xx, any answer that does not match its documented schema or status, any 405
without ``Allow``, any invalid request accepted, and any valid request refused (except a 422 on
a field the document marks as checked beyond its schema; see ``tests/support/contract_hooks.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATABASE_URL
from tests.support.api import wait_for
from tests.support.processes import ROOT, Process, ServeProcess, ccm_env, free_port

pytestmark = pytest.mark.e2e

SCHEMATHESIS = [
    sys.executable,
    "-m",
    "schemathesis.cli",
    "--config-file",
    str(ROOT / "tests/support/schemathesis.toml"),
    "run",
    "--checks",
    "all",
    "--exclude-checks",
    "positive_data_acceptance",
    # A fixed seed keeps CI repeatable; explore with CCM_CONTRACT_SEED=random CCM_CONTRACT_EXAMPLES=100.
    "--max-examples",
    os.environ.get("CCM_CONTRACT_EXAMPLES", "12"),
    *([] if (seed := os.environ.get("CCM_CONTRACT_SEED", "20261201")) == "random" else ["--seed", seed]),
    "--workers",
    "2",
    "--request-timeout",
    "10",
    "--no-color",
    "--warnings",
    "off",
    "--generation-allow-x00",
    "false",
    # Hypothesis sometimes cannot draw enough snippet names ("layouts/base.html") for a path parameter.
    "--suppress-health-check",
    "filter_too_much",  # NUL is refused everywhere (info.description); test_hostile_input.py
]


def run_schemathesis(base_url: str, key: str, tmp_path: Path) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.contract_hooks", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [*SCHEMATHESIS, "-H", f"Authorization: Bearer {key}", f"{base_url}/v1/openapi.json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"schemathesis found problems:\n{result.stdout[-20000:]}\n{result.stderr[-2000:]}"


def test_embedded_default_keeps_its_contract(tmp_path):
    server = ServeProcess(ccm_env(data_dir=tmp_path / "data"), tmp_path / "serve.log")
    try:
        run_schemathesis(server.url, server.key, tmp_path)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-5000:]


@pytest.mark.skipif(not DATABASE_URL, reason="needs CCM_TEST_DATABASE_URL (PostgreSQL)")
def test_production_keeps_its_contract_on_postgresql(settings, workspace, tmp_path):
    port = free_port()
    env = ccm_env(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        secret_key="test-secret",
        redis_namespace=settings.redis_namespace,
        data_dir=tmp_path,
    )
    server = Process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "ccm.wsgi:app",
        ],
        env,
        tmp_path / "gunicorn.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=30, message=f"gunicorn to serve:\n{server.output()}")
        run_schemathesis(url, workspace[1], tmp_path)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-5000:]


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_document_speaks_only_json_schema(app):
    """Constraints pydantic could not translate land in the document as unknown keys (``le``),
    which validators ignore: the rule would then live only in code."""
    document = app.test_client().get("/v1/openapi.json").json
    stray = sorted(_stray_keys(document["components"]["schemas"], "components.schemas"))
    assert stray == [], stray


_PYDANTIC_ONLY = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of", "strict", "allow_inf_nan"}


def _stray_keys(node: object, path: str) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _PYDANTIC_ONLY and key not in ("properties",):
                found.append(f"{path}.{key}")
            if key != "properties" or not isinstance(value, dict):
                found += _stray_keys(value, f"{path}.{key}")
            else:
                found += [stray for name, prop in value.items() for stray in _stray_keys(prop, f"{path}.{name}")]
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _stray_keys(item, f"{path}.{index}")
    return found
