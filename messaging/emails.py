"""What every email carries beyond its merged template: the one-click unsubscribe and the
sender's postal address (docs/email.md).

* ``List-Unsubscribe`` with an HTTPS link and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
  (RFC 8058): a mailbox provider's "unsubscribe" button POSTs to the link, no page, no login.
  Gmail and Yahoo require both of bulk senders since 2024.
* The same link at the foot of the text and HTML parts, for a person reading the message.
* The business unit's postal address at the foot (CAN-SPAM, 15 U.S.C. 7704(a)(5)).

The link names the message by its id, signed with the site's secret (``django.core.signing``,
salted for this one use): a forged or altered link is refused, and the unsubscribe's evidence
is the very message it came from. The token never expires: CAN-SPAM wants the link to work for
at least 30 days, and an old email's link still works years later.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from django.conf import settings
from django.core import signing

UNSUBSCRIBE_PATH = "/email/unsubscribe/"
_SALT = "pcsms.email.unsubscribe"


def unsubscribe_token(message_id: int) -> str:
    return signing.dumps(message_id, salt=_SALT, compress=False)


def unsubscribe_message_id(token: str) -> int | None:
    """The message id a token names, or None for a forged, altered or garbled one."""
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def unsubscribe_url(message_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}{UNSUBSCRIBE_PATH}{unsubscribe_token(message_id)}/"


@dataclass(frozen=True, slots=True)
class Footer:
    text: str
    html: str


def footer(*, business_name: str, postal_address: str, url: str) -> Footer:
    """The foot of an email: who sent it, where they are, and the unsubscribe link."""
    lines = [line.strip() for line in postal_address.splitlines() if line.strip()]
    who = ", ".join([business_name.strip(), *lines] if business_name.strip() else lines)
    text = f"\n\n--\n{who}\nUnsubscribe: {url}\n"
    html = (
        '\n<hr><p style="font-size:12px;color:#666">'
        f"{escape(who)}<br>"
        f'<a href="{escape(url)}">Unsubscribe</a></p>\n'
    )
    return Footer(text=text, html=html)


def with_footer(html_body: str, foot: Footer) -> str:
    """The HTML part with the footer before ``</body>`` when it has one, else at its end."""
    lower = html_body.lower()
    at = lower.rfind("</body>")
    if at < 0:
        return html_body + foot.html
    return html_body[:at] + foot.html + html_body[at:]


def unsubscribe_headers(url: str) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
