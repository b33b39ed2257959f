"""The words of an HTML-only reply, in time proportional to its size.

Rules:
- What a browser would not show goes: `<head>`, `<style>` and `<script>` with what they hold,
  comments, and declarations and processing instructions (`<!DOCTYPE>`, `<?xml?>`). An
  element or comment that is never closed hides the rest of the part.
- A tag is `<`, a name, and anything but `<` and `>` up to the next `>`. A `<` that starts no
  such tag is text, as a browser shows it (`a < b`); so is an attribute value holding `<`,
  which no mail program writes unescaped.
- Character references are read (`&amp;`, `&#233;`), white space is as HTML shows it (a run of
  it is one space), a block's start and end make a line break, and a quotation starts `> `.
- Every step finds what it looks for with one forward search, so the time is linear in the
  part's size. (Python's HTMLParser takes time quadratic in markup that never closes: 24,000
  characters of `<a ` took 7.8 s on a 2 vCPU machine, the 256 KB read of a part would take
  about 15 minutes.)
"""

from __future__ import annotations

import re
from html import unescape

__all__ = ["html_text"]

_HIDDEN_OPENING = re.compile(r"<(head|style|script)(?=[\s/>])|<!--", re.IGNORECASE)
_CLOSINGS = {
    "head": re.compile(r"</head\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
}
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/<>]*+)[^<>]*+>|<[!?][^<>]*+>")
"""Possessive (`*+`): a name or a tag that does not end in `>` is given up at once, never
retried shorter (which took time quadratic in a long name)."""
_BREAKS = frozenset({"br", "p", "div", "tr", "li", "blockquote", "h1", "h2", "h3"})
_WHITE_SPACE = re.compile(r"\s+")


def html_text(html: str) -> str:
    """The visible text of an HTML part (see the module's rules)."""
    markup = shown_markup(html)
    chunks: list[str] = []
    position = 0
    for tag in _TAG.finditer(markup):
        if tag.start() > position:
            chunks.append(_text(markup[position : tag.start()]))
        position = tag.end()
        name = (tag.group(2) or "").lower()
        if name in _BREAKS:
            chunks.append("\n")
            if name == "blockquote" and not tag.group(1):
                chunks.append("> ")
    chunks.append(_text(markup[position:]))
    return "".join(chunks)


def shown_markup(html: str) -> str:
    """`html` without its head, styles, scripts and comments (one forward pass)."""
    kept: list[str] = []
    position = 0
    while (opening := _HIDDEN_OPENING.search(html, position)) is not None:
        kept.append(html[position : opening.start()])
        name = opening.group(1)
        if name is None:
            end = html.find("-->", opening.end())
            position = -1 if end < 0 else end + 3
        else:
            closing = _CLOSINGS[name.lower()].search(html, opening.end())
            position = -1 if closing is None else closing.end()
        if position < 0:
            return "".join(kept)
    kept.append(html[position:])
    return "".join(kept)


def _text(data: str) -> str:
    return _WHITE_SPACE.sub(" ", unescape(data))
