"""build_email output, checked by parsing it back with the stdlib email package."""

from __future__ import annotations

import email
import email.header
import email.policy
import re
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ccm.channels.email_mime import EmailContent, HeaderInjectionError, build_email, inline_css

DATE = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
BASE = EmailContent(
    from_addr="Acme Shop <shop@mail.example.com>",
    to_addr="bob@example.net",
    subject="Your receipt",
    html="<p>Hello <b>Bob</b></p>",
    text="Hello Bob",
    message_id="<r1.abc@mail.example.com>",
)


def build(**changes) -> bytes:
    return build_email(replace(BASE, **changes), date=DATE)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def body_text(part: email.message.EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_headers_are_exactly_the_intended_ones():
    raw = build(
        reply_to="help@mail.example.com",
        headers={
            "List-Unsubscribe": "<https://mail.example.com/u/abc>, <mailto:u+abc@mail.example.com>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message = parse(raw)
    assert list(message.keys()) == [
        "MIME-Version",
        "Date",
        "Message-ID",
        "From",
        "To",
        "Subject",
        "Reply-To",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Content-Type",
    ]
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime == DATE
    assert message["Message-ID"] == "<r1.abc@mail.example.com>"
    assert message["From"] == "Acme Shop <shop@mail.example.com>"
    assert message["To"] == "bob@example.net"
    assert message["Subject"] == "Your receipt"
    assert message["Reply-To"] == "help@mail.example.com"
    assert message["List-Unsubscribe"] == "<https://mail.example.com/u/abc>, <mailto:u+abc@mail.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.defects == []


def test_text_and_html_become_multipart_alternative():
    message = parse(build(text="Grüße, Bob", html="<p>Grüße, <b>Bob</b> — €5</p>"))
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    for part, subtype in ((plain, "plain"), (html, "html")):
        assert list(part.keys()) == ["Content-Type", "Content-Transfer-Encoding"]
        assert part.get_content_type() == f"text/{subtype}"
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(plain) == "Grüße, Bob\n"
    assert body_text(html) == "<p>Grüße, <b>Bob</b> — €5</p>\n"


def test_text_only_is_a_single_part():
    message = parse(build(html=None, text="Just text"))
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(message) == "Just text\n"


def test_naive_date_is_taken_as_utc():
    raw = build_email(BASE, date=datetime(2025, 3, 4, 5, 6, 7))
    assert parse(raw)["Date"].datetime == DATE


def test_date_defaults_to_now():
    sent = parse(build_email(BASE))["Date"].datetime
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "text",
    [
        "Grüße 👋 中文 — ünïcödé",
        ".starts with a dot\n..two dots\n.\nlone dot above",
        "x" * 5000,
        "trailing spaces   \ntrailing tab\t\nend",
        "From the start of a line\nequals = sign =3D and =?utf-8?q?x?=",
        "windows\r\nline\rendings\nmixed",
        "",
        "--=_not-the-boundary\n--",
    ],
    ids=["unicode", "dots", "long-line", "trailing-space", "specials", "line-endings", "empty", "dashes"],
)
def test_body_roundtrips(text):
    message = parse(build(text=text, html=f"<pre>{text}</pre>"))
    plain, html = message.iter_parts()
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    assert body_text(plain) == normalised + "\n"
    assert body_text(html) == f"<pre>{normalised}</pre>\n"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"subject": "Grüße aus Köln — " * 20},
        {"subject": "word " * 100},
        {"subject": "x" * 3000},
        {"text": "y" * 3000 + "\n" + "z " * 2000, "html": "<p>" + "€" * 3000 + "</p>"},
        {"from_addr": "Ünïcödé Name That Is Rather Long Indeed, Really Quite Long <a@example.com>"},
        {"from_addr": "x" * 1500 + " <a@example.com>"},
        {"headers": {"X-Note": "note " * 100, "X-Long-Name-" + "h" * 40: "value"}},
    ],
    ids=[
        "plain",
        "long-unicode-subject",
        "long-ascii-subject",
        "unbreakable-subject",
        "long-bodies",
        "long-name",
        "unbreakable-name",
        "long-extra-headers",
    ],
)
def test_every_line_ends_in_crlf_and_fits(changes):
    raw = build(**changes)
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    if "subject" not in changes or " " in changes["subject"]:
        assert all(len(line) <= 78 for line in header_lines(raw) if not line.startswith(b"X-Long-Name"))
    assert parse(raw).defects == []


@pytest.mark.parametrize(
    "subject",
    [
        "Grüße",
        "👋 Welcome to Acme!",
        "Ваш заказ №12345 подтверждён и будет отправлен в ближайшее время, спасибо за покупку",
        "中文主题" * 30,
        "literal =?utf-8?q?not_encoded?= text",
        "tab\tand\x01control",
        "  leading and trailing spaces kept at the end  ",
    ],
)
def test_subject_decodes_to_original(subject):
    raw = build(subject=subject)
    assert parse(raw)["Subject"] == subject.lstrip()
    assert all(len(line) <= 78 for line in header_lines(raw))


def test_long_ascii_subject_folds_at_whitespace():
    subject = "Your weekly summary: " + " ".join(f"item-{n}" for n in range(40))
    raw = build(subject=subject)
    subject_lines = [line for line in header_lines(raw) if line.startswith((b"Subject:", b" "))]
    assert len(subject_lines) > 1
    assert b"=?" not in b"".join(subject_lines)
    assert all(len(line) <= 78 for line in subject_lines)
    assert parse(raw)["Subject"] == subject


def test_unbreakable_subject_is_encoded_to_stay_under_998():
    subject = "x" * 3000
    raw = build(subject=subject)
    assert all(len(line) <= 998 for line in header_lines(raw))
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    ("from_addr", "display_name", "addr_spec"),
    [
        ("Café Shop <shop@example.com>", "Café Shop", "shop@example.com"),
        ('"Doe, John" <j@example.com>', "Doe, John", "j@example.com"),
        ("John Q. Public <j@example.com>", "John Q. Public", "j@example.com"),
        ('Say "Hi" \\ there <j@example.com>', 'Say "Hi" \\ there', "j@example.com"),
        ("j@example.com", "", "j@example.com"),
        ("<j@example.com>", "", "j@example.com"),
        ("=?utf-8?q?fake?= <j@example.com>", "=?utf-8?q?fake?=", "j@example.com"),
        (" and ".join(["Doe, John"] * 10) + " <j@example.com>", " and ".join(["Doe, John"] * 10), "j@example.com"),
    ],
)
def test_from_display_name_roundtrips(from_addr, display_name, addr_spec):
    raw = build(from_addr=from_addr, reply_to=from_addr)
    message = parse(raw)
    for name in ("From", "Reply-To"):
        [address] = message[name].addresses
        assert (address.display_name, address.addr_spec) == (display_name, addr_spec)
    assert all(len(line) <= 78 for line in header_lines(raw))


def test_long_display_name_is_split_into_encoded_words():
    name = "Ü" * 60 + " Ünïcödé " + "Ö" * 60
    raw = build(from_addr=f"{name} <j@example.com>")
    from_value = raw.split(b"\r\nFrom: ", 1)[1].split(b"\r\nTo: ", 1)[0].decode()
    assert from_value.count("?=\r\n =?utf-8?") >= 2
    # The stdlib address parser keeps the whitespace between adjacent encoded-words, which
    # RFC 2047 section 6.2 says to drop; decode_header follows the RFC.
    decoded = str(email.header.make_header(email.header.decode_header(from_value.replace("\r\n", ""))))
    assert decoded == f"{name} <j@example.com>"
    assert all(len(line) <= 78 for line in header_lines(raw))


def test_display_name_cannot_add_addresses():
    message = parse(build(from_addr="Support <evil@example.org>, <shop@example.com>"))
    [address] = message["From"].addresses
    assert address.addr_spec == "shop@example.com"


@pytest.mark.parametrize(
    "address",
    ["not an address", "a@b c@d", "bob@exämple.com", "Name <a@b", "a@b>, c@d", "", "Name <>"],
)
def test_malformed_address_is_refused(address):
    with pytest.raises(ValueError, match="To"):
        build(to_addr=address)


@pytest.mark.parametrize("message_id", ["no-brackets@example.com", "<no-at-sign>", "<a b@example.com>"])
def test_malformed_message_id_is_refused(message_id):
    with pytest.raises(ValueError, match="Message-ID"):
        build(message_id=message_id)


BREAKS = ["\r", "\n", "\r\nBcc: eve@example.org", "\x00", "\u2028", "\u2029", "\x85"]


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("Subject", lambda b: {"subject": f"Hi{b}there"}),
        ("From", lambda b: {"from_addr": f"Shop{b}Bcc: x <shop@example.com>"}),
        ("From", lambda b: {"from_addr": f"shop@example.com{b}"}),
        ("To", lambda b: {"to_addr": f"bob@example.net{b}"}),
        ("Reply-To", lambda b: {"reply_to": f"Help{b} <help@example.com>"}),
        ("Message-ID", lambda b: {"message_id": f"<a{b}@example.com>"}),
        ("List-Unsubscribe", lambda b: {"headers": {"List-Unsubscribe": f"<https://x/u>{b}"}}),
        (None, lambda b: {"headers": {f"X-Evil{b}": "value"}}),
    ],
    ids=["subject", "from-name", "from-addr", "to", "reply-to", "message-id", "extra-value", "extra-name"],
)
def test_header_injection_is_refused(field, change, brk):
    changes = change(brk)
    with pytest.raises(HeaderInjectionError) as caught:
        build(**changes)
    expected = field or next(iter(changes["headers"]))
    assert caught.value.field == expected


@pytest.mark.parametrize("name", ["From", "content-type", "Subject", "Bad Name", "Colon:", ""])
def test_extra_header_cannot_override_or_malform(name):
    with pytest.raises(HeaderInjectionError) as caught:
        build(headers={name: "value"})
    assert caught.value.field == name


def test_non_ascii_extra_header_is_encoded():
    message = parse(build(headers={"X-Campaign": "Frühling 2025"}))
    assert message["X-Campaign"] == "Frühling 2025"


def test_boundary_is_random_and_absent_from_bodies():
    boundaries = set()
    for _ in range(3):
        raw = build(text="--=_ looks like a boundary", html="<p>=_ --</p>")
        boundary = parse(raw).get_boundary()
        boundaries.add(boundary)
        assert raw.count(boundary.encode()) == 4  # Content-Type, two delimiters, the close
    assert len(boundaries) == 3


def test_inline_css_moves_rules_and_keeps_media_queries():
    html = (
        "<html><head><style>p { color: red } @media (max-width: 600px) { p { color: blue } }</style>"
        "</head><body><p>Hi</p></body></html>"
    )
    inlined = inline_css(html)
    assert re.search(r'<p style="color: ?red;?">Hi</p>', inlined)
    assert "@media (max-width: 600px)" in inlined


def test_inline_css_never_fetches_stylesheets():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/style.css"
        html = (
            f'<html><head><link rel="stylesheet" href="{url}"><link rel="stylesheet" href="local.css">'
            f"<style>@import url({url}); p {{ color: red }}</style></head><body><p>Hi</p></body></html>"
        )
        inlined = inline_css(html)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert "color: red" in inlined
