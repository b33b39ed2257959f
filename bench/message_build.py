"""Benchmark: building notes' messages with `build_message` against the naive EmailMessage way.

Generates `--distinct` varied notes (seeded): one business sender (as an instance has), names
and subjects ASCII, Latin, Vietnamese, Cyrillic and Japanese (about a third of the customers'
names non-ASCII), an emoji now and then, English and French texts of about 600 characters and
html of about 1,100, 80% with an https unsubscribe URL (all with a mailto one). Then builds
`--n` messages from them, cycling, both ways:

- appreciate: `build_message(parts)`, i.e. `.data` ready for SMTP DATA;
- naive: an `EmailMessage` with the same headers, `set_content(text)` and
  `add_alternative(html, subtype="html")`, then `as_bytes(policy=policy.SMTP)` (a
  BytesGenerator with CRLF line ends), what a plain sending loop does.

Each is timed `--repeat` times with `time.perf_counter`; prints the median messages/s (and the
range), the median microseconds per message and the ratio. Target: build_message at least
5,000 messages/s. Exits 0 either way (a measurement, not a test).

    python bench/message_build.py                     # N=20,000, 5 runs each: about 5 minutes
    python bench/message_build.py --n 2000 --repeat 3 # quick check
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from scheduler.notes.message import MessageParts, build_message, make_message_id

TARGET = 5000.0
FIRST = ["Ann", "Liam", "Mia", "Noah", "Olivia", "James", "Grace", "Tom", "Ruth", "Sam"]
LAST = ["Lee", "Smith", "O'Brien", "Taylor", "Brown", "Walker", "Hughes", "Khan", "Wood"]
FIRST_INTL = ["Zoë", "José", "Nguyễn Thị", "Владимир", "山田", "Chloé", "Søren", "Ayşe"]
LAST_INTL = ["Ångström", "García", "Minh Khai", "Петров", "太郎", "Müller", "Łukasiewicz"]
SUBJECTS = [
    "Thank you for your order, {first}",
    "Happy birthday, {first}! 🎂",
    "Thanks for sending {friend} our way",
    "It was lovely to meet you, {first}",
    "Merci pour votre commande, {first} — à bientôt",
    "How is everything going, {first}?",
]
PARAGRAPHS = [
    "Thank you so much for your recent order. We hope you enjoy it as much as we enjoyed "
    "preparing it for you, and that it arrived in perfect shape.",
    "If anything is not quite right, simply reply to this note: it comes straight to me, and "
    "I will make it right as soon as I can.",
    "Nous espérons que tout vous plaît, et nous serons ravis de vous revoir très bientôt à la "
    "boutique pour la nouvelle saison.",
    "As a small thank-you, here is a code for your next visit: THANKS-{code}. It is valid "
    "for the next three months, in the shop or online.",
    "Your friend {friend} told us about you, and we are so glad they did.",
]
SENDER_NAME = "Ann from Bäckerei Müller"
SENDER = "ann@baeckerei-mueller.example"


def notes(count: int, seed: int = 7) -> list[MessageParts]:
    """`count` varied notes, the same for a given seed."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    made = []
    for number in range(count):
        first, last, friend = _name(rng), _name(rng, LAST, LAST_INTL), _name(rng)
        fill = {"first": first, "friend": friend, "code": f"{rng.randrange(10**6):06d}"}
        paragraphs = [p.format(**fill) for p in rng.sample(PARAGRAPHS, 5)]
        text = f"Dear {first},\n\n" + "\n\n".join(paragraphs) + "\n\nWarm regards,\nAnn\n"
        html = (
            '<!doctype html>\n<html><head><meta charset="utf-8"><title>A note from Ann</title>'
            "</head>\n"
            '<body style="font-family: Georgia, serif; color: #333; line-height: 1.5">\n'
            + f"<p>Dear {first},</p>\n"
            + "\n".join(f'<p style="margin: 0 0 1em 0">{p}</p>' for p in paragraphs)
            + '\n<p>Warm regards,<br>Ann</p>\n<p style="font-size: 12px; color: #888">'
            '<a href="https://baeckerei-mueller.example/unsubscribe">Unsubscribe</a></p>\n'
            "</body></html>\n"
        )
        token = f"{rng.getrandbits(128):032x}"
        made.append(
            MessageParts(
                from_name=SENDER_NAME,
                from_address=SENDER,
                to_name=f"{first} {last}",
                to_address=f"customer{number}@example.com",
                reply_to="hello@baeckerei-mueller.example",
                subject=rng.choice(SUBJECTS).format(**fill),
                text=text,
                html=html,
                message_id=make_message_id("baeckerei-mueller.example"),
                date=start + timedelta(seconds=number),
                unsubscribe_url=(
                    f"https://baeckerei-mueller.example/u/{token}" if rng.random() < 0.8 else None
                ),
                unsubscribe_mailto="unsubscribe@baeckerei-mueller.example",
            )
        )
    return made


def _name(
    rng: random.Random, plain: Sequence[str] = FIRST, intl: Sequence[str] = FIRST_INTL
) -> str:
    """A first (or last) name, non-ASCII about one time in five."""
    return rng.choice(intl if rng.random() < 0.2 else plain)


def naive(p: MessageParts) -> bytes:
    """The plain loop's way: an EmailMessage per note, serialised with the SMTP policy."""
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


def appreciate(p: MessageParts) -> bytes:
    return build_message(p).data


def rate(build: Callable[[MessageParts], bytes], work: Sequence[MessageParts]) -> float:
    """Messages per second for one pass over `work`."""
    started = time.perf_counter()
    for parts in work:
        build(parts)
    return len(work) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each way")
    parser.add_argument("--distinct", type=int, default=1000, help="different notes generated")
    args = parser.parse_args()
    pool = notes(args.distinct)
    work = [pool[i % len(pool)] for i in range(args.n)]
    sizes = [len(appreciate(p)) for p in pool]
    ascii_names = sum(p.to_name.isascii() for p in pool) / len(pool)
    text = statistics.mean(len(p.text) for p in pool)
    html = statistics.mean(len(p.html or "") for p in pool)
    print(
        f"{args.n:,} messages from {len(pool):,} notes; text {text:.0f} chars, html {html:.0f}"
        f" chars, message {statistics.mean(sizes):.0f} bytes; {1 - ascii_names:.0%} of the"
        " customers' names non-ASCII"
    )
    results: dict[str, list[float]] = {"build_message": [], "EmailMessage": []}
    for _ in range(args.repeat):
        results["build_message"].append(rate(appreciate, work))
        results["EmailMessage"].append(rate(naive, work))
    medians = {name: statistics.median(runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(
            f"{name:14s} median {medians[name]:9,.0f} msg/s ({min(runs):,.0f}-{max(runs):,.0f}),"
            f" {1e6 / medians[name]:7.1f} us/message"
        )
    ratio = medians["build_message"] / medians["EmailMessage"]
    verdict = "" if medians["build_message"] >= TARGET else f"  MISSED (target {TARGET:,.0f} msg/s)"
    print(f"ratio {ratio:.1f}x{verdict}")


if __name__ == "__main__":
    main()
