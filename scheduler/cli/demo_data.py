"""The sample exports of `appreciate demo`, written for the moment the demo runs.

Every occasion the demo shows falls due *today*, whenever it runs:
- birthdays on each customer's own local date at `now`, in zones from UTC-11 to UTC+14 (one
  of them opted out, one of them the least valuable customer due: they never ordered);
- orders placed three hours ago (their thanks are due two hours after the order);
- a referral recorded today, and a first meeting a little over a day ago;
- a review written two hours ago (by a regular, who has nothing else due), and one written
  long ago that is imported with the history and thanked by no note.
Everyone else has a history that gives them a lifetime value but no occasion today: no
birthday or customer anniversary within days of today, no order in the last three weeks (no
thanks, no follow-up) and a last order well inside the check-in's quiet days.

A few rows are bad on purpose, to show how an import reports them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

SAMPLE_KINDS = ("customers", "orders", "referrals", "meetings", "reviews")
FRESH_ORDER_AGE = timedelta(hours=3)
REVIEW_AGE = timedelta(hours=2)
REVIEWER = "C-020"
"""A regular (Zara Ahmed) with no other occasion today: her review is thanked."""
MEETING_AGE = timedelta(hours=26)
NEAR_DAYS = 4
"""Past dates are kept at least this many days of the year away from today's month and day,
so that no birthday or anniversary but the demo's own falls inside a detection run."""


@dataclass(frozen=True)
class Order:
    days_ago: int
    amount: str
    margin: str
    description: str


Role = Literal[
    "birthday",  # their birthday is today, in their own time zone
    "opted_out",  # the same, but they opted out
    "fresh_order",  # ordered three hours ago
    "referrer",  # brought a friend today
    "referred",  # the friend
    "first_meeting",  # met for the first time yesterday
    "regular",  # nothing today
]


@dataclass(frozen=True)
class Person:
    """One sample customer and their part in the demo."""

    id: str
    name: str
    email: str
    zone: str | None  # None: the business's time zone
    role: Role = "regular"
    orders: tuple[Order, ...] = ()
    birthday_in: int | None = None
    """For everyone without a birthday today: it is this many days from today (None: none)."""
    age: int = 40
    preferred_name: str = ""
    pet_name: str = ""


def _orders(*rows: tuple[int, str, str, str]) -> tuple[Order, ...]:
    return tuple(Order(*row) for row in rows)


PEOPLE: tuple[Person, ...] = (
    Person(
        "C-001",
        "Margaret Okafor",
        "margaret.okafor@example.com",
        "Europe/London",
        "referrer",
        _orders(
            (610, "84.00", "30.00", "a walnut cutting board"),
            (420, "129.50", "45.00", "a set of linen napkins"),
            (230, "210.00", "80.00", "a stoneware dinner set"),
            (95, "64.00", "22.00", "a serving bowl"),
            (25, "148.00", "55.00", "a pair of table lamps"),
        ),
        birthday_in=107,
        age=65,
        preferred_name="Maggie",
        pet_name="Biscuit",
    ),
    Person(
        "C-002",
        "Aiko Tanaka",
        "aiko@example.net",
        "Asia/Tokyo",
        "birthday",
        _orders(
            (300, "310.00", "120.00", "an indigo throw"),
            (60, "95.00", "35.00", "a tea bowl"),
        ),
        age=38,
        pet_name="Mochi",
    ),
    Person(
        "C-003",
        "Teuila Tekaai",
        "teuila@example.com",
        "Pacific/Kiritimati",
        "birthday",
        _orders((180, "72.00", "25.00", "a woven basket"), (40, "56.00", "20.00", "two mugs")),
        age=36,
    ),
    Person(
        "C-004",
        "Dana Brooks",
        "dana.brooks@example.org",
        "America/New_York",
        "birthday",
        _orders((150, "45.00", "15.00", "a bud vase"), (33, "88.00", "30.00", "a fruit bowl")),
        age=51,
    ),
    Person(
        "C-005",
        "Oliver Hughes",
        "oliver.hughes@example.com",
        None,
        "birthday",
        _orders((90, "38.00", "12.00", "a candle holder")),
        age=29,
    ),
    Person(
        "C-006",
        "Sefa Mauga",
        "sefa@example.com",
        "Pacific/Pago_Pago",
        "birthday",
        (),  # signed up for the newsletter and never ordered: the least valuable
        age=32,
    ),
    Person(
        "C-007",
        "Hannah Weber",
        "hannah.weber@example.de",
        "Europe/Berlin",
        "opted_out",
        _orders((70, "120.00", "40.00", "a planter")),
        age=41,
    ),
    Person(
        "C-008",
        "Priya Raman",
        "priya.raman@example.com",
        "Asia/Kolkata",
        "fresh_order",
        _orders((0, "18.75", "6.00", "beeswax candles"), (75, "42.00", "14.00", "a soap dish")),
        birthday_in=301,
    ),
    Person(
        "C-009",
        "Liam O'Connor",
        "liam.oconnor@example.com",
        None,
        "fresh_order",
        _orders((0, "64.00", "24.00", "a salad bowl"), (50, "30.00", "10.00", "coasters")),
        birthday_in=26,
    ),
    Person(
        "C-010",
        "Grace Kim",
        "grace.kim@example.com",
        "Asia/Seoul",
        "fresh_order",
        _orders((0, "230.00", "90.00", "a celadon vase"), (100, "55.00", "18.00", "a dish")),
        birthday_in=144,
    ),
    Person(
        "C-011",
        "Chloé Martin",
        "chloe.martin@example.fr",
        "Europe/Paris",
        "first_meeting",
        _orders((40, "95.00", "38.00", "a hand-thrown vase")),
        birthday_in=63,
        preferred_name="Clo",
    ),
    Person(
        "C-012",
        "Inês Duarte",
        "ines.duarte@example.pt",
        "Europe/Lisbon",
        "referred",
        birthday_in=211,
    ),
)

REGULARS: tuple[tuple[str, str, str | None], ...] = (
    ("Tomás Herrera", "tomas.herrera@example.org", "America/Mexico_City"),
    ("Priya Nair", "priya.nair@example.com", "Asia/Kolkata"),
    ("Noah Williams", "noah.williams@example.com", "America/Chicago"),
    ("Amara Nwosu", "amara.nwosu@example.com", "Africa/Lagos"),
    ("Lucas Silva", "lucas.silva@example.com", "America/Sao_Paulo"),
    ("Freya Lindqvist", "freya@example.se", "Europe/Stockholm"),
    ("Mateo Rossi", "mateo.rossi@example.it", "Europe/Rome"),
    ("Zara Ahmed", "zara.ahmed@example.com", None),
    ("Kenji Mori", "kenji.mori@example.jp", "Asia/Tokyo"),
    ("Ruby Clarke", "ruby.clarke@example.co.uk", None),
    ("Isla Campbell", "isla.campbell@example.com", "Europe/London"),
    ("Ethan Wright", "ethan.wright@example.com", "Australia/Sydney"),
    ("Leila Haddad", "leila.haddad@example.com", "Asia/Dubai"),
    ("Sam O'Brien", "sam.obrien@example.ie", "Europe/Dublin"),
    ("Mia Novak", "mia.novak@example.com", "America/Los_Angeles"),
    ("Arjun Mehta", "arjun.mehta@example.com", "Asia/Kolkata"),
    ("Nina Petrova", "nina.petrova@example.com", "Europe/Berlin"),
    ("Omar Farouk", "omar.farouk@example.com", "Africa/Cairo"),
)
"""Customers with no occasion today: their order histories make the lifetime values."""

BAD_CUSTOMERS = (
    ("C-098", "Olu Adeyemi", "olu.adeyemi@example.com", "2001-02-30", "Africa/Lagos"),
    ("C-099", "Jo Park", "jo@example.com; jo.park@example.org", "1992-08-21", "Asia/Seoul"),
)
"""Rejected on import: a date that does not exist; two addresses in one cell."""


def everyone() -> list[Person]:
    """The demo's customers: those with a part to play, then the regulars."""
    people = list(PEOPLE)
    for number, (name, email, zone) in enumerate(REGULARS, start=len(PEOPLE) + 1):
        spread = number * 37
        history = [
            Order(21 + (spread % 89), f"{20 + spread % 180}.00", f"{8 + spread % 60}.00", "")
        ]
        for extra in range(number % 4):
            days = history[-1].days_ago + 60 + 45 * extra
            history.append(Order(days, f"{35 + (spread + 20 * extra) % 150}.50", "", ""))
        people.append(
            Person(
                f"C-{number:03d}",
                name,
                email,
                zone,
                orders=tuple(history),
                birthday_in=None if number % 5 == 0 else 10 + (spread % 340),
                age=24 + (number * 7) % 50,
            )
        )
    return people


def _zone(person: Person, business: tzinfo) -> tzinfo:
    return ZoneInfo(person.zone) if person.zone else business


def _near_today(day: date, today: date) -> bool:
    """Whether `day`'s month and day come within NEAR_DAYS of today's, in any year."""
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            same = day.replace(year=year)
        except ValueError:  # 29 February
            same = date(year, 2, 28)
        if abs((same - today).days) <= NEAR_DAYS:
            return True
    return False


def _away_from_today(day: date, today: date) -> date:
    """`day`, or a week earlier until its month and day are not near today's."""
    while _near_today(day, today):
        day -= timedelta(days=7)
    return day


def _born(on: date, age: int) -> date:
    """A date of birth with `on`'s month and day, about `age` years before it."""
    year = on.year - age
    while True:
        try:
            return on.replace(year=year)
        except ValueError:  # 29 February: a leap year it is
            year -= 1


def write_samples(folder: Path, now: datetime, business: tzinfo) -> dict[str, Path]:
    """Write customers.csv, orders.csv, referrals.csv, meetings.csv and reviews.csv for `now`
    into `folder` (`business`: the business's time zone); the files by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    today = now.astimezone(business).date()
    people = everyone()
    paths = {kind: folder / f"{kind}.csv" for kind in SAMPLE_KINDS}
    _write(
        paths["customers"],
        (
            "id",
            "name",
            "email",
            "birthday",
            "timezone",
            "customer_since",
            "opted_out",
            "preferred_name",
            "pet_name",
        ),
        [_customer_row(person, now, today, business) for person in people]
        + [[*bad, "", "", "", ""] for bad in BAD_CUSTOMERS],
    )
    _write(
        paths["orders"],
        ("id", "customer_id", "placed_at", "amount", "margin", "description"),
        [
            *(row for person in people for row in _order_rows(person, now, business)),
            ["A-9999", "C-097", _local(today - timedelta(days=30)), "20.00", "", "a gift card"],
        ],
    )
    referred = next(person for person in people if person.role == "referred")
    referrer = next(person for person in people if person.role == "referrer")
    _write(
        paths["referrals"],
        ("referrer_id", "referred_id", "referred_on"),
        [
            [referrer.id, referred.id, today.isoformat()],
            ["C-009", "C-009", today.isoformat()],
        ],
    )
    newcomer = next(person for person in people if person.role == "first_meeting")
    met_at = (now - MEETING_AGE).astimezone(_zone(newcomer, business))
    _write(
        paths["meetings"],
        ("customer_id", "met_at", "note"),
        [[newcomer.id, met_at.isoformat(timespec="minutes"), "Pottery workshop"]],
    )
    _write_reviews(paths["reviews"], people, now, today, business)
    return paths


def _write_reviews(
    path: Path, people: Sequence[Person], now: datetime, today: date, business: tzinfo
) -> None:
    """Today's review, an old one (history: no note) and one naming no customer (rejected)."""
    reviewer = next(person for person in people if person.id == REVIEWER)
    written = (now - REVIEW_AGE).astimezone(_zone(reviewer, business))
    _write(
        path,
        ("id", "customer_id", "reviewed_at", "where", "rating", "url", "text"),
        [
            [
                "R-1",
                reviewer.id,
                written.isoformat(timespec="minutes"),
                "Google",
                "5",
                "https://maps.example.com/reviews/R-1",
                "I bought a serving bowl as a gift and ended up buying one for myself too. "
                "Beautiful work, carefully wrapped, and Ada's handwritten card was a lovely touch.",
            ],
            [
                "",
                "C-001",
                _local(today - timedelta(days=400)),
                "Yelp",
                "4",
                "",
                "A lovely little shop with a warm welcome.",
            ],
            ["R-3", "C-404", _local(today), "Google", "5", "", "Great mugs!"],
        ],
    )


def _write(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def _local(day: date, at: time = time(10, 15)) -> str:
    """A local date and time without an offset: the importer reads it in the customer's zone."""
    return datetime.combine(day, at).isoformat(timespec="minutes")


def _customer_row(person: Person, now: datetime, today: date, business: tzinfo) -> list[str]:
    zone = _zone(person, business)
    if person.role in ("birthday", "opted_out"):
        birthday = _born(now.astimezone(zone).date(), person.age).isoformat()
    elif person.birthday_in is not None:
        born = _born(today + timedelta(days=person.birthday_in), person.age)
        birthday = born.isoformat() if person.age % 2 else born.strftime("--%m-%d")
    else:
        birthday = ""
    if person.role == "referred":
        since = today
    else:
        first_order = max((order.days_ago for order in person.orders), default=400)
        since = _away_from_today(today - timedelta(days=first_order), today)
    opted_out = (today - timedelta(days=150)).isoformat() if person.role == "opted_out" else ""
    return [
        person.id,
        person.name,
        person.email,
        birthday,
        person.zone or "",
        since.isoformat(),
        opted_out,
        person.preferred_name,
        person.pet_name,
    ]


def _order_rows(person: Person, now: datetime, business: tzinfo) -> list[list[str]]:
    zone = _zone(person, business)
    rows = []
    for number, order in enumerate(sorted(person.orders, key=lambda o: -o.days_ago), start=1):
        if order.days_ago == 0:
            placed = (now - FRESH_ORDER_AGE).astimezone(zone).isoformat(timespec="minutes")
        else:
            day = now.astimezone(zone).date() - timedelta(days=order.days_ago)
            placed = _local(day, time(9 + number % 8, 5 * number % 60))
        rows.append(
            [
                f"A-{person.id[2:]}{number:02d}",
                person.id,
                placed,
                order.amount,
                order.margin,
                order.description,
            ]
        )
    return rows
