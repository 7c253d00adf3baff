"""SmtpProvider against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest

from ccm.channels.base import (
    OutboundMessage,
    PermanentDeliveryError,
    ProviderConfigError,
    Receipt,
    TransientDeliveryError,
)
from ccm.channels.email_mime import EmailContent, build_email
from ccm.channels.smtp import SmtpProvider
from tests.support.smtp_server import SmtpTestServer, make_self_signed_cert

SENDER = "bounces@mail.example.com"
RECIPIENT = "bob@example.net"


@dataclass
class CommitRecorder:
    """A commit point that remembers what the server had seen each time it was called."""

    server: SmtpTestServer
    calls: list[tuple[list[str], int]] = field(default_factory=list)
    error: Exception | None = None

    def __call__(self) -> None:
        self.calls.append((list(self.server.commands), len(self.server.messages)))
        if self.error is not None:
            raise self.error


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[SmtpTestServer]:
    with SmtpTestServer(pipelining=request.param) as running:
        yield running


@pytest.fixture
def connect() -> Iterator[Callable[[str], SmtpProvider]]:
    """Builds providers from URLs and closes them all at the end of the test."""
    providers: list[SmtpProvider] = []

    def build(url: str) -> SmtpProvider:
        providers.append(SmtpProvider.from_url(url, timeout=5))
        return providers[-1]

    yield build
    for provider in providers:
        provider.close()


@pytest.fixture
def provider(server: SmtpTestServer, connect) -> SmtpProvider:
    return connect(server.url())


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory):
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


def make_message(text: str = "Hello Bob\n.leading dot\n.\nbye", to: str = RECIPIENT) -> OutboundMessage:
    content = EmailContent(
        from_addr="Shop <shop@mail.example.com>",
        to_addr=RECIPIENT,
        subject="Hello",
        html="<p>Hello Bob</p>",
        text=text,
        message_id="<m1@mail.example.com>",
    )
    return OutboundMessage(
        message_id="msg_1",
        workspace_id="ws_1",
        channel="email",
        to=to,
        raw=build_email(content),
        envelope_from=SENDER,
        headers={"Message-ID": "<m1@mail.example.com>"},
    )


def send(provider: SmtpProvider, server: SmtpTestServer, message: OutboundMessage | None = None):
    return provider.send(message or make_message(), commit_point=CommitRecorder(server))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_delivers_exact_bytes_once(provider, server):
    message = make_message()
    receipt = send(provider, server, message)
    assert receipt.status == "sent"
    assert receipt.provider_message_id == "TEST0001"
    [received] = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (RECIPIENT,))
    assert received.raw == message.raw
    assert b"\r\n.leading dot\r\n" in received.raw


def test_receipt_falls_back_to_message_id_header(provider, server):
    server.set_reply("DATA", "250 OK")
    assert send(provider, server).provider_message_id == "<m1@mail.example.com>"


def test_reuses_one_connection_for_several_sends(provider, server):
    send(provider, server)
    send(provider, server)
    assert len(server.messages) == 2
    assert server.connections == 1
    assert server.commands.count("EHLO") == 1


def test_each_thread_gets_its_own_connection(provider, server):
    worker = threading.Thread(target=send, args=(provider, server))
    worker.start()
    worker.join()
    send(provider, server)
    assert len(server.messages) == 2
    assert server.connections == 2


def test_reconnects_when_server_closed_idle_connection(provider, server):
    send(provider, server)
    server.drop_connections()
    send(provider, server)
    assert len(server.messages) == 2
    assert server.connections == 2


def test_reconnects_after_close(provider, server):
    send(provider, server)
    provider.close()
    send(provider, server)
    assert server.connections == 2


def test_commit_point_runs_once_after_data_accepted(provider, server):
    commit = CommitRecorder(server)
    provider.send(make_message(), commit_point=commit)
    [(commands_seen, messages_seen)] = commit.calls
    assert commands_seen[-3:] == ["MAIL", "RCPT", "DATA"]
    assert messages_seen == 0
    assert len(server.messages) == 1


def test_commit_point_failure_sends_nothing_and_provider_recovers(provider, server):
    commit = CommitRecorder(server, error=LookupError("lost ownership"))
    with pytest.raises(LookupError, match="lost ownership"):
        provider.send(make_message(), commit_point=commit)
    assert len(commit.calls) == 1
    assert server.messages == []
    send(provider, server)
    assert len(server.messages) == 1


def test_temporary_rcpt_failure_is_transient_and_keeps_connection(provider, server):
    server.set_reply("RCPT", "451 4.3.0 Mailbox busy")
    commit = CommitRecorder(server)
    with pytest.raises(TransientDeliveryError, match="451 4.3.0 Mailbox busy"):
        provider.send(make_message(), commit_point=commit)
    assert commit.calls == []
    assert server.commands[-1] == "RSET"
    server.set_reply("RCPT", None)
    send(provider, server)
    assert server.connections == 1


def test_unknown_mailbox_is_a_permanent_invalid_address(provider, server):
    server.set_reply("RCPT", "550 5.1.1 No such user")
    with pytest.raises(PermanentDeliveryError, match="550 5.1.1 No such user") as caught:
        send(provider, server)
    assert caught.value.reason == "invalid_address"  # a hard bounce: the address gets suppressed


def test_policy_rejection_at_rcpt_is_permanent_but_not_an_address_problem(provider, server):
    server.set_reply("RCPT", "554 5.7.1 Relay access denied")
    with pytest.raises(PermanentDeliveryError, match="554 5.7.1") as caught:
        send(provider, server)
    assert caught.value.reason == "rejected"


def test_content_rejection_after_data_is_permanent(provider, server):
    server.set_reply("DATA", "554 5.7.1 Message rejected as spam")
    with pytest.raises(PermanentDeliveryError, match="554 5.7.1") as caught:
        send(provider, server)
    assert caught.value.reason == "rejected"
    assert server.messages == []


def test_data_command_refused_skips_commit_point(provider, server):
    server.set_reply("DATA_COMMAND", "554 5.5.1 No valid recipients")
    commit = CommitRecorder(server)
    with pytest.raises(PermanentDeliveryError, match="554 5.5.1"):
        provider.send(make_message(), commit_point=commit)
    assert commit.calls == []


def test_sender_rejection_is_permanent(provider, server):
    server.set_reply("MAIL", "553 5.7.1 Sender not allowed")
    with pytest.raises(PermanentDeliveryError, match="553") as caught:
        send(provider, server)
    assert caught.value.reason == "sender_rejected"


def test_421_is_transient_and_next_send_reconnects(provider, server):
    send(provider, server)
    server.set_reply("RCPT", "421 4.7.0 Closing connection")
    with pytest.raises(TransientDeliveryError, match="421"):
        send(provider, server)
    server.set_reply("RCPT", None)
    send(provider, server)
    assert len(server.messages) == 2
    assert server.connections == 2


def test_421_at_mail_on_reused_connection_retries_once(provider, server):
    send(provider, server)
    server.set_reply("MAIL", "421 4.4.2 Idle timeout")
    with pytest.raises(TransientDeliveryError, match="421 4.4.2"):
        send(provider, server)
    assert server.commands.count("MAIL") == 3  # the first send, the stale connection, a fresh one
    assert server.connections == 2


def test_connection_refused_is_transient(connect):
    provider = connect(f"smtp://127.0.0.1:{closed_port()}?local_hostname=localhost")
    with pytest.raises(TransientDeliveryError, match="Connection refused|ConnectionRefused") as caught:
        provider.send(make_message(), commit_point=lambda: None)
    assert caught.value.reason == "network_error"


def test_address_with_line_break_is_refused_before_connecting(provider, server):
    with pytest.raises(PermanentDeliveryError) as caught:
        send(provider, server, make_message(to="bob@example.net\r\nRCPT TO:<eve@example.org>"))
    assert caught.value.reason == "invalid_address"
    assert server.connections == 0


def test_auth_with_percent_encoded_credentials(connect):
    with SmtpTestServer(auth=("user@example.com", "p@ss:w/rd%")) as server:
        provider = connect(server.url(user="user@example.com", password="p@ss:w/rd%"))
        send(provider, server)
        assert len(server.messages) == 1


def test_wrong_password_is_config_error(connect):
    with SmtpTestServer(auth=("user", "secret")) as server:
        provider = connect(server.url(user="user", password="wrong"))
        with pytest.raises(ProviderConfigError, match="535") as caught:
            send(provider, server)
        assert caught.value.reason == "auth_failed"
        assert server.messages == []


def test_missing_credentials_are_config_error(connect):
    with SmtpTestServer(auth=("user", "secret")) as server:
        provider = connect(server.url())
        with pytest.raises(ProviderConfigError, match="530"):
            send(provider, server)


def test_credentials_without_auth_offered_are_config_error(server, connect):
    provider = connect(server.url(user="user", password="secret"))
    with pytest.raises(ProviderConfigError, match="does not offer AUTH"):
        send(provider, server)


def test_required_starttls_with_self_signed_cafile(cert, connect):
    with SmtpTestServer(tls=cert, require_starttls=True) as server:
        provider = connect(server.url(starttls="required", cafile=str(cert.cert_path)))
        send(provider, server)
        send(provider, server)
        assert len(server.messages) == 2
        assert server.connections == 1
        assert server.commands.count("EHLO") == 2  # before and after STARTTLS


def test_untrusted_certificate_is_config_error(cert, connect):
    with SmtpTestServer(tls=cert) as server:
        provider = connect(server.url(starttls="required"))
        with pytest.raises(ProviderConfigError, match="certificate") as caught:
            send(provider, server)
        assert caught.value.reason == "tls_verification"


def test_unverified_tls_when_verification_is_off(cert, connect):
    with SmtpTestServer(tls=cert, require_starttls=True) as server:
        provider = connect(server.url(verify="false"))
        send(provider, server)
        assert len(server.messages) == 1


def test_required_starttls_not_offered_is_config_error(server, connect):
    provider = connect(server.url(starttls="required"))
    with pytest.raises(ProviderConfigError, match="STARTTLS"):
        send(provider, server)


def test_implicit_tls(cert, connect):
    with SmtpTestServer(tls=cert, implicit_tls=True) as server:
        provider = connect(server.url(cafile=str(cert.cert_path)))
        send(provider, server)
        assert len(server.messages) == 1


def test_url_defaults_and_decoding():
    settings = SmtpProvider.from_url("smtp://us%40er:p%3Ass@mail.example.com").settings
    assert (settings.host, settings.port, settings.starttls) == ("mail.example.com", 25, "opportunistic")
    assert (settings.username, settings.password) == ("us@er", "p:ss")
    assert "p:ss" not in repr(SmtpProvider.from_url("smtp://us%40er:p%3Ass@mail.example.com"))
    tls = SmtpProvider.from_url("smtps://mail.example.com?verify=false", timeout=3).settings
    assert (tls.port, tls.implicit_tls, tls.verify, tls.timeout) == (465, True, False, 3)


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com:notaport",
        "smtp://mail.example.com?starttls=maybe",
        "smtp://mail.example.com?tls=yes",
        "smtp://mail.example.com?verify=perhaps",
        "smtp://mail.example.com?cafile=/nonexistent/ca.pem",
        "smtp://:secret@mail.example.com",
        "smtps://mail.example.com?starttls=required",
    ],
)
def test_invalid_url_is_config_error(url):
    with pytest.raises(ProviderConfigError):
        SmtpProvider.from_url(url)


# Batches: one connection per message, one commit point, the dots held back until it has run -----


def batch(count: int, *, bad: int | None = None) -> list[OutboundMessage]:
    messages = []
    for number in range(count):
        message = make_message(to=f"rcpt{number}@example.com" if number != bad else "nobody@example.com")
        messages.append(replace(message, message_id=f"msg_{number}", headers={"Message-ID": f"<m{number}@x>"}))
    return messages


def test_a_batch_sends_every_body_before_one_commit_point_then_every_dot(provider, server):
    seen = []

    def commit(ids, release):
        seen.append((list(ids), len(server.messages)))
        return ids

    results = provider.send_batch(batch(5), commit_point=commit)
    assert seen == [([f"msg_{n}" for n in range(5)], 0)]  # no message was complete before the commit point
    assert sorted(results) == [f"msg_{n}" for n in range(5)]
    assert all(isinstance(receipt, Receipt) for receipt in results.values())
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [f"rcpt{n}@example.com" for n in range(5)]
    assert server.connections == 5
    provider.send_batch(batch(5), commit_point=lambda ids, release: ids)
    assert server.connections == 5  # the connections are kept for the next batch


def test_a_pipelined_batch_waits_for_a_slow_server_once_not_once_per_message(provider, server):
    if not server.pipelining:
        pytest.skip("without PIPELINING every command waits for its reply")
    provider.send_batch(batch(10), commit_point=lambda ids, release: ids)  # the connections, opened
    server.mail_delay = 0.3
    started = time.monotonic()
    results = provider.send_batch(batch(10), commit_point=lambda ids, release: ids)
    assert time.monotonic() - started < 1.5  # one envelope after another would take 3 s
    assert [type(results[f"msg_{n}"]) for n in range(10)] == [Receipt] * 10
    assert len(server.messages) == 20


def test_a_batch_on_connections_the_server_closed_goes_out_once_on_fresh_ones(provider, server):
    provider.send_batch(batch(3), commit_point=lambda ids, release: ids)
    server.drop_connections()
    results = provider.send_batch(batch(3), commit_point=lambda ids, release: ids)
    assert [type(results[f"msg_{n}"]) for n in range(3)] == [Receipt] * 3
    assert sorted(m.rcpt_tos[0] for m in server.messages[3:]) == [f"rcpt{n}@example.com" for n in range(3)]
    assert server.connections == 6


def test_a_batch_keeps_each_recipients_error_to_itself(provider, server):
    server.set_reply("RCPT nobody@example.com", "550 5.1.1 No such user")
    committed = []
    results = provider.send_batch(batch(4, bad=2), commit_point=lambda ids, release: committed.extend(ids) or ids)
    assert committed == ["msg_0", "msg_1", "msg_3"]  # the refused one never reached the commit point
    assert isinstance(results["msg_2"], PermanentDeliveryError) and results["msg_2"].reason == "invalid_address"
    assert [type(results[f"msg_{n}"]) for n in (0, 1, 3)] == [Receipt] * 3
    assert len(server.messages) == 3


def test_a_batch_finishes_only_what_the_commit_point_says_is_still_owned(provider, server):
    results = provider.send_batch(batch(3), commit_point=lambda ids, release: [ids[0], ids[2]])
    assert sorted(results) == ["msg_0", "msg_2"]  # msg_1 was abandoned: no dot, no result
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["rcpt0@example.com", "rcpt2@example.com"]


def test_a_failing_batch_commit_point_sends_nothing(provider, server):
    def commit(ids, release):
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        provider.send_batch(batch(3), commit_point=commit)
    time.sleep(0.2)
    assert server.messages == []
    results = provider.send_batch(batch(3), commit_point=lambda ids, release: ids)
    assert all(isinstance(r, Receipt) for r in results.values())


def test_a_rejected_end_of_data_is_that_messages_error(provider, server):
    server.set_reply("DATA", "554 5.7.1 Spam")
    results = provider.send_batch(batch(2), commit_point=lambda ids, release: ids)
    assert {type(error) for error in results.values()} == {PermanentDeliveryError}
