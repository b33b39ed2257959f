"""What a row of `reviews` may hold, checked the same way by the importer (on the way in) and
by the notes (on the way out: the business's own app may have written the row).

- url: an absolute `http://` or `https://` address with a host, at most URL_LENGTH
  characters, without spaces, control characters or a user name/password part (`https://x@y`
  is how a link hides where it goes). Anything else (`javascript:`, `mailto:`, a relative
  path) is no address of a review. A review's address is never turned into a link in a note.
- rating: whole stars, 1 to 5. Google, Yelp, Facebook and Trustpilot rate in whole stars; a
  half star (`4.5`) is not guessed at. Written `4`, `4.0` or `4/5`.
- text: at most REVIEW_TEXT_LENGTH characters (a longer one is cut there by an import).
- site (the CSV's `where`): at most 64 characters.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from scheduler.store.models import REVIEW_TEXT_LENGTH, URL_LENGTH

__all__ = [
    "REVIEW_TEXT_LENGTH",
    "excerpt",
    "read_rating",
    "safe_url",
    "stored_rating",
    "url_problem",
]

_RATING = re.compile(r"([0-9])(?:\.0+)?(?:\s*/\s*5)?")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
EXCERPT_LENGTH = 200
"""A template's `review.excerpt` is at most about this many characters."""


def url_problem(text: str) -> str | None:
    """Why `text` is not a review's web address, or None when it is one."""
    if len(text) > URL_LENGTH:
        return f"is longer than {URL_LENGTH} characters"
    if _UNSAFE.search(text):
        return "is not a web address (it has spaces or control characters)"
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return "is not a web address"
    problems = (
        (parts.scheme.lower() not in ("http", "https"), "is not an http:// or https:// address"),
        (not host, "has no host name"),
        ("@" in parts.netloc, "carries a user name (an address that hides where it goes)"),
    )
    return next((why for failed, why in problems if failed), None)


def safe_url(value: object) -> str | None:
    """`value` when it is a good review address (see `url_problem`), else None."""
    if isinstance(value, str) and url_problem(value) is None:
        return value
    return None


def read_rating(text: str) -> int | None:
    """Whole stars from `4`, `4.0` or `4/5`; None when `text` is no rating from 1 to 5."""
    match = _RATING.fullmatch(text.strip())
    if match is None:
        return None
    stars = int(match[1])
    return stars if 1 <= stars <= 5 else None


def stored_rating(value: object) -> int | None:
    """A stored rating from 1 to 5, else None (the app may have written anything)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    return None


def excerpt(text: str, length: int = EXCERPT_LENGTH) -> str:
    """The start of `text` on one line: whitespace runs as one space, cut at a word boundary
    before `length` characters, with "..." when cut."""
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    cut = flat[:length].rsplit(" ", 1)[0] if " " in flat[:length] else flat[:length]
    return cut.rstrip(" ,;:.-") + "..."
