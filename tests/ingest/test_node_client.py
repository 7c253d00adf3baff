"""Segment's official Node.js client (``@segment/analytics-node``, pinned in ``node/package.json``)
against a live CCM: a second client, from another ecosystem, so CCM is not tuned to one client's
habits. ``node/send.mjs`` sends an identify, track, page, group and alias in one batch.

Needs ``node`` and ``npm ci`` in ``tests/ingest/node`` (``.ci/run`` does it): skipped locally
without them, a failure under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ccm.ingest.models import Event, EventSeen
from ccm.profiles.models import Profile
from tests.conftest import IN_CI
from tests.support.http_server import serving

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
CLIENT = NODE_DIR / "node_modules" / "@segment" / "analytics-node"
KINDS = ["identify", "track", "page", "group", "alias"]


@dataclass(frozen=True)
class Run:
    """One run of ``send.mjs``: its exit status, the requests the client made (headers and parsed
    body) and the statuses it was answered, and what it reported on stderr."""

    returncode: int
    requests: list[dict[str, Any]]
    statuses: list[int]
    stderr: str

    def sent(self) -> dict[str, dict[str, Any]]:
        """The calls of the last request, by type."""
        return {call["type"]: call for call in self.requests[-1]["body"]["batch"]}


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is not None and CLIENT.is_dir():
        return node
    missing = "node is not installed" if node is None else f"{CLIENT} is missing: run `npm ci` in {NODE_DIR}"
    if IN_CI:
        pytest.fail(f"the Node client test cannot run: {missing}")
    pytest.skip(missing)


@pytest.fixture
def send(node: str) -> Any:
    def send(host: str, write_key: str, *message_id_prefix: str) -> Run:
        done = subprocess.run(
            [node, "send.mjs", host, write_key, *message_id_prefix],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        requests = [line["request"] for line in lines if "request" in line]
        statuses = [line["response"]["status"] for line in lines if "response" in line]
        return Run(done.returncode, requests, statuses, done.stderr)

    return send


def stored(runtime: Any) -> dict[str, Event]:
    with runtime.db.read_only() as session:
        return {event.kind: event for event in session.scalars(select(Event))}


def stored_count(runtime: Any, model: Any) -> int:
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_node_client_identifies_a_profile_with_its_traits_on_its_fields(send, live_server, write_key, runtime):
    run = send(live_server, write_key)

    assert run.returncode == 0, run.stderr
    with runtime.db.read_only() as session:
        profile = session.scalar(select(Profile).where(Profile.external_id == "node-1"))
    assert profile is not None
    assert (profile.email, profile.phone) == ("Linus@example.com", "+33612345678")
    assert profile.attributes == {"first_name": "Linus", "last_name": "Tor", "plan": "pro"}
    assert {event.profile_id for event in stored(runtime).values()} == {profile.id}


def test_the_node_client_posts_one_batch_and_each_call_is_stored_as_it_sent_it(send, live_server, write_key, runtime):
    run = send(live_server, write_key)

    assert run.returncode == 0, run.stderr
    assert ([request["url"] for request in run.requests], run.statuses) == ([f"{live_server}/v1/batch"], [200])
    sent, events = run.sent(), stored(runtime)
    assert sorted(events) == sorted(KINDS)
    assert len({call["messageId"] for call in sent.values()}) == len(KINDS)
    for kind in KINDS:
        assert events[kind].message_id == sent[kind]["messageId"]
        assert events[kind].occurred_at.replace(tzinfo=dt.UTC) == dt.datetime.fromisoformat(sent[kind]["timestamp"])
        assert events[kind].context["library"]["name"] == "@segment/analytics-node"
    assert (events["track"].name, events["track"].properties) == ("Order Completed", sent["track"]["properties"])
    assert (events["page"].name, events["page"].properties) == ("Pricing", {"path": "/pricing", "category": "Docs"})
    assert events["group"].properties == {"group_id": "org-1", "traits": {"name": "Acme", "employees": 12}}
    assert events["alias"].properties == {"previous_id": "node-device-1"}


def test_the_same_calls_sent_twice_are_stored_once(send, live_server, write_key, runtime):
    first = send(live_server, write_key, "run-1")
    again = send(live_server, write_key, "run-1")

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert {event.message_id for event in stored(runtime).values()} == {f"run-1-{kind}" for kind in KINDS}
    assert stored_count(runtime, Event) == len(KINDS)


@contextlib.contextmanager
def losing_the_first_answer(app: Any) -> Iterator[str]:
    """CCM served so that its first answer is lost after CCM stored the batch: the client gets a 503
    instead, as when a proxy or the network drops the response."""
    lost: list[bool] = []

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if lost:
            return app(environ, start_response)
        lost.append(True)
        with contextlib.closing(app(environ, lambda *args: None)) as answer:
            b"".join(answer)  # stored and committed: the request's unit of work ends with its answer
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [b'{"code": "unavailable", "message": "the answer was lost", "field": null}']

    with serving(wsgi) as url:
        yield url


def test_a_batch_whose_answer_was_lost_is_retried_by_the_client_and_stored_once(send, app, write_key, runtime):
    with losing_the_first_answer(app) as url:
        run = send(url, write_key)

    assert run.returncode == 0, run.stderr
    assert run.statuses == [503, 200]
    first, retry = run.requests
    assert retry["headers"]["X-Retry-Count"] == "1"
    assert [call["messageId"] for call in retry["body"]["batch"]] == [
        call["messageId"] for call in first["body"]["batch"]
    ]
    assert stored_count(runtime, Event) == stored_count(runtime, EventSeen) == len(KINDS)


def test_a_bad_write_key_is_an_error_the_client_reports_and_stores_nothing(send, live_server, write_key, runtime):
    run = send(live_server, "not-a-write-key")

    assert run.returncode == 1
    assert run.statuses == [401]  # refused, not retried: 401 is not transient
    reported = [json.loads(line) for line in run.stderr.splitlines()]
    assert sorted(report["type"] for report in reported) == sorted(KINDS)
    assert {(report["code"], report["reason"]) for report in reported} == {
        ("delivery_failure", "Error: [401] UNAUTHORIZED")
    }
    assert stored_count(runtime, Event) == stored_count(runtime, EventSeen) == 0
