"""Each note as an email message: bytes ready for SMTP DATA, written by hand and then checked.

Building an `email.message.EmailMessage` per note costs milliseconds; this writes the same
standard message (RFC 5322, MIME per RFC 2045-2047, RFC 6532 only for a non-ASCII local part,
RFC 8058 one-click unsubscribe) with string joins and `binascii`, in tens of microseconds.

Headers: From, To, Reply-To (when set), Subject, Date, Message-ID, List-Unsubscribe (https URL
first, then mailto) and List-Unsubscribe-Post (only with an https URL), MIME-Version,
Content-Type, and Content-Transfer-Encoding for a text-only note (each part has its own).
- Names and the subject go through `clean_header_text`. Printable ASCII is written as is (a
  name as atoms, else as a quoted string), folded at spaces to 78 columns. Anything else
  (non-ASCII, a word containing "=?", a word too long to fold) is written whole as RFC 2047
  encoded words: UTF-8, "Q" or "B" whichever is shorter, at most 75 characters each, on lines
  of at most 76, never splitting a character. So text that looks like an encoded word decodes
  to exactly what was typed, never to a line break. A display name too long for one encoded
  word is split between characters as RFC 2047 says; Python's own parser (3.11) then shows a
  space at each split, as it does for the stdlib's output.
- Addresses: exactly one, checked by `normalize_address`; an internationalised domain is
  written as punycode (IDNA 2008, as email-validator computes it) in headers and envelope; a
  non-ASCII local part stays UTF-8 in the headers (RFC 6532) and sets `smtputf8`.
- Bodies: CRLF, CR and LF all become CRLF and a final line break is added when missing (so a
  part decodes to the text with "\\n" line ends and a final "\\n"). 7bit when ASCII with lines
  of at most 78 characters, no control characters and no trailing white space; else
  quoted-printable, or base64 when that is shorter (non-Latin scripts). An empty `html` counts
  as none. With html: multipart/alternative, text first, a random boundary found in neither.
- Empty `reply_to`, `unsubscribe_url` and `unsubscribe_mailto` count as unset.
- `build_message` ends by running `check_serialized_headers` on its own output.
Only the sender's lines (From, Reply-To, the unsubscribe mailto) are cached, by sender.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email

from scheduler.addresses import InvalidAddress, normalize_address
from scheduler.notes.header_safety import (
    UnsendableMessage,
    check_serialized_headers,
    clean_header_text,
)

__all__ = [
    "BuiltMessage",
    "MessageParts",
    "UnsendableMessage",
    "build_message",
    "check_serialized_headers",
    "clean_header_text",
    "make_message_id",
]


@dataclass(frozen=True, slots=True)
class MessageParts:
    """What a note says and to whom; `build_message` makes it a message."""

    from_name: str
    from_address: str
    to_name: str
    to_address: str
    reply_to: str | None
    subject: str
    text: str
    html: str | None
    message_id: str
    """`<...@domain>`, as made by `make_message_id`."""
    date: datetime
    """Aware; written with its own UTC offset."""
    unsubscribe_url: str | None
    """An https URL: List-Unsubscribe, and List-Unsubscribe-Post for one click."""
    unsubscribe_mailto: str | None
    """An address: `<mailto:address?subject=unsubscribe>` in List-Unsubscribe."""


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """A message ready for SMTP: its header block, its bytes and its envelope."""

    headers: str
    """The header block as sent: CRLF line ends, no trailing empty line."""
    data: bytes
    """The whole message, CRLF line ends, ready for DATA (before dot-stuffing)."""
    smtputf8: bool
    """True when the headers hold a UTF-8 address (a non-ASCII local part)."""
    mail_from: str
    rcpt_to: str
    message_id: str


_LINE = 78
_EW_LINE = 76
_EW_MAX = 75
_EW_OVERHEAD = len("=?utf-8?q??=")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_MAP = {b: chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)}
"""RFC 2047 "Q" for a phrase (the strictest rule, fine for the subject too), byte by byte."""
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATOMS = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*")
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_MESSAGE_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_DOMAIN = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_URL = re.compile(r"https://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+;=%]+")
_URL_SAFE = "-._~:/?#[]@!$&'()*+;=%"
"""What a URL may hold as is, but the comma, which RFC 2369 wants encoded in List-Unsubscribe."""
_MAILTO_SAFE = "!$'*+-._~"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ONE_CLICK = "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


_KEY = secrets.token_bytes(32)
_COUNTER = itertools.count()


def unguessable_hex(size: int) -> str:
    """`2 * size` hex digits nobody can guess or repeat: a keyed BLAKE2b of a counter, the key
    drawn once per process from the operating system. The same strength as drawing them each
    time, without a system call per note (which lets the event loop take the interpreter, and
    the writing thread then waits to get it back)."""
    counter = next(_COUNTER).to_bytes(8, "big")
    return hashlib.blake2b(counter, key=_KEY, digest_size=size).hexdigest()


def make_message_id(domain: str) -> str:
    """A new Message-ID, `<32 random hex digits@domain>`; an internationalised domain is
    written as punycode. Raises `UnsendableMessage` for a domain that is not one."""
    host = domain.strip().lower()
    if not host.isascii():
        host = _ascii_domain(host, f"postmaster@{host}")
    if not _DOMAIN.fullmatch(host):
        raise UnsendableMessage(f"{domain!r} is not a domain name for a Message-ID")
    return f"<{unguessable_hex(16)}@{host}>"


def build_message(parts: MessageParts) -> BuiltMessage:
    """`parts` as a message (see the module's rules); raises `UnsendableMessage` with the
    reason for an unusable address, Message-ID, date or unsubscribe URL."""
    sender = _sender(
        parts.from_name,
        parts.from_address,
        parts.reply_to or None,
        parts.unsubscribe_mailto or None,
    )
    rcpt_to = _address(parts.to_address, "recipient")
    names = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
    lines = [
        sender.from_line,
        _address_line("To", clean_header_text(parts.to_name), rcpt_to),
        sender.reply_line,
        _unstructured_line("Subject", clean_header_text(parts.subject)),
        f"Date: {_date(parts.date)}\r\nMessage-ID: {_message_id(parts.message_id)}\r\n",
    ]
    if sender.reply_line:
        names.append("Reply-To")
    if parts.unsubscribe_url or sender.mailto:
        lines.append(_list_unsubscribe(parts.unsubscribe_url or None, sender.mailto))
        names.append("List-Unsubscribe")
        if parts.unsubscribe_url:
            lines.append(_ONE_CLICK)
            names.append("List-Unsubscribe-Post")
    text_encoding, text = _body(parts.text)
    if parts.html:
        html_encoding, html = _body(parts.html)
        boundary = _boundary(text, html)
        lines.append(
            f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n'
        )
        delimiter = f"--{boundary}\r\n"
        body = [
            f"\r\n{delimiter}Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {text_encoding}\r\n\r\n".encode(),
            text,
            f"\r\n{delimiter}Content-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {html_encoding}\r\n\r\n".encode(),
            html,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    else:
        lines.append(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {text_encoding}\r\n"
        )
        names.append("Content-Transfer-Encoding")
        body = [b"\r\n", text]
    headers = "".join(lines)
    data = b"".join([headers.encode(), *body])
    check_serialized_headers(data, expected=names)
    return BuiltMessage(
        headers, data, not headers.isascii(), sender.mail_from, rcpt_to, parts.message_id
    )


# Addresses ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sender:
    from_line: str
    reply_line: str
    mail_from: str
    mailto: str | None
    """`<mailto:...?subject=unsubscribe>`, for List-Unsubscribe."""


@lru_cache(maxsize=64)
def _sender(name: str, address: str, reply_to: str | None, mailto: str | None) -> _Sender:
    """The sender's lines, made once per sender (nothing of a customer's is kept here)."""
    mail_from = _address(address, "sender")
    reply_line = f"Reply-To: {_address(reply_to, 'Reply-To')}\r\n" if reply_to else ""
    unsubscribe = None
    if mailto:
        local, _, domain = _address(mailto, "unsubscribe").rpartition("@")
        unsubscribe = f"<mailto:{quote(local, safe=_MAILTO_SAFE)}@{domain}?subject=unsubscribe>"
    return _Sender(
        _address_line("From", clean_header_text(name), mail_from),
        reply_line,
        mail_from,
        unsubscribe,
    )


def _address(value: str, role: str) -> str:
    """`value` as exactly one address, its domain in ASCII (punycode); the local part as
    written (UTF-8 when non-ASCII)."""
    try:
        address = normalize_address(value)
    except InvalidAddress as error:
        raise UnsendableMessage(f"the {role} address {value!r} {_why(value, error)}") from None
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{_ascii_domain(domain, address)}"


def _why(value: str, error: InvalidAddress) -> str:
    if "<" in value or ">" in value:
        return "has a display name or angle brackets: give the bare address"
    if "," in value or ";" in value:
        return "is a list: give exactly one address"
    return f"is not valid: {error}"


def _ascii_domain(domain: str, address: str) -> str:
    if domain.isascii():
        return domain
    try:
        return validate_email(address, check_deliverability=False).ascii_domain
    except EmailNotValidError as error:
        raise UnsendableMessage(f"the domain {domain!r} is not valid: {error}") from None


def _message_id(value: str) -> str:
    if not _MESSAGE_ID.fullmatch(value) or len(value) > 250:
        raise UnsendableMessage(f"{value!r} is not a Message-ID like <id@domain>")
    return value


@lru_cache(maxsize=16)
def _date(moment: datetime) -> str:
    """RFC 5322 date-time with the moment's own offset (UTC when it has seconds). Cached: the
    notes of one claim are all dated with the same moment."""
    offset = moment.utcoffset()
    if offset is None:
        raise UnsendableMessage("the date has no time zone (a naive datetime)")
    if offset % timedelta(minutes=1):
        moment, offset = moment.astimezone(UTC), timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    hours, minutes = divmod(abs(minutes), 60)
    sign = "-" if offset < timedelta(0) else "+"
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f"{sign}{hours:02d}{minutes:02d}"
    )


def _list_unsubscribe(url: str | None, mailto: str | None) -> str:
    items = [f"<{_https_url(url)}>"] if url else []
    if mailto:
        items.append(mailto)
    line = f"List-Unsubscribe: {', '.join(items)}"
    if len(line) > _LINE and len(items) == 2:
        line = f"List-Unsubscribe: {items[0]},\r\n {items[1]}"
    return line + "\r\n"


def _https_url(url: str) -> str:
    """The URL as is when it is plain https; characters a URL cannot hold (spaces, quotes,
    angle brackets, controls, non-ASCII) and commas (RFC 2369) percent-encoded."""
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise UnsendableMessage(f"the unsubscribe URL {url!r} must start with https://")
    if _URL.fullmatch(url):
        return url
    return quote(url, safe=_URL_SAFE)


# Header text ----------------------------------------------------------------------------------


def _unstructured_line(name: str, text: str) -> str:
    """`name: text` (text already cleaned), literal when ASCII and foldable, else encoded."""
    if not text:
        return f"{name}:\r\n"
    if text.isascii() and "=?" not in text:
        line = f"{name}: {text}"
        if len(line) <= _LINE:
            return line + "\r\n"
        folded = _fold(f"{name}:", text.split(" "))
        if folded:
            return "\r\n".join(folded) + "\r\n"
    words = _encoded_words(text, _EW_LINE - len(name) - 2)
    return f"{name}: " + "\r\n ".join(words) + "\r\n"


def _fold(head: str, words: list[str]) -> list[str] | None:
    """`head` and `words` on lines of at most 78, folded at spaces; None when a word will not
    fit."""
    lines = []
    current = head
    for word in words:
        if len(current) + len(word) < _LINE:
            current = f"{current} {word}"
        elif current == head or len(word) >= _LINE:
            return None
        else:
            lines.append(current)
            current = f" {word}"
    lines.append(current)
    return lines


def _address_line(name: str, display: str, address: str) -> str:
    """`name: display <address>` (display already cleaned), or the bare address."""
    if not display:
        return f"{name}: {address}\r\n"
    angle = f"<{address}>"
    if display.isascii() and "=?" not in display:
        phrase = display if _ATOMS.fullmatch(display) else _quoted(display)
        if len(name) + len(phrase) + len(angle) < _LINE - 2:
            return f"{name}: {phrase} {angle}\r\n"
        lines = _fold(f"{name}:", phrase.split(" "))  # FWS may go between atoms, or in quotes
        if lines:
            fold = " " if len(lines[-1]) + len(angle) < _LINE else "\r\n "
            return "\r\n".join(lines) + f"{fold}{angle}\r\n"
    head, start = f"{name}: ", len(name) + 2
    words = _encoded_words(display, _EW_MAX)
    if len(words) > 1:
        words = _encoded_words(display, _EW_LINE - start)
    elif start + len(words[0]) > _EW_LINE:
        head, start = f"{name}:\r\n ", 1  # one encoded word on a line of its own, not two
    last = len(words[-1]) + (start if len(words) == 1 else 1)
    fold = " " if last + 1 + len(angle) <= _EW_LINE else "\r\n "
    return head + "\r\n ".join(words) + fold + angle + "\r\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encoded_words(text: str, room: int) -> list[str]:
    """`text` as encoded words, the first at most `room` characters long, the others 75."""
    data = text.encode()
    quoted = data.decode("latin-1").translate(_Q_MAP)
    if len(quoted) <= (len(data) + 2) // 3 * 4:
        return _q_words(quoted, room)
    return _b_words(data, room)


def _q_words(quoted: str, room: int) -> list[str]:
    words = []
    start = 0
    while len(quoted) - start > room - _EW_OVERHEAD:
        cut = start + room - _EW_OVERHEAD
        escape = quoted.rfind("=", cut - 2, cut)
        if escape >= 0:
            cut = escape
        while quoted[cut] == "=" and quoted[cut + 1] in "89AB":
            cut -= 3  # a UTF-8 continuation byte: keep the character whole
        words.append(f"=?utf-8?q?{quoted[start:cut]}?=")
        start, room = cut, _EW_MAX
    words.append(f"=?utf-8?q?{quoted[start:]}?=")
    return words


def _b_words(data: bytes, room: int) -> list[str]:
    words = []
    start = 0
    while (end := start + (room - _EW_OVERHEAD) // 4 * 3) < len(data):
        while 0x80 <= data[end] < 0xC0:
            end -= 1
        words.append(_b_word(data[start:end]))
        start, room = end, _EW_MAX
    words.append(_b_word(data[start:]))
    return words


def _b_word(chunk: bytes) -> str:
    return f"=?utf-8?b?{binascii.b2a_base64(chunk, newline=False).decode('ascii')}?="


# Bodies ---------------------------------------------------------------------------------------


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, the encoded text with CRLF line ends and a final CRLF)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise UnsendableMessage(
            "the text holds a lone surrogate, which UTF-8 cannot carry"
        ) from None
    if text.isascii():
        if _is_7bit(text):
            return "7bit", data.replace(b"\n", b"\r\n")
        return "quoted-printable", binascii.b2a_qp(data).replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(data)
    lines = encoded.count(b"\n")
    if len(encoded) + lines <= (len(data) + lines + 2) // 3 * 4 * 78 // 76:
        return "quoted-printable", encoded.replace(b"\n", b"\r\n")
    return "base64", _base64(data.replace(b"\n", b"\r\n"))


def _is_7bit(text: str) -> bool:
    """ASCII `text` (LF line ends) that can go as is: lines of at most 78 characters, no control
    character but tab, no white space before a line break (transports may strip it)."""
    lines = text.split("\n")
    return (
        max(map(len, lines)) <= _LINE
        and " \n" not in text
        and "\t\n" not in text
        and "".join(lines).replace("\t", " ").isprintable()
    )


def _base64(data: bytes) -> bytes:
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def _boundary(*parts: bytes) -> str:
    """A random boundary; "=_" can never occur in quoted-printable or base64, and the loop
    makes sure it is in no 7bit part either."""
    while True:
        boundary = f"=_{unguessable_hex(12)}"
        marker = boundary.encode()
        if not any(marker in part for part in parts):
            return boundary
