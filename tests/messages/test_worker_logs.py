"""Workers say what they do: each delivery's outcome at INFO with the message id, and a periodic
throughput line from each worker process."""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from ccm.logs import throughput_line
from ccm.messages.delivery import deliver_message
from ccm.worker import InProcessWorker
from tests.messages.test_send_api import finished, send
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="ccm")
    return caplog


def lines(logs, logger: str) -> list[str]:
    return [record.getMessage() for record in logs.records if record.name == logger]


def test_a_delivery_is_logged_with_its_message_id_and_provider(api, runtime, logs):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    deliver_message(runtime, message_id)
    [line] = lines(logs, "ccm.messages.outcomes")
    outbox_id = api.get(f"/v1/outbox?message_id={message_id}").json["items"][0]["id"]
    assert line == f"message {message_id} delivered via local_outbox as {outbox_id}"


def test_a_skip_is_logged_with_its_reason(api, runtime, logs):
    publish_template(api)
    put_profile(api, "u1", email=None)
    message_id = send(api).json["id"]
    deliver_message(runtime, message_id)
    assert lines(logs, "ccm.messages.outcomes") == [f"message {message_id} skipped(no_address)"]


def test_a_failure_is_logged_with_its_reason(api, runtime, smtp_server, logs):
    smtp_server.set_reply("RCPT", "550 5.1.1 No such user here")
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api, channel="email").json["id"]  # no other channel to fall back to
    deliver_message(runtime, message_id)
    [line] = lines(logs, "ccm.messages.outcomes")
    assert line.startswith(f"message {message_id} failed(") and "550" in line


def test_a_retry_is_logged_with_its_time(api, runtime, smtp_server, logs):
    smtp_server.set_reply("RCPT", "451 4.3.0 Try again later")
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    deliver_message(runtime, message_id)
    [line] = lines(logs, "ccm.messages.outcomes")
    retry_at = api.get(f"/v1/messages/{message_id}").json["next_attempt_at"]
    assert line.startswith(f"message {message_id} retrying at {retry_at[:19]}Z (") and "451" in line


def test_a_worker_logs_its_throughput_when_something_happened(api, runtime, logs):
    publish_template(api)
    put_profile(api, "u1")
    put_profile(api, "nobody", email=None)
    worker = InProcessWorker(runtime, threads=2, throughput_interval=0.5)
    worker.start()
    try:
        ids = [send(api).json["id"] for _ in range(3)] + [send(api, to={"external_id": "nobody"}).json["id"]]
        for message_id in ids:
            finished(api, message_id)
        # The four may fall into two intervals: the lines add up to them.
        wait_for(lambda: _totals(lines(logs, "ccm.worker")) == (3, 0, 1), message="throughput lines adding up")
    finally:
        worker.stop()
    first = next(text for text in lines(logs, "ccm.worker") if text.startswith("delivered"))
    assert re.fullmatch(r"delivered \d messages in the last [\d.]+ s \([\d.]+/s\); 0 failed, [01] skipped", first)


def _totals(texts):
    found = [re.fullmatch(r"delivered (\d+) messages .*; (\d+) failed, (\d+) skipped.*", t) for t in texts]
    rows = [tuple(int(n) for n in match.groups()) for match in found if match]
    return tuple(sum(column) for column in zip(*rows, strict=True)) if rows else (0, 0, 0)


def test_the_throughput_line_reads_well_and_is_left_out_when_idle():
    counts = Counter({"delivered": 1_200, "sent": 34, "failed": 3, "skipped": 10})
    assert throughput_line(counts, 60.0) == "delivered 1,234 messages in the last 60 s (20.6/s); 3 failed, 10 skipped"
    assert throughput_line(Counter({"retrying": 2}), 60.0) == (
        "delivered 0 messages in the last 60 s (0.0/s); 0 failed, 0 skipped, 2 retrying"
    )
    assert throughput_line(Counter(), 60.0) is None
