"""parse_email over replies and bounces as real clients and MTAs write them."""

from __future__ import annotations

import random
import textwrap

import pytest

from ccm.conversations.inbound_email import MalformedEmail, parse_email, reply_address_token


def crlf(text: str, encoding: str = "utf-8") -> bytes:
    """Dedented ``text`` with CRLF line endings, as it arrives over SMTP."""
    return textwrap.dedent(text).lstrip("\n").replace("\n", "\r\n").encode(encoding)


GMAIL_REPLY = crlf("""
    Delivered-To: reply+t0k3n@reply.example.com
    Received: by 2002:a05:6a10:1234 with SMTP id x; Mon, 6 Jan 2025 02:01:10 -0800 (PST)
    MIME-Version: 1.0
    References: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C@mail.example.com>
    In-Reply-To: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C@mail.example.com>
    From: Bob Smith <Bob.Smith@Gmail.com>
    Date: Mon, 6 Jan 2025 11:01:00 +0100
    Message-ID: <CAF=abc123+XyZ@mail.gmail.com>
    Subject: Re: Your order #42 has shipped
    To: Acme Support <reply+t0k3n@reply.example.com>
    Cc: carol@example.org
    Content-Type: multipart/alternative; boundary="000000000000a1b2c3"

    --000000000000a1b2c3
    Content-Type: text/plain; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    Thanks, but the parcel never arrived. Can you check with the courier?

    Bob

    On Mon, Jan 6, 2025 at 10:00=E2=80=AFAM Acme Support <support@example.com>
    wrote:

    > Hi Bob,
    >
    > Your order #42 has shipped and should arrive on Thursday.
    >
    > The Acme team
    >

    --000000000000a1b2c3
    Content-Type: text/html; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    <div dir=3D"ltr">Thanks, but the parcel never arrived. Can you check with the=
     courier?<div><br></div><div>Bob</div></div><br><div class=3D"gmail_quote">=
    <div dir=3D"ltr" class=3D"gmail_attr">On Mon, Jan 6, 2025 at 10:00=E2=80=AFAM=
     Acme Support &lt;<a href=3D"mailto:support@example.com">support@example.com</=
    a>&gt; wrote:<br></div><blockquote class=3D"gmail_quote">Hi Bob,<br>Your orde=
    r #42 has shipped.</blockquote></div>

    --000000000000a1b2c3--
""")


def html_only(message: bytes) -> bytes:
    """The Gmail reply with its text/plain part removed."""
    head, _, rest = message.partition(b"--000000000000a1b2c3\r\nContent-Type: text/plain")
    return head + b"--000000000000a1b2c3" + rest.partition(b"--000000000000a1b2c3")[2]


OUTLOOK_REPLY = crlf("""
    From: "Dupont, Alice" <alice.dupont@contoso.com>
    To: "support@example.com" <support@example.com>
    Subject: RE: Invoice 2025-001
    Date: Tue, 7 Jan 2025 09:12:44 +0000
    Message-ID: <DB9PR01MB1234ABCD@DB9PR01MB1234.eurprd01.prod.outlook.com>
    References: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9D@mail.example.com>
    In-Reply-To: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9D@mail.example.com>
    Content-Type: text/plain; charset="us-ascii"
    Content-Transfer-Encoding: 7bit
    MIME-Version: 1.0

    Hello,

    Please send the invoice to accounts@contoso.com instead.

    Regards,
    Alice

    -----Original Message-----
    From: Acme Billing <billing@example.com>
    Sent: Monday, January 6, 2025 5:00 PM
    To: Dupont, Alice <alice.dupont@contoso.com>
    Subject: Invoice 2025-001

    Your invoice is attached.
""")

FRENCH_REPLY = crlf("""
    From: =?UTF-8?B?Wm/DqSBMZWbDqHZyZQ==?= <zoe@example.fr>
    To: reply+AbC@reply.example.com
    Subject: =?UTF-8?Q?Re=C2=A0:_Votre_commande_n=C2=B0_42?=
    Message-ID: <20250106100501.GA1234@example.fr>
    In-Reply-To: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9E@mail.example.com>
    MIME-Version: 1.0
    Content-Type: text/plain; charset=utf-8; format=flowed
    Content-Transfer-Encoding: 8bit

    Bonjour, le colis est bien arrivé. Merci !

    Le lun. 6 janv. 2025 à 10:00, Acme <support@example.com> a écrit :
    > Votre commande est partie.
""")

OUT_OF_OFFICE = crlf("""
    From: Dan Brown <dan@example.net>
    To: reply+t0k3n@reply.example.com
    Subject: Automatic reply: Your order #42 has shipped
    Auto-Submitted: auto-replied
    X-Auto-Response-Suppress: All
    Message-ID: <ooo-1@example.net>
    In-Reply-To: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C@mail.example.com>
    Content-Type: text/plain; charset=utf-8

    I am out of the office until January 13 with limited access to email.
""")

POSTFIX_DSN = crlf("""
    Return-Path: <>
    From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
    Subject: Undelivered Mail Returned to Sender
    To: bounces@mail.example.com
    Auto-Submitted: auto-replied
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=delivery-status;
    \tboundary="4A1B2C3D.1736157600/mail.example.com"
    Message-Id: <20250106100000.4A1B2C3D@mail.example.com>

    This is a MIME-encapsulated message.

    --4A1B2C3D.1736157600/mail.example.com
    Content-Description: Notification
    Content-Type: text/plain; charset=us-ascii

    This is the mail system at host mail.example.com.

    I'm sorry to have to inform you that your message could not
    be delivered to one or more recipients.

    <nobody@example.net>: host mx.example.net[203.0.113.7] said: 550 5.1.1
        <nobody@example.net>: Recipient address rejected: User unknown in virtual
        mailbox table (in reply to RCPT TO command)

    --4A1B2C3D.1736157600/mail.example.com
    Content-Description: Delivery report
    Content-Type: message/delivery-status

    Reporting-MTA: dns; mail.example.com
    X-Postfix-Queue-ID: 4A1B2C3D
    X-Postfix-Sender: rfc822; bounces@mail.example.com
    Arrival-Date: Mon,  6 Jan 2025 10:00:00 +0000 (UTC)

    Final-Recipient: rfc822; nobody@example.net
    Original-Recipient: rfc822;Nobody@example.net
    Action: failed
    Status: 5.1.1
    Remote-MTA: dns; mx.example.net
    Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
        rejected: User unknown in virtual mailbox table

    --4A1B2C3D.1736157600/mail.example.com
    Content-Description: Undelivered Message Headers
    Content-Type: text/rfc822-headers

    Received: by mail.example.com (Postfix, from userid 0) id 4A1B2C3D
    MIME-Version: 1.0
    Date: Mon, 06 Jan 2025 10:00:00 +0000
    Message-ID: <msg_01ABC@example.com>
    From: Acme <hello@example.com>
    To: nobody@example.net
    Subject: Welcome
    X-CCM-Message-Id: msg_01ABC

    --4A1B2C3D.1736157600/mail.example.com--
""")

EXIM_DSN = crlf("""
    Return-path: <>
    From: Mail Delivery System <Mailer-Daemon@mx.example.org>
    To: bounces@mail.example.com
    Subject: Mail delivery failed: returning message to sender
    Message-Id: <E1tUabc-000123-AB@mx.example.org>
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=delivery-status; boundary=1736157600-eximdsn-123456
    Auto-Submitted: auto-replied

    --1736157600-eximdsn-123456
    Content-type: text/plain; charset=us-ascii

    This message was created automatically by mail delivery software.

    A message that you sent could not be delivered to one or more of its
    recipients. This is a permanent error. The following address(es) failed:

      ghost@example.org
        host mx2.example.org [198.51.100.4]
        SMTP error from remote mail server after RCPT TO:<ghost@example.org>:
        550 5.1.1 User unknown

    --1736157600-eximdsn-123456
    Content-type: message/delivery-status

    Reporting-MTA: dns; mx.example.org

    Action: failed
    Final-Recipient: rfc822;ghost@example.org
    Status: 5.0.0
    Remote-MTA: dns; mx2.example.org
    X-Exim-Diagnostic: X-str; SMTP error from remote mail server after RCPT TO:<ghost@example.org>:
      550 5.1.1 User unknown

    --1736157600-eximdsn-123456
    Content-type: message/rfc822

    Received: from mail.example.com ([192.0.2.1]) by mx.example.org with esmtps id 1tUabc
    MIME-Version: 1.0
    Date: Mon, 06 Jan 2025 10:00:00 +0000
    Message-ID: <msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9F@mail.example.com>
    From: Acme <hello@mail.example.com>
    To: ghost@example.org
    Subject: Your receipt
    Content-Type: text/plain; charset=utf-8

    Thank you for your purchase.

    --1736157600-eximdsn-123456--
""")

DELAYED_DSN = crlf("""
    From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
    Subject: Delayed Mail (still being retried)
    To: bounces@mail.example.com
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

    --B0UND
    Content-Type: text/plain; charset=us-ascii

    This is the mail system at host mail.example.com.
    ####################################################################
    # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
    ####################################################################

    --B0UND
    Content-Type: message/delivery-status

    Reporting-MTA: dns; mail.example.com

    Final-Recipient: rfc822; slow@example.net
    Action: delayed
    Status: 4.4.7
    Diagnostic-Code: X-Postfix; delivery temporarily suspended: connect to
        mx.example.net[203.0.113.9]:25: Connection timed out
    Will-Retry-Until: Mon, 13 Jan 2025 10:00:00 +0000 (UTC)

    --B0UND
    Content-Type: text/rfc822-headers

    Message-ID: <msg_01DELAY@mail.example.com>
    X-CCM-Message-Id: msg_01DELAY

    --B0UND--
""")

PLAIN_TEXT_BOUNCE = crlf("""
    From: Mail Delivery Subsystem <MAILER-DAEMON@legacy.example.org>
    To: bounces@mail.example.com
    Subject: Returned mail: see transcript for details
    Date: Mon, 6 Jan 2025 10:05:00 +0000
    Content-Type: text/plain; charset=us-ascii

    The original message was received at Mon, 6 Jan 2025 10:00:00 +0000
    from mail.example.com [192.0.2.1]

       ----- The following addresses had permanent fatal errors -----
    <user@example.com>

       ----- Transcript of session follows -----
    ... while talking to mx.example.com.:
    >>> RCPT To:<user@example.com>
    <<< 550 5.1.1 <user@example.com>: Recipient address rejected: User unknown
    550 5.1.1 <user@example.com>... User unknown

       ----- Original message follows -----
    Message-ID: <msg_01PLAIN@mail.example.com>
    X-CCM-Message-Id: msg_01PLAIN
    From: Acme <hello@mail.example.com>
    To: user@example.com
    Subject: Hello
""")

QMAIL_BOUNCE = crlf("""
    From: MAILER-DAEMON@qmail.example.net
    To: bounces@mail.example.com
    Subject: failure notice

    Hi. This is the qmail-send program at qmail.example.net.
    I'm afraid I wasn't able to deliver your message to the following addresses.
    This is a permanent error; I've given up. Sorry it didn't work out.

    <lost@example.net>:
    203.0.113.20 does not like recipient.
    Remote host said: 550 No such user here
    Giving up on 203.0.113.20.

    --- Below this line is a copy of the message.

    Message-ID: <msg_01QMAIL@mail.example.com>
""")

READ_RECEIPT = crlf("""
    From: postmaster@example.net
    To: hello@mail.example.com
    Subject: Read: Welcome
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=disposition-notification; boundary="R"

    --R
    Content-Type: text/plain

    Your message was read.
    --R
    Content-Type: message/disposition-notification

    Final-Recipient: rfc822; reader@example.net
    Disposition: manual-action/MDN-sent-manually; displayed
    --R--
""")


def test_gmail_reply_keeps_only_the_new_text() -> None:
    parsed = parse_email(GMAIL_REPLY)

    assert parsed.text == "Thanks, but the parcel never arrived. Can you check with the courier?\n\nBob"
    assert "> Your order #42 has shipped" in parsed.full_text
    assert parsed.dsn is None
    assert parsed.auto_submitted is False


def test_gmail_reply_headers() -> None:
    parsed = parse_email(GMAIL_REPLY)

    assert parsed.message_id == "CAF=abc123+XyZ@mail.gmail.com"
    assert (parsed.from_address, parsed.from_name) == ("bob.smith@gmail.com", "Bob Smith")
    assert parsed.to_addresses == ("reply+t0k3n@reply.example.com", "carol@example.org")
    assert parsed.subject == "Re: Your order #42 has shipped"
    assert parsed.in_reply_to == ("msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C@mail.example.com",)
    assert parsed.references == ("msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C@mail.example.com",)


def test_html_only_reply_is_converted_and_stripped() -> None:
    parsed = parse_email(html_only(GMAIL_REPLY))

    assert parsed.text == "Thanks, but the parcel never arrived. Can you check with the courier?\n\nBob"
    assert "Your order #42 has shipped." in parsed.full_text


def test_outlook_reply_stops_at_original_message() -> None:
    parsed = parse_email(OUTLOOK_REPLY)

    assert parsed.text == "Hello,\n\nPlease send the invoice to accounts@contoso.com instead.\n\nRegards,\nAlice"
    assert parsed.from_name == "Dupont, Alice"
    assert parsed.to_addresses == ("support@example.com",)


def test_outlook_reply_without_separator_stops_at_header_block() -> None:
    raw = OUTLOOK_REPLY.replace(b"-----Original Message-----", b"________________________________")

    assert parse_email(raw).text.endswith("Regards,\nAlice")


def test_outlook_header_block_alone_ends_the_reply() -> None:
    raw = OUTLOOK_REPLY.replace(b"-----Original Message-----\r\n", b"")

    assert parse_email(raw).text.endswith("Regards,\nAlice")


def test_from_and_date_lines_in_the_reply_itself_are_kept() -> None:
    raw = crlf("""
        From: traveller@example.net
        Subject: Re: booking

        Please change my booking:
        From: Paris
        Date: Monday 13 January
        To: Berlin

        Thanks
    """)

    assert parse_email(raw).text.endswith("To: Berlin\n\nThanks")


def test_french_reply_decodes_encoded_words_and_strips_attribution() -> None:
    parsed = parse_email(FRENCH_REPLY)

    assert parsed.text == "Bonjour, le colis est bien arrivé. Merci !"
    assert parsed.from_name == "Zoé Lefèvre"
    assert parsed.subject == "Re\u00a0: Votre commande n° 42"


@pytest.mark.parametrize(
    ("attribution", "reply"),
    [
        ("Am 06.01.2025 um 10:00 schrieb Acme <support@example.com>:", "Danke!"),
        ("El lun, 6 ene 2025 a las 10:00, Acme (<support@example.com>) escribió:", "¡Gracias!"),
        ("On 6 Jan 2025, at 10:00, Acme <support@example.com> wrote:", "Thanks!"),
    ],
)
def test_attributions_in_other_languages_are_stripped(attribution: str, reply: str) -> None:
    raw = crlf(f"""
        From: someone@example.net
        Subject: Re: hi
        Content-Type: text/plain; charset=utf-8

        {reply}

        {attribution}
        > quoted
    """)

    assert parse_email(raw).text == reply


def test_bottom_posted_reply_keeps_answers_and_drops_signature() -> None:
    raw = crlf("""
        From: Eve <eve@example.net>
        Subject: Re: questions

        On Mon, Jan 6, 2025 at 10:00 AM Acme <support@example.com> wrote:
        > Which size?

        Large.

        > Which colour?

        Blue.

        --\x20
        Eve Example | Example Corp
    """)

    assert parse_email(raw).text == "Large.\n\nBlue."


def test_out_of_office_is_auto_submitted() -> None:
    parsed = parse_email(OUT_OF_OFFICE)

    assert parsed.auto_submitted is True
    assert parsed.dsn is None


@pytest.mark.parametrize(
    "header",
    [
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "X-Autoreply: yes",
        "X-Autorespond: vacation",
        "Auto-Submitted: auto-generated; owner-email=x@example.net",
    ],
)
def test_other_auto_reply_markers(header: str) -> None:
    raw = OUT_OF_OFFICE.replace(b"Auto-Submitted: auto-replied", header.encode())

    assert parse_email(raw).auto_submitted is True


def test_auto_submitted_no_is_a_human_reply() -> None:
    raw = OUT_OF_OFFICE.replace(b"Auto-Submitted: auto-replied", b"Auto-Submitted: no")

    assert parse_email(raw).auto_submitted is False


def test_postfix_dsn_hard_bounce() -> None:
    parsed = parse_email(POSTFIX_DSN)

    assert parsed.dsn is not None
    assert parsed.dsn.original_message_id == "msg_01ABC@example.com"
    assert parsed.dsn.ccm_message_id == "msg_01ABC"
    [recipient] = parsed.dsn.recipients
    assert recipient.address == "nobody@example.net"
    assert (recipient.action, recipient.status, recipient.permanent) == ("failed", "5.1.1", True)
    assert recipient.diagnostic == (
        "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert parsed.auto_submitted is True


def test_exim_dsn_with_returned_message() -> None:
    dsn = parse_email(EXIM_DSN).dsn

    assert dsn is not None
    assert dsn.original_message_id == "msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9F@mail.example.com"
    assert dsn.ccm_message_id == "msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9F"
    [recipient] = dsn.recipients
    assert (recipient.address, recipient.status, recipient.permanent) == ("ghost@example.org", "5.0.0", True)
    assert recipient.diagnostic.endswith("550 5.1.1 User unknown")


def test_delayed_dsn_is_not_permanent() -> None:
    dsn = parse_email(DELAYED_DSN).dsn

    assert dsn is not None
    assert dsn.ccm_message_id == "msg_01DELAY"
    [recipient] = dsn.recipients
    assert (recipient.action, recipient.status, recipient.permanent) == ("delayed", "4.4.7", False)


def test_plain_text_bounce_is_read_best_effort() -> None:
    dsn = parse_email(PLAIN_TEXT_BOUNCE).dsn

    assert dsn is not None
    assert (dsn.original_message_id, dsn.ccm_message_id) == ("msg_01PLAIN@mail.example.com", "msg_01PLAIN")
    [recipient] = dsn.recipients
    assert (recipient.address, recipient.action, recipient.status) == ("user@example.com", "failed", "5.1.1")
    assert recipient.permanent is True
    assert "Recipient address rejected" in recipient.diagnostic


def test_plain_text_bounce_quoting_delay_words_stays_a_hard_bounce() -> None:
    raw = PLAIN_TEXT_BOUNCE + b"\r\nSorry for the delay, we will retry the payment tomorrow.\r\n"

    [recipient] = parse_email(raw).dsn.recipients  # type: ignore[union-attr]

    assert (recipient.action, recipient.permanent) == ("failed", True)


def test_qmail_bounce_address_then_reply_code() -> None:
    dsn = parse_email(QMAIL_BOUNCE).dsn

    assert dsn is not None
    assert dsn.ccm_message_id == "msg_01QMAIL"
    [recipient] = dsn.recipients
    assert (recipient.address, recipient.status, recipient.permanent) == ("lost@example.net", "5.0.0", True)


def test_bounce_without_recognisable_recipients_is_still_a_bounce() -> None:
    raw = crlf("""
        From: Mail Delivery Subsystem <mailer-daemon@example.org>
        Subject: Delivery failure

        Your message could not be delivered.
    """)

    dsn = parse_email(raw).dsn

    assert dsn is not None
    assert (dsn.recipients, dsn.original_message_id, dsn.ccm_message_id) == ((), None, None)


def test_dsn_reports_the_address_as_originally_sent() -> None:
    raw = POSTFIX_DSN.replace(
        b"Original-Recipient: rfc822;Nobody@example.net", b"Original-Recipient: rfc822;old-alias@example.com"
    )

    [recipient] = parse_email(raw).dsn.recipients  # type: ignore[union-attr]

    assert recipient.address == "old-alias@example.com"


def test_global_delivery_status_part_is_read() -> None:
    raw = crlf("""
        From: postmaster@example.jp
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="G"

        --G
        Content-Type: message/global-delivery-status
        Content-Transfer-Encoding: 8bit

        Reporting-MTA: dns; mx.example.jp

        Original-Recipient: utf-8; 用户@example.jp
        Final-Recipient: rfc822; user@example.jp
        Action: failed
        Status: 5.2.2
        Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

        --G--
    """)

    [recipient] = parse_email(raw).dsn.recipients  # type: ignore[union-attr]

    assert (recipient.address, recipient.status, recipient.diagnostic) == (
        "用户@example.jp",
        "5.2.2",
        "552 5.2.2 Mailbox full",
    )


def test_other_reports_are_not_bounces() -> None:
    assert parse_email(READ_RECEIPT).dsn is None


def test_human_mail_mentioning_an_error_code_is_not_a_bounce() -> None:
    raw = crlf("""
        From: ops@example.net
        Subject: mail problem

        We got 550 5.1.1 <user@example.com> when writing to you.
    """)

    assert parse_email(raw).dsn is None


def test_latin1_body_labelled_utf8_is_decoded() -> None:
    raw = crlf(
        """
        From: =?iso-8859-1?q?Ren=E9?= <rene@example.fr>
        Subject: =?ISO-8859-1?B?Q2Fm6SBjcuhtZQ==?=
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit

        Un café, s'il vous plaît.
    """,
        encoding="latin-1",
    )

    parsed = parse_email(raw)

    assert parsed.text == "Un café, s'il vous plaît."
    assert (parsed.from_name, parsed.subject) == ("René", "Café crème")


def test_unknown_charset_and_raw_8bit_headers_are_read_leniently() -> None:
    raw = crlf("""
        From: Jürgen <jurgen@example.de>
        Subject: Grüße =?x-unknown?q?sch=F6n?=
        Content-Type: text/plain; charset=x-does-not-exist

        Schöne Grüße
    """)

    parsed = parse_email(raw)

    assert parsed.text == "Schöne Grüße"
    assert (parsed.from_name, parsed.subject) == ("Jürgen", "Grüße schön")


def test_recipients_include_delivery_headers_deduplicated() -> None:
    raw = crlf("""
        Delivered-To: Reply+X@reply.example.com
        X-Original-To: reply+x@reply.example.com
        From: a@example.net
        To: undisclosed-recipients:;
        Cc: "B" <b@example.net>, c@example.net
        Message-ID: no-brackets@example.net
        References: <one@x> <two@x>
         <one@x>

        hi
    """)

    parsed = parse_email(raw)

    assert parsed.to_addresses == ("b@example.net", "c@example.net", "Reply+X@reply.example.com")
    assert parsed.message_id == "no-brackets@example.net"
    assert parsed.references == ("one@x", "two@x")


def test_broken_rfc2231_parameters_do_not_break_parsing() -> None:
    raw = crlf("""
        From: a@example.net
        Content-Type: multipart/mixed; boundary=y

        --y
        Content-Type: text/plain; charset*=utf-8''utf-8; charset*0=x

        héllo
        --y--
    """)

    assert parse_email(raw).text == "héllo"


def test_deeply_nested_comments_in_addresses_are_ignored() -> None:
    raw = b"From: " + b"(" * 5000 + b"\r\nTo: " + b"(" * 5000 + b"\r\n\r\nhi\r\n"

    parsed = parse_email(raw)

    assert (parsed.from_address, parsed.to_addresses, parsed.text) == ("", (), "hi")


def test_a_huge_line_in_a_bounce_is_read_in_linear_time() -> None:
    raw = b"From: MAILER-DAEMON@example.org\r\n\r\n550 " + b"a" * 1_000_000 + b"\r\n"

    assert parse_email(raw).dsn.recipients == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"just some text\nover lines\n",
        b'{"json": true}',
    ],
)
def test_bytes_that_are_not_a_message_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedEmail):
        parse_email(raw)


def test_mangled_messages_never_raise_anything_else() -> None:
    fixtures = [GMAIL_REPLY, OUTLOOK_REPLY, FRENCH_REPLY, POSTFIX_DSN, EXIM_DSN, PLAIN_TEXT_BOUNCE, QMAIL_BOUNCE]
    rng = random.Random(1234)
    for _ in range(400):
        data = bytearray(rng.choice(fixtures))
        for _ in range(rng.randint(1, 20)):
            if not data:
                break
            position = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[position] = rng.randrange(256)
            else:
                del data[position : position + rng.randint(1, 200)]
        try:
            parse_email(bytes(data))
        except MalformedEmail:
            pass


def test_deeply_nested_multipart_is_parsed_or_refused() -> None:
    head = b"From: a@example.net\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    body = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(200))

    try:
        parsed = parse_email(head + body + b"--b200\r\nContent-Type: text/plain\r\n\r\ndeep\r\n")
    except MalformedEmail:
        return
    assert parsed.from_address == "a@example.net"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("reply+t0k3n@reply.example.com", "t0k3n"),
        ("Acme <REPLY+T0k3n@Reply.Example.com>", "T0k3n"),
        ("reply+@reply.example.com", None),
        ("reply+t0k3n@other.example.com", None),
        ("support@reply.example.com", None),
        ("not an address", None),
    ],
)
def test_reply_address_token(address: str, expected: str | None) -> None:
    assert reply_address_token(address, domain="reply.example.com") == expected
