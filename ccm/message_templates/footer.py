"""The footer every marketing email ends with (CAN-SPAM): the sender's postal address and a visible
unsubscribe link, in the HTML and in the text part.

The renderer adds it after the template and its layout have rendered, so a template that
overrides its layout's footer block, includes no footer partial or extends no layout at all still
carries both. It is styled inline (shown the same whatever the template's stylesheet says) and
goes just before the document's last ``</body>``, or at the end of a fragment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_VISIBLE = "visibility:visible!important;opacity:1!important"
_SHOWN = f"display:block!important;{_VISIBLE}"
_BOX = (
    f"{_SHOWN};max-width:560px;margin:16px auto 0;padding:0 16px;text-align:center;"
    "font-family:Helvetica,Arial,sans-serif;font-size:13px;line-height:20px;color:#52606d"
)
FOOTER_CLASS = "ccm-marketing-footer"


@dataclass(frozen=True)
class MarketingFooter:
    """What a marketing email must show: ``postal_address`` (several lines allowed) and the
    ``unsubscribe_url`` its List-Unsubscribe header names too."""

    postal_address: str
    unsubscribe_url: str

    def html(self) -> str:
        """The footer as an HTML block."""
        lines = "<br>".join(escape(line.strip()) for line in self.postal_address.strip().splitlines() if line.strip())
        link_style = f"display:inline!important;{_VISIBLE};color:#52606d;text-decoration:underline"
        link = f'<a href="{escape(self.unsubscribe_url)}" style="{link_style}">'
        return (
            f'<div class="{FOOTER_CLASS}" style="{_BOX}">'
            f'<p style="{_SHOWN};margin:0 0 8px">{lines}</p>'
            f'<p style="{_SHOWN};margin:0">{link}Unsubscribe</a></p></div>'
        )

    def add_to_html(self, html: str) -> str:
        """``html`` with the footer before its last ``</body>`` (else at its end). A comment the
        template left open is closed first, so that it cannot swallow the footer."""
        ends = list(_BODY_END.finditer(html))
        at = ends[-1].start() if ends else len(html)
        head, tail = html[:at], html[at:]
        if head.rfind("<!--") > head.rfind("-->"):
            head += "-->"
        return f"{head}{self.html()}{tail}"

    def add_to_text(self, text: str) -> str:
        """``text`` followed by the address and the unsubscribe link, below a signature line."""
        address = "\n".join(line.strip() for line in self.postal_address.strip().splitlines() if line.strip())
        return f"{text.rstrip()}\n\n-- \n{address}\nUnsubscribe: {self.unsubscribe_url}\n"
