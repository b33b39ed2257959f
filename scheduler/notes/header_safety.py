"""Header safety: cleaning text meant for a header, and checking the header block as written.

Two defences against header injection (a name or subject that smuggles in a line of its own):
`clean_header_text` takes out of the text every character that could end or break a line
before it is encoded, and `check_serialized_headers` checks the bytes actually produced, so a
mistake in the encoder can only stop a message, never send a forged one. Neither relies on
the `email` package (before Python 3.11.10 it lets some of these through).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Collection

from scheduler.errors import AppreciateError

HEADER_NAMES = frozenset(
    {
        "From",
        "To",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    }
)
"""Every header a note may carry, spelt exactly so."""
REQUIRED_NAMES = frozenset(
    {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
)
MAX_LINE_OCTETS = 998
"""RFC 5322's hard limit for a line, CRLF excluded."""

_TO_SPACE: dict[int, str] = {
    **dict.fromkeys(range(0x20), " "),
    0x7F: " ",
    **dict.fromkeys(range(0x80, 0xA0), " "),
    0x2028: " ",
    0x2029: " ",
    **dict.fromkeys(range(0xD800, 0xE000), "\ufffd"),
}
_BAD_CHARACTER = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (horizontal tab aside) and Unicode line and paragraph separators."""
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")


class UnsendableMessage(AppreciateError):
    """A note that cannot become a safe, standard message; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot build the message: {reason}")


def clean_header_text(value: str) -> str:
    """`value` made fit for a header: the text a reader will see, decoded, in the header.

    Rules: control characters (C0 with tab, CR and LF; DEL; C1 with NEL) and the Unicode line
    and paragraph separators become spaces; every run of white space (any Unicode space,
    no-break space included) becomes one space; leading and trailing spaces go; a lone
    surrogate becomes U+FFFD. Everything else is kept as typed, "=?" included: the encoder
    neutralises encoded-word syntax by always sending a word that contains "=?" inside an
    encoded word of its own, so it decodes to these literal characters, never to a line break.
    """
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return " ".join(value.translate(_TO_SPACE).split())


def check_serialized_headers(data: bytes, *, expected: Collection[str] | None = None) -> None:
    """Raise `UnsendableMessage` unless the header block of `data` is safe to send.

    `data` is a whole message (the block ends at the first empty line) or a header block
    alone. Checks: UTF-8; every line ends with CRLF, with no other CR or LF, no control
    character (tab aside) or Unicode line separator; no line over 998 octets, no line of only
    white space (some servers take it for the end of the headers), no continuation first;
    every other line is one of `HEADER_NAMES`, spelt exactly, at most once; the names are
    exactly `expected` when given, else they include `REQUIRED_NAMES` (and
    List-Unsubscribe-Post comes only with List-Unsubscribe); every RFC 2047 encoded word, in
    any header, decodes (charset known) to text without a line break or control character.
    """
    end = data.find(b"\r\n\r\n")
    block = data if end < 0 else data[: end + 2]
    if not block.endswith(b"\r\n"):
        raise UnsendableMessage("the header block does not end with CRLF")
    try:
        text = block.decode()
    except UnicodeDecodeError:
        raise UnsendableMessage("the headers are not valid UTF-8") from None
    lines = text[:-2].split("\r\n")
    if _BAD_CHARACTER.search(text[:-2].replace("\r\n", "")):
        raise UnsendableMessage(_bad_character_reason(lines))
    names = _header_names(lines, ascii_only=block.isascii())
    _check_names(names, expected)
    if "=?" in text:
        _check_encoded_words(text)


def _bad_character_reason(lines: list[str]) -> str:
    for line in lines:
        found = _BAD_CHARACTER.search(line)
        if found:
            what = "a bare CR or LF" if found[0] in "\r\n" else f"the character {found[0]!r}"
            return f"a header line holds {what}: {line[:60]!r}"
    return "a header line holds a bare CR or LF"  # pragma: no cover - search found one above


def _header_names(lines: list[str], *, ascii_only: bool) -> list[str]:
    names: list[str] = []
    for line in lines:
        size = len(line) if ascii_only else len(line.encode())
        if size > MAX_LINE_OCTETS:
            raise UnsendableMessage(f"a header line is {size} octets long (at most 998)")
        if line[:1] in (" ", "\t"):
            if not names:
                raise UnsendableMessage("the headers start with a continuation line")
            if not line.strip(" \t"):
                raise UnsendableMessage("a header line holds only white space")
            continue
        name, colon, _ = line.partition(":")
        if not colon or name not in HEADER_NAMES:
            raise UnsendableMessage(f"unexpected header line {line[:60]!r}")
        names.append(name)
    return names


def _check_names(names: list[str], expected: Collection[str] | None) -> None:
    seen = set(names)
    if len(seen) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise UnsendableMessage(f"repeated header {', '.join(twice)}")
    if expected is not None:
        if seen != set(expected) or len(names) != len(expected):
            raise UnsendableMessage(
                f"the headers are {sorted(seen)}, expected {sorted(set(expected))}"
            )
        return
    missing = REQUIRED_NAMES - seen
    if missing:
        raise UnsendableMessage(f"missing header {', '.join(sorted(missing))}")
    if "List-Unsubscribe-Post" in seen and "List-Unsubscribe" not in seen:
        raise UnsendableMessage("List-Unsubscribe-Post without List-Unsubscribe")


def _check_encoded_words(text: str) -> None:
    for word in _ENCODED_WORD.finditer(text):
        charset, encoding, payload = word.groups()
        try:
            raw = payload.encode("ascii")
            octets = (
                binascii.a2b_qp(raw, header=True)
                if encoding in "Qq"
                else binascii.a2b_base64(raw, strict_mode=True)
            )
            decoded = octets.decode(charset.partition("*")[0], "replace")
        except (UnicodeEncodeError, binascii.Error, LookupError):
            raise UnsendableMessage(f"malformed encoded word {word[0][:60]!r}") from None
        if _BAD_CHARACTER.search(decoded):
            raise UnsendableMessage(
                f"the encoded word {word[0][:60]!r} decodes to a line break or control character"
            )
