"""InboundSmtpServer on 127.0.0.1, driven by smtplib."""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ccm.conversations.smtp_inbound import InboundSmtpServer

HOST = "127.0.0.1"
MESSAGE = (
    b"From: Bob <bob@example.net>\r\n"
    b"To: reply+t0k3n@reply.example.com\r\n"
    b"Subject: Re: hello\r\n"
    b"Message-ID: <abc@example.net>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Caf\xc3\xa9, please.\r\n"
    b".a line that starts with a dot\r\n"
    b"\r\n"
    b"> quoted\r\n"
)


@dataclass
class Recorder:
    """A handler that records its calls and raises ``error`` while it is set."""

    calls: list[tuple[bytes, str, tuple[str, ...]]] = field(default_factory=list)
    error: Exception | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, raw: bytes, mail_from: str, rcpt_tos: tuple[str, ...]) -> None:
        with self.lock:
            if self.error is not None:
                raise self.error
            self.calls.append((raw, mail_from, rcpt_tos))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[InboundSmtpServer]:
    inbound = InboundSmtpServer(
        recorder,
        host=HOST,
        port=0,
        domains=["Reply.Example.com", "bounces.example.com"],
        max_size=2000,
        server_hostname="localhost",
    )
    inbound.start()
    yield inbound
    inbound.stop()


def connect(server: InboundSmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP(HOST, server.port, local_hostname="localhost", timeout=5)


def test_binds_a_real_port_when_given_zero(server: InboundSmtpServer) -> None:
    assert server.port > 0


def test_delivers_exact_bytes_to_the_handler(server: InboundSmtpServer, recorder: Recorder) -> None:
    with connect(server) as client:
        refused = client.sendmail("bob@example.net", ["reply+t0k3n@reply.example.com"], MESSAGE)

    assert refused == {}
    assert recorder.calls == [(MESSAGE, "bob@example.net", ("reply+t0k3n@reply.example.com",))]


def test_accepts_bounces_with_a_null_sender(server: InboundSmtpServer, recorder: Recorder) -> None:
    with connect(server) as client:
        client.sendmail("<>", ["BOUNCES@Bounces.Example.com"], MESSAGE)

    assert recorder.calls == [(MESSAGE, "", ("BOUNCES@Bounces.Example.com",))]


def test_refuses_recipients_in_other_domains(server: InboundSmtpServer, recorder: Recorder) -> None:
    with connect(server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("spammer@example.net", ["victim@elsewhere.example"], MESSAGE)

    code, text = refused.value.recipients["victim@elsewhere.example"]
    assert code == 550
    assert text.startswith(b"5.7.1")
    assert recorder.calls == []


def test_subdomains_are_not_accepted(server: InboundSmtpServer) -> None:
    with connect(server) as client:
        client.ehlo()
        code, _ = client.mail("bob@example.net")
        assert code == 250
        code, _ = client.rcpt("x@sub.reply.example.com")

    assert code == 550


def test_mixed_recipients_deliver_only_to_accepted_ones(server: InboundSmtpServer, recorder: Recorder) -> None:
    with connect(server) as client:
        refused = client.sendmail("bob@example.net", ["a@reply.example.com", "b@other.example"], MESSAGE)

    assert set(refused) == {"b@other.example"}
    assert recorder.calls[0][2] == ("a@reply.example.com",)


def test_failing_handler_answers_451_and_a_retry_succeeds(
    server: InboundSmtpServer, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.error = RuntimeError("database is down")
    with (
        caplog.at_level(logging.ERROR, logger="ccm.conversations.smtp_inbound"),
        connect(server) as client,
        pytest.raises(smtplib.SMTPDataError) as failed,
    ):
        client.sendmail("bob@example.net", ["reply+t0k3n@reply.example.com"], MESSAGE)

    assert failed.value.smtp_code == 451
    assert failed.value.smtp_error.startswith(b"4.3.0")
    assert "database is down" in caplog.text
    recorder.error = None
    with connect(server) as client:
        client.sendmail("bob@example.net", ["reply+t0k3n@reply.example.com"], MESSAGE)
    assert recorder.calls == [(MESSAGE, "bob@example.net", ("reply+t0k3n@reply.example.com",))]


def test_declared_size_over_the_limit_is_refused_at_mail_from(server: InboundSmtpServer) -> None:
    with connect(server) as client, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("bob@example.net", ["a@reply.example.com"], MESSAGE + b"x" * 3000)

    assert refused.value.smtp_code == 552


def test_undeclared_size_over_the_limit_is_refused_after_data(server: InboundSmtpServer, recorder: Recorder) -> None:
    with connect(server) as client:
        client.ehlo()
        client.mail("bob@example.net")  # no SIZE= parameter
        client.rcpt("a@reply.example.com")
        code, _ = client.data(MESSAGE + (b"x" * 70 + b"\r\n") * 40)

    assert code == 552
    assert recorder.calls == []


def test_auth_is_not_offered(server: InboundSmtpServer) -> None:
    with connect(server) as client:
        client.ehlo()

        assert not client.has_extn("auth")
