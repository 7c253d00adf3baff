"""Shared set-up for the benchmarks: a fresh PostgreSQL database, a Redis namespace, a workspace
with a key, a published template and profiles. Run against PostgreSQL + Redis, as in production."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE = "ccm_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"


def fresh_database() -> str:
    """Drop and recreate the benchmark database, then migrate it."""
    from ccm.migrate import upgrade

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    upgrade(database_url())
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return database_url()


def ccm_env(**settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    base = {
        "database_url": database_url(),
        "redis_url": REDIS_URL,
        "secret_key": "bench-secret",
        "log_level": "WARNING",
        "data_dir": "/tmp/ccm-bench",
    }
    base.update(settings)
    env.update({f"CCM_{k.upper()}": str(v) for k, v in base.items() if v is not None})
    return env


def seed(*, profiles: int, template_html: str) -> str:
    """A workspace, its API key, template ``bench`` (published) and ``profiles`` profiles."""
    from ccm.auth.service import create_api_key
    from ccm.config import Settings
    from ccm.message_templates.schemas import TemplateIn
    from ccm.message_templates.service import create_template, publish
    from ccm.profiles.models import Profile
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        _, key = create_api_key(session=session, workspace_id=ws.id)
        create_template(
            session=session,
            sandbox=runtime.sandbox,
            workspace_id=ws.id,
            data=TemplateIn.model_validate(
                {
                    "key": "bench",
                    "category": "transactional",
                    "variables": ["first_name", "order"],
                    "variants": [
                        {
                            "channel": "email",
                            "locale": "en",
                            "subject": "Order {{ order }} for {{ first_name }}",
                            "html": template_html,
                        }
                    ],
                }
            ),
        )
        publish(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, key="bench")
        session.add_all(
            Profile(
                workspace_id=ws.id,
                external_id=f"u{n}",
                email=f"user{n}@example.com",
                attributes={"first_name": f"User {n}"},
                channels=["email"],
            )
            for n in range(profiles)
        )
    runtime.close()
    return key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def need(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if not path:
        sys.exit(f"{tool} not found: install the Debian package '{package}'")
    return path


def save(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def cpu_seconds_by_command() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, summed by command name."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


@contextmanager
def cpu_usage(into: dict[str, float]) -> Iterator[None]:
    """Fill ``into`` with the CPU seconds each command used inside the block."""
    before = cpu_seconds_by_command()
    yield
    after = cpu_seconds_by_command()
    for name, seconds in after.items():
        used = seconds - before.get(name, 0.0)
        if used > 0.05:
            into[name] = round(used, 2)


def wrk(
    url: str, *, duration: int, connections: int, script: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run wrk (2 threads) against ``url``: requests/s, p50/p99 in ms, request and non-2xx counts."""
    import re

    args = [need("wrk", "wrk"), "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run(
        [*args, url], env={"PATH": "/usr/bin:/bin", **(env or {})}, capture_output=True, text=True, check=True
    ).stdout

    def found(pattern: str) -> str:
        match = re.search(pattern, out)
        if match is None:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        return match.group(1)

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(found(r"Requests/sec:\s+([\d.]+)")),
        "p50_ms": _ms(found(r"50%\s+([\d.]+\w+)")),
        "p99_ms": _ms(found(r"99%\s+([\d.]+\w+)")),
        "requests": int(found(r"(\d+) requests in")),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _ms(value: str) -> float:
    number, unit = (
        value[:-2] if value.endswith(("us", "ms")) else value[:-1],
        value[-2:] if value.endswith(("us", "ms")) else value[-1:],
    )
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
