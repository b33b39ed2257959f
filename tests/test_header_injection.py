"""Header injection: no name or subject can add a header line, whatever it holds, and the check
on the serialised header block refuses anything that could."""

from __future__ import annotations

import base64
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.notes.header_safety import check_serialized_headers, clean_header_text
from scheduler.notes.message import BuiltMessage, MessageParts, UnsendableMessage, build_message
from tests.test_message import EXPECTED_NAMES, parts

EVIL_B = base64.b64encode(b"x\r\nBcc: y@evil.example").decode()
HOSTILE = [
    "Thanks\r\nBcc: x@evil.example",
    "Thanks\nBcc: x@evil.example",
    "Thanks\rBcc: x@evil.example",
    "Thanks\r\n\r\nBody: fake",
    "Thanks\r\n Bcc: x@evil.example",
    "Thanks\x00Bcc: x@evil.example",
    "Thanks\x85Bcc: x@evil.example",
    "Thanks\u2028Bcc: x@evil.example",
    "Thanks\u2029Bcc: x@evil.example",
    "Thanks\x0b\x0c\x1c\x1d\x1e\x7fBcc: x@evil.example",
    "=?utf-8?q?Thanks=0ABcc:_x@evil.example?=",
    "=?UTF-8?Q?Thanks=0D=0ABcc:_x@evil.example?=",
    f"=?utf-8?b?{EVIL_B}?=",
    f"Hello =?utf-8?b?{EVIL_B}?= there",
    f"word=?utf-8?b?{EVIL_B}?=",
    "\tThanks\t\tfor\t your order\t",
    "Zoë\r\nBcc: x@evil.example 🎉",
    '"Ann\r\nBcc: x@evil.example" <x@evil.example>',
    "Ann <x@evil.example>, Bcc: y@evil.example",
]


def parse(built: BuiltMessage) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(built.data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_value(built: BuiltMessage, header: str) -> str:
    found = re.search(rf"^{header}:(.*?)\r\n(?! )", built.headers, re.MULTILINE | re.DOTALL)
    assert found
    return found[1]


def encoded_words(built: BuiltMessage, header: str) -> int:
    """How many encoded words the header holds: with more than one in a display name, Python's
    parser (3.11, as for the stdlib's own output) shows a space between them."""
    return header_value(built, header).count("=?")


def rfc2047_display_name(built: BuiltMessage, header: str) -> str:
    """The display name as RFC 2047 decodes it (white space between adjacent encoded words
    dropped, which Python's address parser does not do)."""
    value = header_value(built, header).replace("\r\n", "").strip()
    if not value.endswith(">"):
        return ""
    phrase = value.rpartition(" <")[0].strip()
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    if "=?" in phrase:
        return str(make_header(decode_header(phrase)))
    return phrase


def assert_safe(built: BuiltMessage, subject: str, name: str) -> None:
    message = parse(built)
    assert list(message.keys()) == EXPECTED_NAMES
    assert "Bcc" not in message
    assert not message.is_multipart() or len(list(message.iter_parts())) == 2
    decoded_subject = str(message["Subject"])
    assert "\r" not in decoded_subject
    assert "\n" not in decoded_subject
    assert decoded_subject == clean_header_text(subject)
    customer = message["To"].addresses
    assert len(customer) == 1
    assert customer[0].addr_spec == "zoe@example.com"
    assert rfc2047_display_name(built, "To") == clean_header_text(name)
    assert len(message["From"].addresses) == 1
    for line in built.headers[:-2].split("\r\n"):
        assert len(line) <= 78
        assert line[:1] == " " or line.split(":", 1)[0] in EXPECTED_NAMES


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_subjects_and_names_add_no_header(hostile: str) -> None:
    built = build_message(parts(subject=hostile, to_name=hostile, from_name=hostile))
    assert_safe(built, hostile, hostile)
    assert rfc2047_display_name(built, "From") == clean_header_text(hostile)
    message = parse(built)
    for header in ("From", "To"):
        if encoded_words(built, header) <= 1:
            assert message[header].addresses[0].display_name == clean_header_text(hostile)


def test_encoded_word_syntax_decodes_to_the_literal_characters() -> None:
    typed = "=?utf-8?q?Thanks=0ABcc:_x@evil.example?="
    built = build_message(parts(subject=typed, to_name=typed))
    message = parse(built)
    assert str(message["Subject"]) == typed
    assert message["To"].addresses[0].display_name == typed
    assert typed not in built.headers  # it went inside an encoded word of its own


@given(st.text(), st.text())
def test_any_subject_and_name_make_a_safe_message(subject: str, name: str) -> None:
    built = build_message(parts(subject=subject, to_name=name))
    assert_safe(built, subject, name)
    if encoded_words(built, "To") <= 1:
        assert parse(built)["To"].addresses[0].display_name == clean_header_text(name)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_clean_text_has_no_line_break_and_is_stable(value: str) -> None:
    cleaned = clean_header_text(value)
    assert cleaned == clean_header_text(cleaned)
    assert len(cleaned.splitlines()) <= 1
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", cleaned)


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("Thanks, Ann!", "Thanks, Ann!"),
        ("  Thanks\r\n\tAnn  ", "Thanks Ann"),
        ("a\x00b\x85c\u2028d\u2029e\x7ff", "a b c d e f"),
        ("no\u00a0break\u3000spaces", "no break spaces"),
        ("lone \udc80 surrogate", "lone \ufffd surrogate"),
        ("=?utf-8?q?x?=", "=?utf-8?q?x?="),
        ("Zoë 👩\u200d👩\u200d👧", "Zoë 👩\u200d👩\u200d👧"),
        ("", ""),
    ],
)
def test_clean_header_text(value: str, cleaned: str) -> None:
    assert clean_header_text(value) == cleaned


def test_a_lone_surrogate_in_a_name_is_replaced() -> None:
    built = build_message(parts(to_name="Zo\udce9", subject="Hi \ud800"))
    message = parse(built)
    assert message["To"].addresses[0].display_name == "Zo\ufffd"
    assert str(message["Subject"]) == "Hi \ufffd"


def test_a_lone_surrogate_in_a_body_is_refused() -> None:
    with pytest.raises(UnsendableMessage, match="surrogate"):
        build_message(parts(text="Hi \udce9"))


# check_serialized_headers --------------------------------------------------------------------

GOOD = (
    "From: Ann <ann@bakery.example>\r\n"
    "To: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\r\n"
    "Subject: Thanks\r\n"
    " for your order\r\n"
    "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
    "Message-ID: <abc@bakery.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
)


def test_a_good_block_passes_alone_or_with_a_body() -> None:
    check_serialized_headers(GOOD.encode())
    check_serialized_headers(GOOD.encode() + b"\r\nbody\r\nBcc: not a header\r\n")


def test_build_message_output_passes() -> None:
    built = build_message(parts())
    check_serialized_headers(built.data)
    check_serialized_headers(built.headers.encode(), expected=EXPECTED_NAMES)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (GOOD.replace("Subject: Thanks\r\n", "Subject: Thanks\n"), "bare CR or LF"),
        (GOOD.replace("Subject: Thanks\r\n", "Subject: Thanks\r"), "bare CR or LF"),
        (GOOD.replace("Thanks", "Tha\rnks"), "bare CR or LF"),
        (GOOD.replace("Thanks", "Tha\x00nks"), "character"),
        (GOOD.replace("Thanks", "Tha\u2028nks"), "character"),
        (GOOD.replace("Thanks", "Tha\x85nks"), "character"),
        (GOOD + "To: eve@evil.example\r\n", "repeated header To"),
        (GOOD + "Bcc: eve@evil.example\r\n", "unexpected header"),
        (GOOD + "to: eve@evil.example\r\n", "unexpected header"),
        (GOOD + "X-Mailer: appreciate\r\n", "unexpected header"),
        (GOOD + "no colon here\r\n", "unexpected header"),
        (GOOD.replace("Subject: Thanks", "Subject: " + "x" * 990), "octets"),
        (GOOD.replace("Subject: Thanks", "Subject: " + "é" * 495), "octets"),
        (GOOD.replace("Subject: Thanks\r\n", "Subject: Thanks\r\n \r\n"), "only white space"),
        (" " + GOOD, "continuation"),
        (GOOD.replace("Subject: Thanks\r\n for your order\r\n", ""), "missing header Subject"),
        (GOOD[:-2], "does not end with CRLF"),
        (GOOD + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "without"),
        (GOOD.replace("Thanks", "=?utf-8?q?Thanks=0ABcc:_x@evil.example?="), "decodes to"),
        (GOOD.replace("Thanks", "=?utf-8?b?" + EVIL_B + "?="), "decodes to"),
        (GOOD.replace("Thanks", "x=?utf-8?q?a=0Db?=y"), "decodes to"),
        (GOOD.replace("Zo=C3=AB", "Zo=0D=0A"), "decodes to"),
        (GOOD.replace("Thanks", "=?no-such-charset?q?x?="), "malformed"),
        (GOOD.replace("Thanks", "=?utf-8?b?eA?="), "malformed"),
    ],
)
def test_check_serialized_headers_refuses_a_bad_block(block: str, why: str) -> None:
    with pytest.raises(UnsendableMessage, match=why):
        check_serialized_headers(block.encode())


def test_check_serialized_headers_refuses_invalid_utf8() -> None:
    with pytest.raises(UnsendableMessage, match="UTF-8"):
        check_serialized_headers(GOOD.replace("Thanks", "Th\xe9").encode("latin-1"))


def test_check_serialized_headers_holds_to_the_expected_names() -> None:
    with pytest.raises(UnsendableMessage, match="expected"):
        check_serialized_headers(GOOD.encode(), expected=[*EXPECTED_NAMES])
    names = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
    check_serialized_headers(GOOD.encode(), expected=names)


def test_an_injected_blank_line_cannot_end_the_headers_early() -> None:
    # Were a subject to carry CRLF CRLF, the block would end there and lose its other headers.
    injected = GOOD.replace("Subject: Thanks\r\n", "Subject: Thanks\r\n\r\nBcc: x@evil.example\r\n")
    with pytest.raises(UnsendableMessage, match="missing header"):
        check_serialized_headers(injected.encode())


def test_parts_are_frozen() -> None:
    note = parts()
    with pytest.raises(AttributeError):
        note.subject = "changed"  # type: ignore[misc]
    assert isinstance(note, MessageParts)
