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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE = os.environ.get("BENCH_DATABASE", "ccm_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
LOGS = Path("/tmp/ccm-bench/logs")


def database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"


def fresh_database(*, migrate: bool = True) -> str:
    """Drop and recreate the benchmark database, then migrate it (unless the caller will, with
    another version's migrations)."""
    from ccm.migrate import upgrade

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    if migrate:
        upgrade(database_url())
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return database_url()


def analyze(url: str | None = None) -> None:
    """ANALYZE the benchmark database: a table loaded moments ago has no statistics yet (autovacuum
    looks at it within a minute), and without them the planner may scan instead of using an index."""
    engine = create_engine(url or database_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def libpq_url(url: str | None = None) -> str:
    """The benchmark database as a plain libpq URL (for psycopg and psql)."""
    return (url or database_url()).replace("postgresql+psycopg://", "postgresql://")


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
    # Output goes to a file: an unread pipe fills up and blocks a process that logs (workers log
    # every outcome at INFO).
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{Path(args[0]).name}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


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


def gunicorn(app: str, port: int, *, workers: int, options: list[str], booted_dir: Path) -> list[str]:
    """A gunicorn command line whose workers report themselves booted (see bench/gunicorn_conf.py)."""
    booted_dir.mkdir(parents=True, exist_ok=True)
    for stale in booted_dir.iterdir():
        stale.unlink()
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "bench" / "gunicorn_conf.py"),
        "--env",
        f"BENCH_BOOTED_DIR={booted_dir}",
        "-w",
        str(workers),
        *options,
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]


def wait_booted(booted_dir: Path, workers: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until every gunicorn worker has loaded the application."""
    deadline = time.monotonic() + timeout
    while len(list(booted_dir.iterdir())) < workers:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {Path(proc.log_path).read_text()[-3000:]}")  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(booted_dir.iterdir()))} of {workers} gunicorn workers booted")
        time.sleep(0.05)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, stat in _proc_stats():
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def database_backends(dbname: str | None = None) -> list[int]:
    """The PostgreSQL backend processes connected to the benchmark database right now."""
    engine = create_engine(ADMIN_URL)
    with engine.connect() as connection:
        pids = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"),
            {"name": dbname or DATABASE},
        ).scalars()
        found = list(pids)
    engine.dispose()
    return found


def pids_of(command: str) -> list[int]:
    """Processes whose command name is ``command`` (the one redis-server, PostgreSQL's own processes)."""
    return [pid for pid, stat in _proc_stats() if stat[stat.index("(") + 1 : stat.rindex(")")] == command]


def _proc_stats() -> Iterator[tuple[int, str]]:
    """Every running process's id and ``/proc/<pid>/stat`` line (those gone meanwhile skipped)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text()
            except OSError:
                continue


def postgres_auxiliaries() -> list[int]:
    """PostgreSQL's shared processes (WAL writer, checkpointer, background writer, autovacuum):
    they work for every database on the server, including the other users' of this machine."""
    found = []
    for pid in pids_of("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(word in title for word in ("walwriter", "checkpointer", "background writer", "autovacuum")):
            found.append(pid)
    return found


def rss_mib(pids: list[int]) -> list[float]:
    """The resident set size of each of ``pids`` that still runs, in MiB (``VmRSS``)."""
    sizes = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sizes


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes (those still alive)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def children_cpu_seconds() -> float:
    """CPU seconds used by this process's children that have been waited for (wrk, once it exits)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def involved_cpu(into: dict[str, float], groups: dict[str, Callable[[], list[int]]]) -> Iterator[None]:
    """Fill ``into`` with the CPU seconds each group of processes used inside the block, plus
    ``load`` for the load generator (children of this process that exited inside it). Each
    group's pids are taken before and after the block and only those alive throughout count."""
    before_pids = {name: set(pids()) for name, pids in groups.items()}
    before = {name: {pid: cpu_seconds([pid]) for pid in pids} for name, pids in before_pids.items()}
    load_before = children_cpu_seconds()
    yield
    into["load"] = round(children_cpu_seconds() - load_before, 3)
    for name, pids in groups.items():
        alive = before_pids[name] & set(pids())
        into[name] = round(sum(cpu_seconds([pid]) - before[name][pid] for pid in alive), 3)


def hot_updates(tables: tuple[str, ...] = ("message", "delivery_attempt", "job_outbox")) -> dict[str, dict[str, Any]]:
    """Updates and heap-only (HOT) updates of each table so far, from pg_stat_user_tables (the
    statistics collector lags by up to a second: call it a moment after the work)."""
    engine = create_engine(database_url())
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup FROM pg_stat_user_tables"
                " WHERE relname = ANY(:tables)"
            ),
            {"tables": list(tables)},
        ).all()
    engine.dispose()
    return {
        row.relname: {
            "updates": row.n_tup_upd,
            "hot": row.n_tup_hot_upd,
            "hot_ratio": round(row.n_tup_hot_upd / row.n_tup_upd, 3) if row.n_tup_upd else None,
            "dead": row.n_dead_tup,
            "live": row.n_live_tup,
        }
        for row in rows
    }
