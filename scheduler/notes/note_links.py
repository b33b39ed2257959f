"""Links in HTML notes: the business's addresses become links, what customers wrote never does.

Rules:
- `links` makes each http(s) address in a piece of HTML a link; text not yet marked safe is
  escaped first, and punctuation ending a sentence stays out of the link.
- In an HTML note, every value printed from the context (`{{ customer.name }}`, an order's
  description, an attribute, a referred friend's name) is escaped and *defused*: the `:` of its
  `://` is written `&#58;` (a browser shows the same text), so `links` cannot find an address
  in it, whichever block or macro it passes through on the way. An address a customer typed
  into their name stays text, never a link to someone's site in the business's name.
- The business's own values are exempt: the context builder marks them `BusinessText` (the
  review and unsubscribe links, the business's name and sender), so `links` links them.
- The template's own text is not a printed value: an address written in a template is linked.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

URL = re.compile(r"https?://(?:[^\s<>\"'&]|&amp;)+")
"""An address in escaped text: it ends at a space, a quote, a tag or an entity other than &amp;"""
DEFUSED_SCHEME = "&#58;//"
"""What `://` becomes in a printed value: the same text on screen, no address to `links`."""


class BusinessText(str):
    """Text the business wrote itself (its name, its review and unsubscribe links): printed as
    it is in an HTML note, and linked by `links`. Anything derived from it (`~`, a filter) is
    plain text again."""

    __slots__ = ()


def defused(value: Any) -> Markup:
    """`value` escaped for HTML, with no `://` left for `links` to find. Markup (the output of
    a block, a macro or a filter that escaped already) and BusinessText pass through."""
    if isinstance(value, Markup):
        return value
    escaped = escape(value)
    if isinstance(value, BusinessText) or "://" not in escaped:
        return escaped
    return Markup(str(escaped).replace("://", DEFUSED_SCHEME))  # noqa: S704 - escaped


def links(value: Any) -> Markup:
    """Text with each http(s) address made a link (see the module's rules)."""
    return Markup(URL.sub(_link, str(escape(value))))  # noqa: S704 - escaped text, fixed tags


def html_links(value: Any) -> Markup:
    """The `links` filter of HTML notes: a value handed to it straight from the context is
    defused first (`{{ customer.website | links }}` links nothing); Markup, the business's own
    text and the template's own text are linked."""
    if not isinstance(value, Markup | BusinessText):
        value = defused(value)
    return links(value)


def _link(match: re.Match[str]) -> str:
    url = match.group()
    trail = ""
    while url and (url[-1] in ".,;:!?" or (url[-1] == ")" and "(" not in url)):
        url, trail = url[:-1], url[-1] + trail
    return f'<a href="{url}">{url}</a>{trail}'
