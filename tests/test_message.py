"""Building a note's message: parsed back by the stdlib, every header and part decodes to what
was given (bodies with "\\n" line ends and a final "\\n"), the same as a naive EmailMessage."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.notes.message import (
    BuiltMessage,
    MessageParts,
    UnsendableMessage,
    build_message,
    make_message_id,
    unguessable_hex,
)

DATE = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)
TEXT = (
    "Dear Zoë,\n\nThank you so much for your order: we loved preparing it, and we hope you "
    "enjoy every bite of it. If anything is not right, reply to this note.\n\nWarm regards,\nAnn\n"
)
HTML = "<html><body><p>Dear Zoë,</p><p>Thank you so much for your order!</p></body></html>\n"


EXPECTED_NAMES = [
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
]
"""The headers of a note with every part, in order."""


def parts(**changes: object) -> MessageParts:
    values: dict[str, object] = {
        "from_name": "Ann from Bäckerei Müller",
        "from_address": "ann@bakery.example",
        "to_name": "Zoë Ångström",
        "to_address": "zoe@example.com",
        "reply_to": "help@bakery.example",
        "subject": "Thank you for your order, Zoë! 🎉",
        "text": TEXT,
        "html": HTML,
        "message_id": "<0123456789abcdef@bakery.example>",
        "date": DATE,
        "unsubscribe_url": "https://bakery.example/unsubscribe/tok123",
        "unsubscribe_mailto": "unsubscribe@bakery.example",
    }
    values.update(changes)
    return MessageParts(**values)  # type: ignore[arg-type]


def parse(message: BuiltMessage | bytes) -> EmailMessage:
    data = message.data if isinstance(message, BuiltMessage) else message
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body_text(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def header_lines(message: BuiltMessage) -> list[str]:
    assert message.headers.endswith("\r\n")
    assert not message.headers.endswith("\r\n\r\n")
    return message.headers[:-2].split("\r\n")


def naive(p: MessageParts) -> bytes:
    """What a plain loop would do: an EmailMessage, serialised with the SMTP policy."""
    message = EmailMessage()
    message["From"] = Address(p.from_name, addr_spec=p.from_address)
    message["To"] = Address(p.to_name, addr_spec=p.to_address)
    if p.reply_to:
        message["Reply-To"] = p.reply_to
    message["Subject"] = p.subject
    message["Date"] = format_datetime(p.date)
    message["Message-ID"] = p.message_id
    links = [f"<{p.unsubscribe_url}>"] if p.unsubscribe_url else []
    if p.unsubscribe_mailto:
        links.append(f"<mailto:{p.unsubscribe_mailto}?subject=unsubscribe>")
    if links:
        message["List-Unsubscribe"] = ", ".join(links)
    if p.unsubscribe_url:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(p.text)
    if p.html:
        message.add_alternative(p.html, subtype="html")
    return message.as_bytes(policy=policy.SMTP)


def fields(message: EmailMessage) -> dict[str, object]:
    """Every decoded value a reader sees."""
    found: dict[str, object] = {"names": sorted(message.keys())}
    for name in ("From", "To", "Reply-To"):
        header = message[name]
        if header is not None:
            found[name] = [(a.display_name, a.addr_spec) for a in header.addresses]
    found["Subject"] = str(message["Subject"])
    found["Date"] = message["Date"].datetime
    found["Message-ID"] = str(message["Message-ID"])
    found["List-Unsubscribe"] = str(message["List-Unsubscribe"])
    found["types"] = [part.get_content_type() for part in message.walk()]
    found["charsets"] = [part.get_content_charset() for part in message.walk()]
    found["bodies"] = [body_text(p) for p in message.walk() if not p.is_multipart()]
    return found


# Round trip ------------------------------------------------------------------------------------


def test_every_header_and_part_decodes_to_what_was_given() -> None:
    built = build_message(parts())
    message = parse(built)
    assert list(message.keys()) == EXPECTED_NAMES
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Ann from Bäckerei Müller",
        "ann@bakery.example",
    )
    customer = message["To"].addresses[0]
    assert (customer.display_name, customer.addr_spec) == ("Zoë Ångström", "zoe@example.com")
    assert message["Reply-To"].addresses[0].addr_spec == "help@bakery.example"
    assert str(message["Subject"]) == "Thank you for your order, Zoë! 🎉"
    assert message["Date"].datetime == DATE
    assert str(message["Date"]) == "Mon, 23 Nov 2026 12:00:05 +0000"
    assert str(message["Message-ID"]) == "<0123456789abcdef@bakery.example>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert (text.get_content_type(), text.get_content_charset()) == ("text/plain", "utf-8")
    assert (html.get_content_type(), html.get_content_charset()) == ("text/html", "utf-8")
    assert body_text(text) == TEXT
    assert body_text(html) == HTML
    assert not message.defects
    assert (built.mail_from, built.rcpt_to, built.smtputf8) == (
        "ann@bakery.example",
        "zoe@example.com",
        False,
    )
    assert built.data.startswith(built.headers.encode() + b"\r\n")


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ångström",
        "Nguyễn Thị Minh Khai",
        "O'Brien-Smith",
        "Dr. Ann Lee, PhD",
        'Ann "the baker" Lee',
        "Back\\slash",
        "Владимир Путешественник",
        "山田 太郎",
        "",
    ],
)
def test_display_names_decode_exactly(name: str) -> None:
    message = parse(build_message(parts(to_name=name, from_name=name)))
    for header in ("From", "To"):
        assert message[header].addresses[0].display_name == name
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"


@pytest.mark.parametrize(
    "subject",
    [
        "Thanks",
        "Thank you for your order, Zoë! 🎉",
        "Спасибо за ваш заказ, Владимир",
        "ありがとうございます",
        "A subject long enough that it has to be folded onto a second line, and a third one too, "
        "since it keeps going and going for a while",
        "Long non-ASCII subject — “quoted”, with ümlauts and ëmoji 🎂🎁🎈 that spans many encoded "
        "words because it just keeps going",
        "x" * 120,
        "Rate us: https://bakery.example/reviews/new?order=12345&customer=67890&utm_source=thankyou",
        '1 + 1 = 2? yes_indeed (really) <ok> "fine" 100% a@b',
        "",
    ],
)
def test_subjects_decode_exactly_on_short_lines(subject: str) -> None:
    built = build_message(parts(subject=subject))
    assert str(parse(built)["Subject"]) == subject
    assert all(len(line) <= 78 for line in header_lines(built))


def test_text_only_note_is_a_single_text_part() -> None:
    built = build_message(parts(html=None))
    message = parse(built)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(message) == TEXT
    assert built.data.endswith(b"\r\n")


def test_an_empty_html_counts_as_none() -> None:
    assert parse(build_message(parts(html=""))).get_content_type() == "text/plain"


@pytest.mark.parametrize(
    ("text", "encoding", "decoded"),
    [
        ("Hello Ann,\nthanks!\n", "7bit", "Hello Ann,\nthanks!\n"),
        ("no final line break", "7bit", "no final line break\n"),
        ("crlf\r\nand cr\rand lf\n", "7bit", "crlf\nand cr\nand lf\n"),
        ("", "7bit", "\n"),
        ("a long line " * 20, "quoted-printable", "a long line " * 20 + "\n"),
        ("trailing space \nhere", "quoted-printable", "trailing space \nhere\n"),
        ("tab\tand a bell \x07", "quoted-printable", "tab\tand a bell \x07\n"),
        (
            "Grüße aus Köln, und vielen Dank!",
            "quoted-printable",
            "Grüße aus Köln, und vielen Dank!\n",
        ),
        ("Grüße aus Köln", "base64", "Grüße aus Köln\n"),
        ("Спасибо за ваш заказ! " * 5, "base64", "Спасибо за ваш заказ! " * 5 + "\n"),
        ("ありがとうございます。", "base64", "ありがとうございます。\n"),
        (".\n..\nFrom here\n", "7bit", ".\n..\nFrom here\n"),
    ],
)
def test_bodies_pick_the_shortest_safe_encoding(text: str, encoding: str, decoded: str) -> None:
    built = build_message(parts(text=text, html=None))
    message = parse(built)
    assert message["Content-Transfer-Encoding"] == encoding
    assert body_text(message) == decoded
    body = built.data.split(b"\r\n\r\n", 1)[1]
    assert body.endswith(b"\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b"\r" not in body.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in body.split(b"\r\n"))


@given(st.text(), st.text())
def test_any_body_decodes_to_itself(text: str, html: str) -> None:
    built = build_message(parts(text=text, html=html or None))
    message = parse(built)
    bodies = [body_text(p) for p in message.walk() if not p.is_multipart()]

    def normal(value: str) -> str:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        return value if value.endswith("\n") else value + "\n"

    assert bodies == ([normal(text), normal(html)] if html else [normal(text)])
    assert all(len(line) <= 998 for line in built.data.split(b"\r\n"))
    assert b"\n" not in built.data.replace(b"\r\n", b"")


def test_the_boundary_is_random_and_absent_from_the_parts() -> None:
    boundaries = set()
    for _ in range(20):
        built = build_message(parts())
        found = re.search(rb'boundary="([^"]+)"', built.data)
        assert found
        boundary = found[1]
        assert built.data.count(boundary) == 4  # the parameter, two delimiters, the closing one
        boundaries.add(boundary)
    assert len(boundaries) == 20


def test_no_line_is_longer_than_998_and_headers_fit_78() -> None:
    built = build_message(parts(to_name="Nguyễn Thị Minh Khai " * 6, subject="Zoë " * 80))
    assert all(len(line) <= 998 for line in built.data.split(b"\r\n"))
    assert all(len(line) <= 78 for line in header_lines(built))


@pytest.mark.parametrize(
    "offset", [timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8)]
)
def test_the_date_keeps_its_offset(offset: timedelta) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(offset))
    message = parse(build_message(parts(date=moment)))
    assert str(message["Date"]) == format_datetime(moment)
    assert message["Date"].datetime == moment


def test_a_naive_date_is_refused() -> None:
    with pytest.raises(UnsendableMessage, match="time zone"):
        build_message(parts(date=datetime(2026, 1, 2, 3, 4, 5)))  # noqa: DTZ001


# The stdlib's way -------------------------------------------------------------------------------

SAME_AS_STDLIB = [
    parts(),
    parts(html=None, reply_to=None, unsubscribe_url=None, unsubscribe_mailto=None),
    parts(to_name="Nguyễn Thị Minh Khai", subject="Cảm ơn bạn đã đặt hàng"),
    parts(to_name="Ann Lee", from_name="Ann", subject="Thanks", text="Hi Ann,\nthanks!\n"),
    parts(to_name="Dr. Ann O'Neil, MD", subject='A (small) thank-you: 100% "real"'),
    parts(to_name="山田 太郎", subject="ご注文ありがとうございます", text="ありがとう\n" * 30),
    parts(subject=("Long ASCII subject " * 6).strip(), text="long line " * 40, html="<p>" * 300),
    parts(unsubscribe_url=None, text="Grüße\r\naus\rKöln", html="<p>Grüße</p>"),
    parts(date=datetime(2026, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))),
]


@pytest.mark.parametrize("note", SAME_AS_STDLIB)
def test_readers_see_the_same_as_with_an_email_message(note: MessageParts) -> None:
    assert fields(parse(build_message(note))) == fields(parse(naive(note)))


# Addresses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("a@example.com, b@example.com", "is a list"),
        ("a@example.com; b@example.com", "is a list"),
        ("Ann <ann@example.com>", "display name"),
        ("<ann@example.com>", "display name"),
        ("not an address", "not valid"),
        ("ann@localhost", "not valid"),
        ("ann@example.com\r\nBcc: eve@evil.example", "not valid"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    for field in ("to_address", "from_address", "reply_to", "unsubscribe_mailto"):
        with pytest.raises(UnsendableMessage, match=why) as raised:
            build_message(parts(**{field: address}))
        assert repr(address) in str(raised.value)


def test_an_empty_recipient_or_sender_is_refused() -> None:
    for field in ("to_address", "from_address"):
        with pytest.raises(UnsendableMessage, match="not valid"):
            build_message(parts(**{field: ""}))


def test_empty_optional_addresses_count_as_unset() -> None:
    message = parse(build_message(parts(reply_to="", unsubscribe_mailto="", unsubscribe_url="")))
    assert "Reply-To" not in message
    assert "List-Unsubscribe" not in message


def test_a_non_ascii_local_part_needs_smtputf8() -> None:
    built = build_message(parts(to_address="josé@example.com"))
    assert built.smtputf8
    assert built.rcpt_to == "josé@example.com"
    assert "<josé@example.com>" in built.headers
    message = Parser(policy=policy.default).parsestr(built.data.decode())
    assert message["To"].addresses[0].addr_spec == "josé@example.com"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"


def test_an_internationalised_domain_goes_as_punycode() -> None:
    built = build_message(
        parts(
            to_address="user@bücher.example",
            from_address="ann@straße.example",
            unsubscribe_mailto="bye@bücher.example",
        )
    )
    assert not built.smtputf8
    assert built.rcpt_to == "user@xn--bcher-kva.example"
    assert built.mail_from == "ann@xn--strae-oqa.example"  # IDNA 2008: ß stays
    message = parse(built)
    assert message["To"].addresses[0].addr_spec == "user@xn--bcher-kva.example"
    assert "bye@xn--bcher-kva.example" in str(message["List-Unsubscribe"])
    assert built.headers.isascii()


def test_addresses_are_normalised() -> None:
    built = build_message(parts(to_address="  Zoe.Lee+shop@Example.COM "))
    assert built.rcpt_to == "Zoe.Lee+shop@example.com"


def test_message_ids_are_unique_and_well_formed() -> None:
    made = {make_message_id("bakery.example") for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"<[0-9a-f]{32}@bakery\.example>", made_id) for made_id in made)
    assert make_message_id("Bücher.example").endswith("@xn--bcher-kva.example>")
    message_id = make_message_id("bakery.example")
    assert str(parse(build_message(parts(message_id=message_id)))["Message-ID"]) == message_id


@pytest.mark.parametrize("domain", ["", "bad domain", "a..b", "-x.example", "a@b"])
def test_a_message_id_needs_a_domain(domain: str) -> None:
    with pytest.raises(UnsendableMessage):
        make_message_id(domain)


@pytest.mark.parametrize(
    "message_id", ["abc@example.com", "<abc>", "<a b@example.com>", "<abc@example.com>\r\nBcc: x"]
)
def test_a_malformed_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(UnsendableMessage, match="Message-ID"):
        build_message(parts(message_id=message_id))


# List-Unsubscribe -------------------------------------------------------------------------------

URL = "https://bakery.example/unsubscribe/tok123"
MAILTO = "<mailto:unsubscribe@bakery.example?subject=unsubscribe>"


@pytest.mark.parametrize(
    ("url", "mailto", "expected"),
    [
        (None, None, None),
        (None, "unsubscribe@bakery.example", MAILTO),
        (URL, None, f"<{URL}>"),
        (URL, "unsubscribe@bakery.example", f"<{URL}>, {MAILTO}"),
        ("", "", None),
    ],
)
def test_list_unsubscribe_variants(
    url: str | None, mailto: str | None, expected: str | None
) -> None:
    message = parse(build_message(parts(unsubscribe_url=url, unsubscribe_mailto=mailto)))
    found = message["List-Unsubscribe"]
    assert (None if found is None else str(found)) == expected
    post = message["List-Unsubscribe-Post"]
    assert (None if post is None else str(post)) == ("List-Unsubscribe=One-Click" if url else None)


def test_unsubscribe_links_are_made_safe() -> None:
    message = parse(
        build_message(
            parts(
                unsubscribe_url='https://bakery.example/u/a b<c>"d",e/é',
                unsubscribe_mailto="odd#name?x@bakery.example",
            )
        )
    )
    assert str(message["List-Unsubscribe"]) == (
        "<https://bakery.example/u/a%20b%3Cc%3E%22d%22%2Ce/%C3%A9>, "
        "<mailto:odd%23name%3Fx@bakery.example?subject=unsubscribe>"
    )


@pytest.mark.parametrize("url", ["http://bakery.example/u/1", "https://", "mailto:x@y.example"])
def test_the_unsubscribe_url_must_be_https(url: str) -> None:
    with pytest.raises(UnsendableMessage, match="https"):
        build_message(parts(unsubscribe_url=url))


def test_a_very_long_unsubscribe_url_is_refused() -> None:
    with pytest.raises(UnsendableMessage, match="998"):
        build_message(parts(unsubscribe_url="https://bakery.example/" + "a" * 1000))


def test_a_long_ascii_name_is_folded_not_encoded() -> None:
    name = "A very long ASCII display name that goes on and on, past the line limit for sure"
    built = build_message(parts(to_name=name))
    assert "=?" not in built.headers.split("To:")[1].split("\r\nReply-To")[0]
    assert parse(built)["To"].addresses[0].display_name == name
    assert all(len(line) <= 78 for line in header_lines(built))


def test_a_name_that_just_misses_the_first_line_gets_a_line_of_its_own() -> None:
    name = "Владимир Путешественник"  # one encoded word of 72 characters
    built = build_message(parts(from_name=name, to_name=name))
    assert "From:\r\n =?utf-8?b?" in built.headers
    message = parse(built)
    assert message["From"].addresses[0].display_name == name
    assert message["To"].addresses[0].display_name == name


def test_message_ids_and_boundaries_never_repeat_and_cannot_be_told_apart_from_random() -> None:
    made = [unguessable_hex(16) for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert all(len(token) == 32 and int(token, 16) >= 0 for token in made)
    ones = sum(bin(int(token, 16)).count("1") for token in made)
    assert abs(ones / (len(made) * 128) - 0.5) < 0.01  # no bias a reader could use
    assert len(unguessable_hex(12)) == 24
