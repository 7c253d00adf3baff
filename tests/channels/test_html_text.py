"""html_to_text on the kind of HTML email templates produce."""

from __future__ import annotations

import pytest

from ccm.channels.html_text import html_to_text

RECEIPT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Your receipt</title>
<style type="text/css">body { margin: 0 } .button { color: #fff }</style>
<!--[if mso]><style>td { font-family: Arial }</style><![endif]-->
</head>
<body style="margin:0">
<table width="100%" role="presentation"><tr><td align="center">
  <table width="600"><tr><td><a href="https://acme.example.com"><img src="logo.png" alt="Acme Inc."></a></td></tr>
  <tr><td>
    <h1>Thanks for your order, J&eacute;r&ocirc;me!</h1>
    <p>We&rsquo;ve received your order   <strong>#1234</strong>.
       It will ship soon.</p>
    <p>Items:</p>
    <ul><li>Green mug &times; 2</li><li><p>Blue   plate</p></li></ul>
    <table><tr><th>Item</th><th>Price</th></tr><tr><td>Mug</td><td>&euro;25.00</td></tr></table>
    <p>Track it here: <a href="https://acme.example.com/track/1234">Track order</a><br>
    Or visit <a href="https://acme.example.com/">acme.example.com</a>.</p>
    <hr>
    <p class="footer">Acme Inc., 1 Road<br/>Springfield &amp; Co.<br>
    <a href="mailto:help@acme.example.com">help@acme.example.com</a> &middot;
    <a href="https://acme.example.com/unsubscribe?u=1&amp;t=2">Unsubscribe</a></p>
  </td></tr></table>
</td></tr></table>
<script>alert("x")</script>
</body></html>
"""

RECEIPT_TEXT = """Acme Inc. (https://acme.example.com)

Thanks for your order, Jérôme!

We’ve received your order #1234. It will ship soon.

Items:

- Green mug × 2
- Blue plate

Item Price
Mug €25.00

Track it here: Track order (https://acme.example.com/track/1234)
Or visit acme.example.com.

Acme Inc., 1 Road
Springfield & Co.
help@acme.example.com · Unsubscribe (https://acme.example.com/unsubscribe?u=1&t=2)"""

NEWSLETTER = """<html><head><style>@media (max-width:600px){ .col { width:100% } }</style></head>
<body>
<div style="display:none;max-height:0">This week: new arrivals&nbsp;&zwnj;&nbsp;&zwnj;&nbsp;&#847;</div>
<table><tr><td class="col">
  <h2>New   arrivals</h2>
  <div>Spring collection is here.</div>
  <div><a href="https://shop.example.com/new" style="color:#fff">Shop&nbsp;now &rarr;</a></div>
</td><td class="col">
  <h2>Sale</h2>
  <ol><li>Shirts &ndash; 20% off</li>
      <li>Shoes &ndash; 30% off
      <li>Hats</ol>
</td></tr></table>
<p>You get this email because you signed up at <a href="https://shop.example.com">shop.example.com</a>.<br><br><br><br>
<a href="#top">Back to top</a></p>
</body></html>
"""

NEWSLETTER_TEXT = """This week: new arrivals

New arrivals

Spring collection is here.
Shop now → (https://shop.example.com/new)

Sale

- Shirts – 20% off
- Shoes – 30% off
- Hats

You get this email because you signed up at shop.example.com.

Back to top"""


def test_receipt_email():
    assert html_to_text(RECEIPT) == RECEIPT_TEXT


def test_newsletter_email():
    assert html_to_text(NEWSLETTER) == NEWSLETTER_TEXT


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<head><title>T</title><style>p{}</style></head><p>Body</p><script>var x = '<p>';</script>", "Body"),
        ("<head><title>Unclosed head<body><p>Body</p>", "Body"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<div><div><p>Nested</p></div></div><div>Next</div>", "Nested\n\nNext"),
        ("line one<br>line two<br/>line three", "line one\nline two\nline three"),
        ("a<br><br><br><br><br>b", "a\n\nb"),
        ("<h1>Title</h1>Text", "Title\n\nText"),
        ("<ul><li>one<li>two</ul>after", "- one\n- two\n\nafter"),
        ("<p>Before</p><hr><p>After</p>", "Before\n\nAfter"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d"),
        ("<p>  lots \n\t of   space  </p>", "lots of space"),
        ("<p>trailing   </p>\n   <p>   leading</p>", "trailing\n\nleading"),
        ("&lt;tag&gt; &amp; &quot;q&quot; &#8364; &#x20AC; &nbsp;x", '<tag> & "q" € € x'),
        ("", ""),
        ("plain text, no tags", "plain text, no tags"),
    ],
    ids=[
        "hidden-elements",
        "unclosed-head",
        "paragraphs",
        "nested-blocks",
        "br",
        "many-br",
        "heading",
        "list",
        "hr",
        "table",
        "whitespace",
        "trailing-spaces",
        "entities",
        "empty",
        "no-tags",
    ],
)
def test_structure(html, text):
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<a href="https://x.example/a">Read more</a>', "Read more (https://x.example/a)"),
        ('<a href="https://x.example/a">https://x.example/a</a>', "https://x.example/a"),
        ('<a href="https://x.example/">x.example</a>', "x.example"),
        ('<a href="mailto:help@x.example">help@x.example</a>', "help@x.example"),
        ('<a href="mailto:help@x.example">Contact us</a>', "Contact us (mailto:help@x.example)"),
        ('<a href="#section">Jump</a>', "Jump"),
        ('<a href="javascript:void(0)">Click</a>', "Click"),
        ("<a>No href</a>", "No href"),
        ('<a href="https://x.example/?a=1&amp;b=2">Go</a>', "Go (https://x.example/?a=1&b=2)"),
        ('<a href="https://x.example/p"><img src="b.png" alt="Buy"></a>', "Buy (https://x.example/p)"),
        ('<a href="https://x.example/p"><img src="b.png"></a>', "https://x.example/p"),
        ('<img src="a.png" alt="Logo"> <img src="spacer.gif">', "Logo"),
    ],
    ids=[
        "text-and-href",
        "same-as-href",
        "href-without-scheme",
        "mailto-duplicate",
        "mailto-text",
        "anchor",
        "javascript",
        "no-href",
        "escaped-href",
        "image-link",
        "image-without-alt",
        "images",
    ],
)
def test_links_and_images(html, text):
    assert html_to_text(html) == text


def test_no_line_has_trailing_spaces_or_double_blank_lines():
    text = html_to_text(RECEIPT + NEWSLETTER)
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "\n\n\n" not in text
