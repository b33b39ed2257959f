"""Reading what comes back, without a store: a corpus of real-format messages (DSNs as Postfix,
Exim, Microsoft 365 and Gmail send them, an ARF complaint, auto-replies, replies in English and
German, opt-outs, malformed mail) each taken for what it is; the return path's tag; and no
input, however broken, makes reading fail."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.inbound.classify import classify
from scheduler.inbound.html_text import html_text
from scheduler.inbound.reading import MAX_READ, MAX_TEXT, read_message
from scheduler.inbound.reply_text import asks_to_stop, excerpt, fresh_text
from scheduler.notes.bounce_tag import FORGED, TAG_LENGTH, make_tag, read_tag

CORPUS = Path(__file__).parent / "data" / "inbound"
NOTE_ID = "<0123456789abcdef0123456789abcdef@example.com>"
RECIPIENT = "dana@customer.example"
KEY = bytes(range(32))
BOUNCES = "bounces+{tag}@example.com"


def corpus(name: str, *, tag: str = "a" * TAG_LENGTH, message_id: str = NOTE_ID) -> bytes:
    """A corpus message with its placeholders filled in."""
    raw = (CORPUS / name).read_bytes()
    for placeholder, value in (
        ("{{TAG}}", tag),
        ("{{MESSAGE_ID}}", message_id),
        ("{{RECIPIENT}}", RECIPIENT),
    ):
        raw = raw.replace(placeholder.encode(), value.encode())
    return raw


EXPECTED = [
    ("postfix_dsn_user_unknown.eml", "bounce", "5.1.1 550 5.1.1"),
    ("exim_text_bounce.eml", "bounce", "550 5.1.1 No such user here"),
    ("microsoft365_ndr.eml", "bounce", "5.1.10 550 5.1.10 RESOLVER.ADR.RecipientNotFound"),
    ("gmail_dsn_failure.eml", "bounce", "5.1.1 550-5.1.1 The email account"),
    ("gmail_dsn_delay.eml", "soft_bounce", "4.4.1 421 4.4.1 Connection timed out"),
    ("arf_complaint.eml", "complaint", "feedback type: abuse"),
    ("outlook_out_of_office.eml", "auto_reply", "Automatic reply: Happy birthday, Dana!"),
    ("german_abwesenheit.eml", "auto_reply", "Abwesenheitsnotiz: Alles Gute zum Geburtstag!"),
    ("reply_english.eml", "reply", "Thank you so much, that made my day!"),
    ("reply_outlook_html.eml", "reply", "Very kind of you \u2013 the new brushes are great.\nSam"),
    ("reply_german.eml", "reply", "Vielen Dank für die lieben Grüße!"),
    ("optout_reply_english.eml", "opt_out", "Please unsubscribe me."),
    ("optout_reply_german.eml", "opt_out", "Bitte abmelden, danke."),
    # Multiparts whose parts cannot be found: read as far as they go, the opt-out kept.
    ("optout_reply_no_boundary.eml", "opt_out", "Please stop sending me these \u2013 thank you."),
    ("optout_reply_wrong_boundary.eml", "opt_out", "Please unsubscribe me."),
    ("keep_going_reply.eml", "reply", "Don't stop sending these, I love them!"),
    ("mailto_unsubscribe.eml", "opt_out", "an email to unsubscribe@example.com"),
    ("malformed_mime.eml", "reply", "Thanks!"),
    ("raw_8bit_headers.eml", "reply", "Thanks"),
]


@pytest.mark.parametrize(("name", "kind", "detail"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_each_message_of_the_corpus_is_taken_for_what_it_is(
    name: str, kind: str, detail: str
) -> None:
    language = "de" if "german" in name else "en"
    facts = read_message(corpus(name))
    verdict = classify(facts, unsubscribe_address="unsubscribe@example.com", language=language)
    assert verdict.kind == kind
    assert verdict.detail.startswith(detail)


def test_the_corpus_covers_every_file_in_it() -> None:
    assert {path.name for path in CORPUS.glob("*.eml")} == {name for name, _, _ in EXPECTED}


@pytest.mark.parametrize(
    "name",
    [
        "postfix_dsn_user_unknown.eml",
        "exim_text_bounce.eml",
        "microsoft365_ndr.eml",
        "gmail_dsn_failure.eml",
        "arf_complaint.eml",
        "reply_english.eml",
        "reply_german.eml",
    ],
)
def test_the_note_a_message_is_about_is_found_by_its_message_id(name: str) -> None:
    assert NOTE_ID in read_message(corpus(name)).refers_to


def test_a_report_names_the_address_that_failed() -> None:
    facts = read_message(corpus("postfix_dsn_user_unknown.eml"))
    (status,) = facts.statuses
    assert (status.recipient, status.action, status.status) == (RECIPIENT, "failed", "5.1.1")


def test_a_german_opt_out_counts_only_for_a_german_business() -> None:
    facts = read_message(corpus("optout_reply_german.eml"))
    assert classify(facts, unsubscribe_address="", language="en").kind == "reply"
    assert classify(facts, unsubscribe_address="", language="de").kind == "opt_out"


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("STOP", True),
        ("unsubscribe", True),
        ("Please remove me from your list.", True),
        ("No more emails please", True),
        ("Don't stop, these are lovely!", False),
        ("Please do not unsubscribe me", False),
        # A negation after the request, or in another sentence, does not turn it around
        # (both were read as replies, and the opt-outs missed).
        ("Please stop, I'm not interested.", True),
        ("No, not now. Please stop.", True),
        ("I don't want these to stop!", False),
        # The request on the line after a greeting (was missed: only the greeting was read).
        ("Hi Ada,\n\nplease unsubscribe me.", True),
        ("Dear Dr Lee,\nPlease remove me from your list.", True),
        ("Hi Ada,\n\nThank you, what a lovely card!\nStop by soon? Kidding.", False),
        (
            "Thank you so much for remembering my birthday. My daughter said I should never "
            "stop going to your practice, and honestly she is right, you are all wonderful "
            "and the new chairs are very comfortable. See you in March for the check-up, and "
            "say hello to Ada from me. Unsubscribe? Never!",
            False,
        ),
    ],
)
def test_only_a_plain_request_to_stop_is_an_opt_out(text: str, stops: bool) -> None:
    assert asks_to_stop("Re: Happy birthday", text, "en") is stops


@pytest.mark.parametrize(
    ("subject", "language"),
    [
        ("Re: Our last stop of the summer, Dana", "en"),
        ("AW: Ein letzter Stop vor dem Sommer", "de"),
        ("RE: Precios a la baja, Dana", "es"),
        ("Fwd: Our last stop of the summer", "en"),
    ],
)
def test_thanks_for_a_note_whose_subject_holds_a_stop_word_is_a_reply(
    subject: str, language: str
) -> None:
    """A reply's subject is the note's own, which the owner wrote: it asks nothing."""
    raw = f"From: {RECIPIENT}\r\nSubject: {subject}\r\n\r\nThank you so much!\r\n".encode()
    verdict = classify(read_message(raw), unsubscribe_address="", language=language)
    assert (verdict.kind, verdict.detail) == ("reply", "Thank you so much!")


def test_a_subject_of_the_senders_own_that_asks_to_stop_is_an_opt_out() -> None:
    assert asks_to_stop("STOP", "", "en")
    assert asks_to_stop("Bitte abmelden", "Danke.", "de")


@pytest.mark.parametrize(
    ("subject", "stops"),
    [
        ("Re: Unsubscribe", True),
        ("RE: STOP!", True),
        ("Re: please remove me", True),
        ("AW: Bitte abmelden", True),
        ("Re: Happy birthday, Dana", False),
        ("Re: Stop by for a coffee", False),
    ],
)
def test_a_reply_subject_asks_to_stop_only_when_the_sender_made_it_a_request(
    subject: str, stops: bool
) -> None:
    """A customer who types "Unsubscribe" after the "Re: " their mail app kept asks as plainly
    as one who clears the line (the prefix alone hid such a request)."""
    assert asks_to_stop(subject, "", "de" if subject.startswith("AW") else "en") is stops


def test_a_reply_is_cut_before_what_it_quotes_and_its_signature() -> None:
    text = "Lovely, thanks!\n-- \nDana Whitfield\nCEO\n\nOn Mon, Ada wrote:\n> hello"
    assert fresh_text(text) == "Lovely, thanks!"
    assert excerpt("a\n\nb\nc\nd\ne\nf\ng") == "a\nb\nc\nd\ne"
    assert excerpt("bell\x07 and escape\x1b[31m") == "bell and escape[31m"


def test_a_20_mb_message_is_read_as_far_as_it_matters() -> None:
    raw = (
        b"From: dana@customer.example\r\nTo: hello@example.com\r\nSubject: Re: thanks\r\n"
        b"In-Reply-To: " + NOTE_ID.encode() + b"\r\nContent-Type: text/plain\r\n\r\n"
        b"Thank you!\r\n" + b"x" * (20 * 1024 * 1024)
    )
    facts = read_message(raw)
    assert facts.refers_to == (NOTE_ID,)
    assert len(facts.text) == MAX_TEXT
    assert classify(facts, unsubscribe_address="", language="en").kind == "reply"


def test_a_message_of_millions_of_empty_parts_is_read_as_far_as_its_first_mib() -> None:
    """Python's parser takes about 20 microseconds a part: 16 MB of empty parts took 42 s
    (a poll held, or a mail server's pipe timing out and offering it again). Its words, the
    report and the note it answers are in the first parts."""
    raw = (
        b"From: dana@customer.example\r\nSubject: Re: thanks\r\n"
        b"In-Reply-To: " + NOTE_ID.encode() + b"\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nPlease stop.\r\n"
        + b"--B\r\n\r\n" * 2_400_000
        + b"--B--\r\n"
    )
    assert len(raw) > 16 * MAX_READ
    started = time.monotonic()
    facts = read_message(raw)
    assert time.monotonic() - started < 15
    assert facts.refers_to == (NOTE_ID,)
    assert classify(facts, unsubscribe_address="", language="en").kind == "opt_out"


@pytest.mark.parametrize("filler", ["\n", " \n", "From: x\n"], ids=["blank", "spaces", "from"])
def test_a_text_of_many_short_lines_is_read_in_time_linear_in_its_length(filler: str) -> None:
    """No pattern and no loop looks at every later line for each line: a message of 50,000
    empty lines took minutes (a mail server gives up and offers it again, for ever)."""
    raw = (
        "From: dana@customer.example\r\nSubject: Re: thanks\r\n\r\nThanks!\n" + filler * 50_000
    ).encode()
    started = time.monotonic()
    verdict = classify(read_message(raw), unsubscribe_address="", language="en")
    assert time.monotonic() - started < 2
    assert (verdict.kind, verdict.detail.splitlines()[0]) == ("reply", "Thanks!")


HOSTILE_MARKUP = [
    *("<a ", "<a", "<!--x", "<x title='", "<" + "a" * 1000, "</", "<style"),
    *("<div>", "<b>", "<blockquote>"),  # nested 20,000 to 87,000 deep
]


@pytest.mark.parametrize("markup", HOSTILE_MARKUP, ids=range(len(HOSTILE_MARKUP)))
def test_an_html_reply_of_markup_that_never_closes_is_read_in_time_linear_in_its_length(
    markup: str,
) -> None:
    """Python's HTMLParser took time quadratic in such markup: 24,000 characters of `<a `
    took 8 s, the 256 KB read of a part would have taken a quarter of an hour (a mail server
    gives up and offers it again; a poll holds the mailbox). Deep nesting must not fail."""
    html = "<p>Please stop sending these.</p>" + markup * (MAX_TEXT // len(markup))
    raw = (
        "From: dana@customer.example\r\nSubject: Re: thanks\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html
    ).encode()
    started = time.monotonic()
    facts = read_message(raw)
    assert time.monotonic() - started < 2
    assert facts.text.startswith("\nPlease stop sending these.\n")


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<html><HEAD><title>Re</title><style>p{}</style></head>"
            "<body><p>Stop&nbsp;please &amp; thanks</p><!-- <p>hidden</p> -->"
            "<SCRIPT type=x>alert(1)</script >ok</body></html>",
            "\nStop please & thanks\nok",
        ),
        ("Is 2 < 3? <b>Yes</b> &#233;t&eacute;", "Is 2 < 3? Yes été"),
        (
            "<div>Thanks!</div><blockquote>On Monday you wrote</blockquote>",
            "\nThanks!\n\n> On Monday you wrote\n",
        ),
        ("<p>Seen</p><style>p {}", "\nSeen\n"),
        ("<p>Seen</p><!-- never closed <p>unseen</p>", "\nSeen\n"),
        ("<header>Top</header><p a='1' b=\"2\">Body</p ><br/>", "Top\nBody\n\n"),
        ("<!DOCTYPE html><?xml version='1.0'?>Hi", "Hi"),
    ],
    ids=["hidden", "text-and-references", "quote", "open-style", "open-comment", "tags", "decls"],
)
def test_an_html_reply_is_read_as_a_browser_shows_it(html: str, text: str) -> None:
    assert html_text(html) == text


@given(st.text(max_size=300).map(lambda text: re.sub("[<&\\0]", "", text)))
def test_html_without_markup_is_its_text_with_white_space_as_html_shows_it(text: str) -> None:
    assert html_text(text).strip() == re.sub(r"\s+", " ", text).strip()


@given(st.text(alphabet="<>/!-abpstyle &;#x'\"=\n", max_size=400))
def test_no_markup_makes_reading_html_fail(html: str) -> None:
    assert isinstance(html_text(html), str)


@given(st.binary(max_size=2000))
def test_no_bytes_make_reading_fail(raw: bytes) -> None:
    facts = read_message(raw)
    classify(facts, unsubscribe_address="unsubscribe@example.com", language="en")


@given(st.text(max_size=500))
def test_no_text_makes_reading_fail(text: str) -> None:
    raw = ("Content-Type: multipart/report; report-type=delivery-status\n\n" + text).encode(
        "utf-8", "surrogatepass"
    )
    read_message(raw)


BROKEN_HEADER = b"From: dana@customer.example\r\nTo: hello@example.com\r\n"
BROKEN = {
    "an encoded-word whose base64 is cut short": b"Subject: =?utf-8?b?QUJDx?=\r\n",
    "an encoded-word whose charset name is not ASCII": b"Subject: =?utf-8\xff?q?hi?=\r\n",
    "a charset that cannot read leniently": b"Content-Type: text/plain; charset=idna\r\n",
    "a charset name holding a NUL": b'Content-Type: text/plain; charset="utf-8\x00"\r\n',
}


@pytest.mark.parametrize("header", BROKEN.values(), ids=list(BROKEN))
def test_broken_encoded_words_and_charsets_are_read_as_far_as_they_go(header: bytes) -> None:
    facts = read_message(BROKEN_HEADER + header + b"\r\nThanks!\r\n")
    verdict = classify(facts, unsubscribe_address="", language="en")
    assert (verdict.kind, verdict.detail) == ("reply", "Thanks!")


def nested(depth: int, kind: str) -> bytes:
    """A message holding a message (or a multipart) holding another, `depth` levels deep."""
    raw = b"From: dana@customer.example\r\n"
    for level in range(depth):
        if kind == "message":
            raw += b"Content-Type: message/rfc822\r\n\r\nFrom: dana@customer.example\r\n"
        else:
            raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (
                level,
                level,
            )
    return raw + b"\r\nThanks!\r\n"


@pytest.mark.parametrize("kind", ["message", "multipart"])
def test_a_message_nested_thousands_deep_is_unreadable_and_says_why(kind: str) -> None:
    facts = read_message(nested(5000, kind))
    assert facts.unreadable == "its parts are nested too deeply to read"
    assert read_message(nested(50, kind)).unreadable is None


@pytest.mark.parametrize("action", [b"delivered", b"relayed", b"\xff\xfe garbage", b""])
def test_a_delivery_report_of_no_failure_is_no_persons_reply(action: bytes) -> None:
    """A delivery status report is a machine's (RFC 3464), whatever its fields say: one that
    reports no failure is recorded as automatic, never as the customer's answer."""
    raw = (
        b"From: MAILER-DAEMON@mail.example.com\r\nSubject: Delivery Status Notification\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message was delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; " + RECIPIENT.encode() + b"\r\nAction: " + action + b"\r\n"
        b"--b--\r\n"
    )
    verdict = classify(read_message(raw), unsubscribe_address="", language="en")
    assert verdict.kind == "auto_reply"


@pytest.mark.parametrize(
    "report_type",
    [
        b"report-type*=us-ascii'en'delivery-status",
        b"report-type*=utf-8''DELIVERY-STATUS",
        b"report-type*0=delivery; report-type*1=-status",
        b"report-type*=x-unknown-charset''delivery-status",
    ],
)
def test_a_report_type_written_the_rfc_2231_way_is_still_a_bounce(report_type: bytes) -> None:
    raw = corpus("postfix_dsn_user_unknown.eml").replace(
        b"report-type=delivery-status", report_type
    )
    facts = read_message(raw)
    assert facts.report == "delivery-status"
    verdict = classify(facts, unsubscribe_address="", language="en")
    assert (verdict.kind, verdict.detail[:5]) == ("bounce", "5.1.1")


def test_a_message_without_headers_is_unreadable() -> None:
    verdict = classify(read_message(b""), unsubscribe_address="", language="en")
    assert verdict.kind == "unreadable"


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_a_tag_names_its_note_and_nothing_else(touch_id: int) -> None:
    tag = make_tag(KEY, touch_id)
    assert len(tag) == TAG_LENGTH
    assert tag != make_tag(bytes(32), touch_id)
    assert tag[:13] != make_tag(KEY, touch_id + 1)[:13]
    address = BOUNCES.replace("{tag}", tag)
    assert read_tag(BOUNCES, KEY, ["hello@example.com", address.upper()]) == touch_id
    assert read_tag(BOUNCES, bytes(32), [address]) == FORGED
    for position in range(TAG_LENGTH):
        changed = tag[:position] + ("b" if tag[position] != "b" else "c") + tag[position + 1 :]
        assert read_tag(BOUNCES, KEY, [BOUNCES.replace("{tag}", changed)]) == FORGED


def test_an_address_without_a_tag_names_no_note() -> None:
    assert read_tag(BOUNCES, KEY, ["bounces@example.com", "dana@customer.example"]) is None
