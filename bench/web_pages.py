"""Server time of every screen of the web app on a workspace of 100,000 profiles and 1,000,000
messages (the issue's bound: no page over 300 ms).

    .venv/bin/python bench/web_pages.py [--profiles 100000] [--messages 1000000] [--runs 7]
    .venv/bin/python bench/web_pages.py --reuse --only /results   # again on the same data, two pages

A fresh migrated PostgreSQL database is seeded with ``ccm seed``'s generator (profiles, consent,
suppressions, events, engagement), then 90 % of the messages are written as history (COPY: ids and
times spread over 60 days, every status and channel, skip and failure reasons) and the rest by a
real campaign fanned out to the audience. ANALYZE. An admin logs in through the form; then every
GET route of the web app's blueprints (read from the URL map, so a new screen is timed without
editing this file) is requested ``--runs`` times after one warm-up, in process through the WSGI
app: the server's time, with no network in between. A route whose path parameters this script
cannot fill is listed as not timed, with the parameter. ``--reuse`` times the database that the
last run seeded (no drop, no seeding: two versions of the code compare on the same rows), and
``--only`` times only the paths that contain one of its strings.

Each page's median is also given as a ratio to ``/login`` (a page that renders a template and
reads nothing) in the same run, and its CPU per request is read from ``/proc`` for exactly this
process and the PostgreSQL backends serving it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.campaign_fanout import bench_runtime, launch_campaign, seed_profiles  # noqa: E402
from bench.common import analyze, cpu_seconds, database_backends, fresh_database, save  # noqa: E402

BOUND_MS = 300
BUYER = {"external_id": "buyer", "email": "buyer@example.com"}
EMAIL, PASSWORD = "bench@example.com", "bench password 1"
STATUSES = [
    ("delivered", None, 45),
    ("sent", None, 30),
    ("failed", "bounced: 550 5.1.1 user unknown", 4),
    ("skipped", "no_consent", 8),
    ("skipped", "quiet_hours", 3),
    ("skipped", "frequency_cap", 3),
    ("skipped", "suppressed", 2),
    ("queued", None, 5),
]
CHANNELS = [("email", 70), ("sms", 20), ("chat", 10)]
EXTRA_QUERIES = {
    "web_profiles.index": ["q=jo", "q=%2B1555"],
    "web_admin.audit": ["action=campaign.launch"],
}
ONLY_WITH = {"web_admin.provider_new": "kind=smtp"}
"""Routes that are a page only with a query (without it, a 422 naming the parameter)."""


def write_history(runtime: Any, workspace_id: str, count: int) -> None:
    """``count`` finished (and some queued) messages of the seeded template, for random profiles."""
    from sqlalchemy import text

    from ccm.ids import id_at

    rng, now = random.Random(7), dt.datetime.now(dt.UTC)
    statuses = rng.choices(STATUSES, weights=[w for *_, w in STATUSES], k=count)
    channels = rng.choices(CHANNELS, weights=[w for _, w in CHANNELS], k=count)
    with runtime.db.engine.begin() as connection:
        profiles = connection.execute(
            text("SELECT id, email FROM profile WHERE workspace_id = :w"), {"w": workspace_id}
        ).all()
        version = connection.execute(text("SELECT id, version FROM template_version ORDER BY created_at LIMIT 1")).one()
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        columns = (
            "id, workspace_id, profile_id, source, send_key, category, template_version_id, template_key,"
            " template_version, failed_channels, channel, locale, to_address, data, track, route, status,"
            " reason, deadline_at, claims, created_at, updated_at, finished_at"
        )
        with cursor.copy(f"COPY message ({columns}) FROM STDIN") as copy:
            for n in range(count):
                profile_id, email = profiles[n % len(profiles)]
                status, reason, _ = statuses[n]
                at = now - dt.timedelta(seconds=rng.random() * 60 * 86400)
                naive = at.replace(tzinfo=None)
                done = None if status == "queued" else naive + dt.timedelta(seconds=2)
                copy.write_row(
                    (
                        id_at("msg", at),
                        workspace_id,
                        profile_id,
                        "api",
                        f"history-{n}",
                        "transactional",
                        version[0],
                        "seed-newsletter",
                        version[1],
                        "[]",
                        channels[n][0],
                        "en",
                        email,
                        "{}",
                        True,
                        "[]",
                        status,
                        reason,
                        naive + dt.timedelta(days=1),
                        1,
                        naive,
                        naive,
                        done,
                    )
                )
                if n % 50_000 == 0:
                    print(f"\rhistory {n:,}/{count:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def make_the_rest(runtime: Any, workspace_id: str, campaign_id: str) -> None:
    """Through the API, as a user would: an import of a few rows, an SMS provider (the local
    outbox, whose item the outbox screen shows), a webhook endpoint and a message delivered there,
    by a worker in this process while the campaign is paused (its 100,000 stay queued), and the
    buyer's reply to that message (a conversation)."""
    import io

    from sqlalchemy import text

    from bench.campaign_fanout import api_client
    from ccm.worker import InProcessWorker, install

    client, headers = api_client(runtime, workspace_id)
    assert client.post(f"/v1/campaigns/{campaign_id}/pause", headers=headers).status_code == 200
    rows = "external_id,email\n" + "".join(f"import-{n},import-{n}@example.com\n" for n in range(200))
    files = {"file": (io.BytesIO(rows.encode()), "people.csv")}
    receipt = {
        "key": "bench-receipt",
        "category": "transactional",
        "variants": [{"channel": "email", "locale": "en", "subject": "Your receipt", "html": "<p>Thank you.</p>"}],
    }
    calls = [
        ("/v1/imports", {"data": files, "content_type": "multipart/form-data"}),
        ("/v1/providers", {"json": {"kind": "local_outbox", "label": "sms outbox", "config": {"channel": "sms"}}}),
        ("/v1/webhooks", {"json": {"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}}),
        ("/v1/templates", {"json": receipt}),
        ("/v1/templates/bench-receipt/publish", {}),
        ("/v1/messages", {"json": {"to": BUYER, "template": "bench-receipt"}}),
    ]
    private = {"policy": {"webhooks_allow_private": True}}  # the hook's 127.0.0.1 (it never answers)
    client.patch("/v1/workspace", json=private, headers=headers)
    for path, options in calls:
        answer = client.post(path, headers=headers, **options)
        if answer.status_code >= 300:
            print(f"{path}: {answer.status_code} {answer.json}", file=sys.stderr)
    install(runtime)
    worker = InProcessWorker(runtime, threads=2)
    worker.start()
    done = (
        "SELECT (SELECT count(*) FROM outbox_item) > 0"
        " AND (SELECT count(*) FROM import_job WHERE status = 'completed') > 0"
    )
    try:
        for _ in range(120):
            with runtime.db.engine.connect() as connection:
                if connection.execute(text(done)).scalar():
                    break
            time.sleep(0.5)
    finally:
        worker.stop()
    reply_to_the_receipt(runtime, client, headers)


def reply_to_the_receipt(runtime: Any, client: Any, headers: dict[str, str]) -> None:
    """The buyer answers the receipt the worker put in the outbox, as a mail client would (``Re:``,
    ``In-Reply-To`` its Message-ID), through ``POST /v1/inbound/email``: a conversation with an
    inbound reply, whose inbox thread is then timed too."""
    from email import message_from_string, policy

    from sqlalchemy import text

    with runtime.db.engine.connect() as connection:
        raw = connection.execute(
            text("SELECT raw FROM outbox_item WHERE channel = 'email' AND to_address = :to LIMIT 1"),
            {"to": BUYER["email"]},
        ).scalar_one()
    sent = message_from_string(raw, policy=policy.default)
    reply = (
        f"From: {BUYER['email']}\r\nTo: {sent['From']}\r\nSubject: Re: {sent['Subject']}\r\n"
        f"Message-ID: <bench-reply@example.com>\r\nIn-Reply-To: {sent['Message-ID']}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nThank you. When will it ship?\r\n"
    )
    answer = client.post(
        "/v1/inbound/email", data=reply.encode(), headers={**headers, "Content-Type": "message/rfc822"}
    )
    assert answer.status_code == 202 and answer.json == {"taken_as": "reply"}, answer.json


def samples(runtime: Any, workspace_id: str) -> dict[str, str]:
    """A value for each path parameter the screens take, read from the seeded workspace."""
    from sqlalchemy import text

    queries = {
        "profile_id": "SELECT profile_id FROM message WHERE workspace_id = :w ORDER BY id DESC LIMIT 1",
        "campaign_id": "SELECT id FROM campaign WHERE workspace_id = :w LIMIT 1",
        "segment_id": "SELECT id FROM segment WHERE workspace_id = :w LIMIT 1",
        "message_id": "SELECT id FROM message WHERE workspace_id = :w ORDER BY id DESC LIMIT 1",
        "key": "SELECT key FROM message_template WHERE workspace_id = :w AND key NOT LIKE 'ccm.%' LIMIT 1",
        "import_id": "SELECT id FROM import_job WHERE workspace_id = :w LIMIT 1",
        "conversation_id": "SELECT id FROM conversation WHERE workspace_id = :w LIMIT 1",
        "user_id": "SELECT id FROM app_user WHERE workspace_id = :w LIMIT 1",
        "account_id": "SELECT id FROM provider WHERE workspace_id = :w LIMIT 1",
        "endpoint_id": "SELECT id FROM webhook_endpoint WHERE workspace_id = :w LIMIT 1",
        "item_id": "SELECT id FROM outbox_item WHERE workspace_id = :w LIMIT 1",
    }
    found: dict[str, str] = {"version": "1", "template_key": "seed-newsletter"}
    with runtime.db.engine.connect() as connection:
        for name, query in queries.items():
            try:
                value = connection.execute(text(query), {"w": workspace_id}).scalar()
            except Exception:  # a table a later screen brings; its pages are listed as not timed
                connection.rollback()
                continue
            if value is not None:
                found[name] = str(value)
    found["id"] = found.get("campaign_id", "")
    return found


def routes(app: Any, values: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(endpoint, path) of every GET screen route that can be filled, and those that cannot."""
    from ccm.web.pages import is_screen

    timed, untimed = [], []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None
        if "GET" not in rule.methods or not is_screen(blueprint) or rule.endpoint == "web.static":
            continue
        if "stream" in rule.endpoint or "events" in rule.rule:  # server-sent events never end
            continue
        missing = [a for a in rule.arguments if not values.get(a)]
        if missing:
            untimed.append(f"{rule.rule} (no sample for {', '.join(missing)})")
            continue
        path = rule.build({a: values[a] for a in rule.arguments}, append_unknown=False)[1]
        if rule.endpoint in ONLY_WITH:
            path = f"{path}?{ONLY_WITH[rule.endpoint]}"
        timed.append((rule.endpoint, path))
        timed += [(rule.endpoint, f"{path}?{q}") for q in EXTRA_QUERIES.get(rule.endpoint, [])]
    return timed, untimed


def logged_in(app: Any, runtime: Any, workspace_id: str) -> Any:
    from sqlalchemy import select

    from ccm.users.models import User
    from ccm.users.service import create_user

    with runtime.db.unit_of_work() as session:
        if session.scalar(select(User.id).where(User.email_key == EMAIL)) is None:  # --reuse: made before
            create_user(session=session, workspace_id=workspace_id, email=EMAIL, role="admin", password=PASSWORD)
    client = app.test_client()
    answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 302, answer.text
    return client


def time_page(client: Any, path: str, runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    first = client.get(path)
    first_ms = round((time.perf_counter() - started) * 1000, 1)  # cold: caches empty (the dashboard's)
    if first.status_code != 200:  # a redirect (/admin/ → its first page) is not a page of its own
        return {"status": first.status_code, "location": first.headers.get("Location")}
    pids = database_backends()
    took, cpu_before, db_before = [], time.process_time(), cpu_seconds(pids)
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return {
        "status": 200,
        "median_ms": round(statistics.median(took), 1),
        "max_ms": round(max(took), 1),
        "first_ms": first_ms,
        "app_cpu_ms": round((time.process_time() - cpu_before) * 1000 / runs, 1),
        "postgres_cpu_ms": round((cpu_seconds(pids) - db_before) * 1000 / runs, 1),
        "bytes": len(first.data),
    }


def seed_all(runtime: Any, profiles: int, messages: int) -> str:
    """The fresh database seeded as the module says; the workspace's id."""
    from ccm.campaigns.engine import run_fanout

    workspace_id, _ = seed_profiles(runtime, profiles, 2)
    campaign_size = min(profiles, messages // 10)
    write_history(runtime, workspace_id, messages - campaign_size)
    rules = {"attribute": "external_id", "op": "exists"}
    campaign_id, _ = launch_campaign(runtime, workspace_id, rules, "bench newsletter")
    run_fanout(runtime, campaign_id)
    make_the_rest(runtime, workspace_id, campaign_id)
    analyze()
    return workspace_id


def seeded_workspace(runtime: Any) -> str:
    """The workspace of the campaign a previous run seeded (``--reuse``)."""
    from sqlalchemy import text

    with runtime.db.engine.connect() as connection:
        return str(connection.execute(text("SELECT workspace_id FROM campaign LIMIT 1")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="time the database the last run seeded")
    parser.add_argument("--only", action="append", default=[], help="time only the paths containing this")
    args = parser.parse_args()
    from ccm.app import create_app

    if not args.reuse:
        fresh_database()
    runtime = bench_runtime(local_outbox="email")  # the outbox screen shows what it "sent"
    workspace_id = seeded_workspace(runtime) if args.reuse else seed_all(runtime, args.profiles, args.messages)
    app = create_app(runtime=runtime)
    client = logged_in(app, runtime, workspace_id)
    timed, untimed = routes(app, samples(runtime, workspace_id))
    timed = [(endpoint, path) for endpoint, path in timed if not args.only or any(s in path for s in args.only)]
    baseline = time_page(app.test_client(), "/login", args.runs)
    pages = {path: time_page(client, path, args.runs) | {"endpoint": endpoint} for endpoint, path in timed}
    for figures in pages.values():
        if "median_ms" in figures:
            figures["ratio_to_login"] = round(figures["median_ms"] / baseline["median_ms"], 1)
    slowest = max((f.get("max_ms", 0) for f in pages.values()), default=0)
    result = {
        "profiles": args.profiles,
        "messages": args.messages,
        "runs": args.runs,
        "baseline_login": baseline,
        "pages": pages,
        "not_timed": untimed,
        "slowest_ms": slowest,
        "within_bound": slowest <= BOUND_MS and all(f["status"] in (200, 302) for f in pages.values()),
    }
    runtime.close()
    save("web_pages_only" if args.only else "web_pages", result)  # a part never replaces the whole
    print(f"{'page':60} {'median':>8} {'max':>8} {'ratio':>6} {'app cpu':>8} {'pg cpu':>7}")
    for path, f in sorted(pages.items(), key=lambda item: -item[1].get("max_ms", 1e9)):
        if f["status"] != 200:
            print(f"{path:60} status {f['status']}")
            continue
        print(
            f"{path:60} {f['median_ms']:8.1f} {f['max_ms']:8.1f} {f['ratio_to_login']:6.1f} "
            f"{f['app_cpu_ms']:8.1f} {f['postgres_cpu_ms']:7.1f}"
        )
    print(json.dumps({"slowest_ms": slowest, "within_bound": result["within_bound"], "not_timed": untimed}))


if __name__ == "__main__":
    main()
