"""Compare build_email with the stdlib EmailMessage for the same multipart/alternative message.

Usage: .venv/bin/python bench/mime_build.py [--number N]

Prints microseconds per message for each builder and their ratio.
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP

from ccm.channels.email_mime import EmailContent, build_email

_ROW = (
    '<tr><td style="padding:8px 0;font-family:Arial,sans-serif;color:#333">Order item {n}: Grüne '
    'Tasse, 2 × 12,50 €</td><td align="right" style="padding:8px 0">25,00 €</td></tr>\n'
)
HTML = (
    "<!doctype html><html><head><title>Your order</title></head><body>"
    '<table width="100%" cellpadding="0" cellspacing="0" role="presentation">\n'
    + "".join(_ROW.format(n=n) for n in range(27))
    + '</table><p>Questions? <a href="https://shop.example.com/help">Visit our help centre</a>.</p>'
    "</body></html>"
)
TEXT = "\n".join(f"Order item {n}: Grüne Tasse, 2 × 12,50 € ... 25,00 €" for n in range(27))
DATE = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CONTENT = EmailContent(
    from_addr="Café Shop <orders@shop.example.com>",
    to_addr="customer@example.net",
    subject="Your order #12345 — Bestätigung",
    html=HTML,
    text=TEXT,
    message_id="<20250102030405.abc123@shop.example.com>",
    reply_to="help@shop.example.com",
    headers={
        "List-Unsubscribe": "<https://shop.example.com/u/abc123>, <mailto:u+abc123@shop.example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
)


def build_with_ccm() -> bytes:
    return build_email(CONTENT, date=DATE)


def build_with_stdlib() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["Date"] = DATE
    msg["Message-ID"] = CONTENT.message_id
    msg["From"] = CONTENT.from_addr
    msg["To"] = CONTENT.to_addr
    msg["Subject"] = CONTENT.subject
    msg["Reply-To"] = CONTENT.reply_to
    for name, value in CONTENT.headers.items():
        msg[name] = value
    msg.set_content(CONTENT.text, cte="quoted-printable")
    msg.add_alternative(CONTENT.html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def per_message_us(func, number: int) -> float:
    """Best of five runs, in microseconds per call."""
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="messages per timing run")
    args = parser.parse_args()
    ours = per_message_us(build_with_ccm, args.number)
    stdlib = per_message_us(build_with_stdlib, max(1, args.number // 20))
    print(f"html {len(HTML.encode())} B, message {len(build_with_ccm())} B")
    print(f"build_email:  {ours:8.1f} us/message")
    print(f"EmailMessage: {stdlib:8.1f} us/message")
    print(f"ratio:        {stdlib / ours:8.1f}x")


if __name__ == "__main__":
    main()
