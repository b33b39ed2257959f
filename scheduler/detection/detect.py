"""One detection run: read what is new, ask the rules which notes are due, record them.

What a run looks at (so a tick costs what is new, not the size of the store):
- orders, referrals, meetings and reviews with an id above the watermark of the previous run
  (thanks);
- orders placed `after_days` before a local day the run covers (follow-ups);
- customers whose birthday, first-purchase day or `first_met_on` falls on a local day the run
  covers, through the indexed month-day and date columns;
- check-ins once per UTC day (the first run of a day): the first time, every customer who
  ordered within `stop_after_days`; later, only those who went quiet since the previous pass
  or whose last check-in was `every_days` ago; judged 500 at a time.

The span a run covers starts where the previous run ended. After a long stop it reaches back at
most as far as the longest `max_lateness` (plus a day), so a year of downtime does not record
a year of expired notes; a first run reaches back one day. Events that arrived already too late
for their note (an order imported months after it was placed) are history, not missed
occasions: they get no touch at all.

No row can stop detection. Rows whose dates lie outside 1900-2200 (placeholders such as
9999-12-31, written before import bounded dates or by the business's own application; see
`scheduler.store.calendar_edges`), and orders whose amount is none (1e300, infinity, text, or
PostgreSQL's 'NaN', written by that application), are left out of what a run reads; the new
orders, referrals and meetings among them are skipped with a warning naming the table, the
row's own id and why, and counted in the report (`skipped`). A birth year outside that range
counts as unknown, and such a customer_since or first meeting never falls due. Should a rule
still fail on a row (its occasion cannot be computed), that row alone is skipped the same way;
every other occasion is still recorded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, select

from scheduler.config.settings import Settings, time_zone_names
from scheduler.detection.check_ins import QuietCustomers
from scheduler.detection.routing import route
from scheduler.occasions.dates import EARLIEST_YEAR, LATEST_YEAR, month_days_between
from scheduler.occasions.rules import (
    FirstMeetingFact,
    Occasion,
    OrderFact,
    ReferralFact,
    ReviewFact,
    Span,
    YearlyDate,
    anniversaries,
    birthdays,
    first_meetings,
    first_reviews_of_their_day,
    follow_ups,
    order_thanks,
    referral_is_history,
    referral_thanks,
    review_is_history,
    review_thanks,
    superseded_orders,
)
from scheduler.occasions.timing import SendWindow
from scheduler.store.bulk import chunked
from scheduler.store.by_hand import expire_by_hand, missed
from scheduler.store.calendar_edges import (
    FIRST_DAY,
    SkippedRow,
    all_plausible,
    implausible_rows,
    plausible,
)
from scheduler.store.db import write_transaction
from scheduler.store.marks import read_marks, write_marks
from scheduler.store.models import metadata
from scheduler.store.occasion_queries import (
    anniversary_query,
    birthday_query,
    first_met_on_query,
    neighbours_query,
    new_orders_query,
    placed_between_query,
    zone_clause,
)
from scheduler.store.outbox import Contact, RecordCounts, record, touches
from scheduler.store.types import aware_utc
from scheduler.vocabulary import OccasionKind
from scheduler.zones import ZoneBook

Fact = TypeVar("Fact")

log = logging.getLogger("appreciate.detect")
customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
meetings = metadata.tables["meetings"]
reviews = metadata.tables["reviews"]

RUN, ORDERS, REFERRALS, MEETINGS, CHECK_INS = "run", "orders", "referrals", "meetings", "check_ins"
REVIEWS = "reviews"
CHECK_IN_CHUNK = 500
"""Quiet customers are judged and recorded this many at a time, so memory stays flat."""
BEHIND_UTC, AHEAD_OF_UTC = timedelta(hours=12), timedelta(hours=14)
"""Local clocks run from UTC-12 to UTC+14: the UTC days of a span widened by these hold every
zone's local days."""
DATED = {
    ORDERS: ((orders.c.placed_at, False), (orders.c.created_at, False), (orders.c.amount, False)),
    REFERRALS: ((referrals.c.referred_on, True), (referrals.c.created_at, False)),
    MEETINGS: ((meetings.c.met_at, False), (meetings.c.created_at, False)),
    REVIEWS: ((reviews.c.reviewed_at, False), (reviews.c.created_at, False)),
}
"""The dates (and the amount) detection reads from each event table, (column, may be NULL): a
row with a date outside 1900-2200, or an amount that is none, is skipped (see the module's
docstring)."""
TABLES = {ORDERS: orders, REFERRALS: referrals, MEETINGS: meetings, REVIEWS: reviews}
COMPUTING_FAILED = (OverflowError, ValueError)
"""What a rule raises on a date it cannot compute with (past the calendar's end, say)."""


@dataclass
class DetectionReport:
    """What one run looked at and recorded."""

    since: datetime
    now: datetime
    recorded: RecordCounts = field(default_factory=Counter)
    history: int = 0
    """Events that arrived too late for their note, and got none."""
    superseded: int = 0
    """Waiting order thanks skipped: the customer ordered again within the delay."""
    by_hand_expired: dict[str, int] = field(default_factory=dict)
    """Cards and calls whose time passed without the owner, expired now (by channel)."""
    same_day_reviews: int = 0
    """New reviews not thanked: the customer's first review that day is (the same review
    from two sources, or two sites the same day)."""
    skipped: list[SkippedRow] = field(default_factory=list)
    """Rows left out: a date outside 1900-2200, an amount that is none, or an occasion that
    could not be computed."""

    def count(self, kind: OccasionKind, status: str) -> int:
        return self.recorded[(kind, status)]

    def skip(self, row: SkippedRow) -> None:
        """Leave `row` out, with a warning."""
        self.skipped.append(row)
        log.warning("detection skipped %s", row)


def detect(engine: Engine, settings: Settings, now: datetime) -> DetectionReport:
    """Run detection once at `now`: one transaction (SQLite: under the write lock), then the
    day's check-in pass, if due, in transactions of CHECK_IN_CHUNK customers each, so that a
    long first pass never holds other writers up. Interrupted, the pass is done again in full
    by the next run (what it recorded already stays, once)."""
    with write_transaction(engine) as connection:
        report, quiet = _detect(connection, settings, now)
    if quiet is not None:
        for part in chunked(quiet, CHECK_IN_CHUNK):
            with write_transaction(engine) as connection:
                _check_in(connection, settings, report, part)
        with write_transaction(engine) as connection:
            write_marks(connection, {CHECK_INS: (now, None)}, now)
    return report


def detect_on(connection: Connection, settings: Settings, now: datetime) -> DetectionReport:
    """Like `detect`, all inside the caller's transaction (so a plan can roll it back)."""
    report, quiet = _detect(connection, settings, now)
    if quiet is not None:
        for part in chunked(quiet, CHECK_IN_CHUNK):
            _check_in(connection, settings, report, part)
        write_marks(connection, {CHECK_INS: (now, None)}, now)
    return report


def _detect(
    connection: Connection, settings: Settings, now: datetime
) -> tuple[DetectionReport, list[tuple[int, datetime]] | None]:
    """Every occasion but check-ins, recorded; and the customers a check-in pass must judge
    (None when no pass is due)."""
    state = read_marks(connection)
    reach = max(kind.max_lateness for kind in _occasion_settings(settings)) + timedelta(days=1)
    previous = state.get(RUN, (None, None))[0]
    since = max(previous, now - reach) if previous else now - timedelta(days=1)
    report = DetectionReport(since=since, now=now)
    if now <= since:
        return report, None
    detector = _Detector(connection, settings, Span(since, now), report)
    found = detector.all(state)
    early = _early_cards(connection, settings, detector.span, report)
    contacts = detector.contacts
    for customer_id, contact in early.contacts.items():
        contacts.setdefault(customer_id, contact)
    missing = {o.customer_id for o in [*found, *early.found]} - contacts.keys()
    contacts.update(_contacts(connection, missing, detector.zone))
    business_zone = detector.zone.default
    found = [
        *route(connection, settings, found, contacts, business_zone),
        *route(connection, settings, early.found, contacts, business_zone, cards_only=True),
    ]
    report.recorded = record(connection, found, contacts, now=now, schedule=settings.schedule)
    report.by_hand_expired = expire_by_hand(connection, now)
    for channel, count in report.by_hand_expired.items():
        log.warning("expired: %s", missed(channel, count))
    quiet = None
    if detector.check_ins_due(state):
        finder = QuietCustomers(connection, settings, detector.span, detector.zone)
        quiet = finder.customers(state.get(CHECK_INS, (None, None))[0])
    write_marks(connection, {RUN: (now, None), **detector.new_marks}, now)
    return report, quiet


@dataclass
class _EarlyCards:
    found: list[Occasion] = field(default_factory=list)
    contacts: dict[int, Contact] = field(default_factory=dict)


def _early_cards(
    connection: Connection, settings: Settings, span: Span, report: DetectionReport
) -> _EarlyCards:
    """Birthdays and anniversaries `card_lead_days` ahead of the span, for the cards due that
    much before their day. (The same occasion seen again on its day is the same key: recorded
    once. A card the look-ahead missed, on a first run say, is recorded on the day, late.)"""
    channels = settings.channels
    lead = timedelta(days=channels.card_lead_days)
    if not channels.cards or not lead:
        return _EarlyCards()
    ahead = _Detector(connection, settings, Span(span.since + lead, span.now + lead), report)
    found: list[Occasion] = []
    if ahead.occasions.birthday.enabled:
        found += ahead.birthdays()
    if ahead.occasions.anniversary.enabled:
        found += ahead.anniversaries()
    return _EarlyCards(found, ahead.contacts)


def _check_in(
    connection: Connection,
    settings: Settings,
    report: DetectionReport,
    quiet: Sequence[tuple[int, datetime]],
) -> None:
    """Judge and record one chunk of the check-in pass."""
    zone = ZoneBook(ZoneInfo(settings.business.timezone))
    finder = QuietCustomers(connection, settings, Span(report.since, report.now), zone)
    found, contacts = finder.judge(quiet)
    found = route(connection, settings, found, contacts, zone.default)
    report.recorded += record(
        connection, found, contacts, now=report.now, schedule=settings.schedule
    )


def _occasion_settings(settings: Settings) -> list[Any]:
    occasions = settings.occasions
    return [getattr(occasions, name) for name in type(occasions).model_fields]


class _Detector:
    """The queries of one run, each feeding one rule."""

    def __init__(
        self, connection: Connection, settings: Settings, span: Span, report: DetectionReport
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.occasions = settings.occasions
        self.span = span
        self.report = report
        self.window = SendWindow.from_settings(settings.schedule)
        self.zone = ZoneBook(ZoneInfo(settings.business.timezone))
        self.new_marks: dict[str, tuple[datetime | None, int | None]] = {}
        self.contacts: dict[int, Contact] = {}

    def _day_groups(self, shift: timedelta) -> list[tuple[list[date], ColumnElement[bool] | None]]:
        """The UTC dates whose occurrences a dated rule may want (shifted by `shift`), grouped
        by the zones in which they fall on a local day of the span: a date only the far east
        has reached asks only for customers there. None: every zone."""
        first, last = self._utc_days(shift)
        everywhere = (frozenset(time_zone_names()), True)
        groups: dict[tuple[frozenset[str], bool], list[date]] = {}
        day = first
        while day <= last:
            names = frozenset(name for name in time_zone_names() if self._reaches(day, name, shift))
            default_too = self._reaches_zone(day, self.zone.default, shift)
            if names or default_too:
                groups.setdefault((names, default_too), []).append(day)
            day += timedelta(days=1)
        return [
            (days, None if key == everywhere else zone_clause(*key)) for key, days in groups.items()
        ]

    def _reaches(self, day: date, name: str, shift: timedelta) -> bool:
        return self._reaches_zone(day, self.zone(name), shift)

    def _reaches_zone(self, day: date, zone: tzinfo, shift: timedelta) -> bool:
        first, last = self.span.days(zone)
        return first + shift <= day <= last + shift

    def contact_zone(self, customer_id: int, row: Any) -> tzinfo:
        """The customer's zone, noting their contact (a row with CONTACT_COLUMNS) for later."""
        zone = self.zone(row.timezone)
        if customer_id not in self.contacts:
            self.contacts[customer_id] = Contact(row.email, row.opted_out_at, zone)
        return zone

    def all(self, state: dict[str, tuple[datetime | None, int | None]]) -> list[Occasion]:
        found: list[Occasion] = []
        if self.occasions.birthday.enabled:
            found += self.birthdays()
        if self.occasions.anniversary.enabled:
            found += self.anniversaries()
        found += self.orders(state.get(ORDERS, (None, None))[1])
        if self.occasions.follow_up.enabled:
            found += self.follow_ups()
        if self.occasions.referral_thanks.enabled:
            found += self.referrals(state.get(REFERRALS, (None, None))[1])
        if self.occasions.review_thanks.enabled:
            found += self.reviews(state.get(REVIEWS, (None, None))[1])
        if self.occasions.first_meeting.enabled:
            found += self.first_meetings(state.get(MEETINGS, (None, None))[1])
        return found

    def check_ins_due(self, state: dict[str, tuple[datetime | None, int | None]]) -> bool:
        """Check-ins are looked for once per UTC day, on its first run."""
        last = state.get(CHECK_INS, (None, None))[0]
        return self.occasions.check_in.enabled and (
            last is None or last.date() < self.span.now.date()
        )

    # Dated occasions, through the indexed columns -------------------------------------

    def _utc_days(self, shift: timedelta = timedelta(0)) -> tuple[date, date]:
        """Every local day the span can touch in any zone, shifted by `shift`."""
        first = (self.span.since - BEHIND_UTC + shift).date()
        last = (self.span.now + AHEAD_OF_UTC + shift).date()
        return first, last

    def birthdays(self) -> list[Occasion]:
        settings = self.occasions.birthday
        groups = [
            (set().union(*(month_days_between(day, day) for day in days)), zones)
            for days, zones in self._day_groups(timedelta(days=settings.days_before))
        ]
        if not groups:
            return []
        rows = self.connection.execute(birthday_query(groups))
        people = [
            YearlyDate(
                row.id,
                self.contact_zone(row.id, row),
                row.birth_month,
                row.birth_day,
                _plausible_year(row.birth_year),
            )
            for row in rows
        ]
        return self._computed(
            lambda chunk: birthdays(chunk, self.span, settings, self.window),
            people,
            lambda person: self._customer_row(person.customer_id),
        )

    def anniversaries(self) -> list[Occasion]:
        earliest = self.connection.execute(
            select(func.min(customers.c.customer_since)).where(
                customers.c.customer_since >= FIRST_DAY
            )
        ).scalar()
        if earliest is None:
            return []
        groups = []
        for days, zones in self._day_groups(timedelta(0)):
            pairs = set().union(*(month_days_between(day, day) for day in days))
            dates = [
                day
                for year in range(earliest.year, days[-1].year)
                for month, day_of_month in pairs
                if (day := _date_or_none(year, month, day_of_month)) is not None
            ]
            if dates:
                groups.append((dates, zones))
        if not groups:
            return []
        rows = self.connection.execute(anniversary_query(groups))
        since = [
            YearlyDate(
                row.id,
                self.contact_zone(row.id, row),
                row.customer_since.month,
                row.customer_since.day,
                row.customer_since.year,
            )
            for row in rows
        ]
        settings, feb29 = self.occasions.anniversary, self.occasions.birthday.feb29
        return self._computed(
            lambda chunk: anniversaries(chunk, self.span, settings, self.window, feb29),
            since,
            lambda customer: self._customer_row(customer.customer_id),
        )

    # Event occasions, by watermark ----------------------------------------------------

    def orders(self, last_id: int | None) -> list[Occasion]:
        """Thanks for the orders stored since the last run."""
        thanks = self.occasions.order_thanks
        if not thanks.enabled:
            return []
        query = new_orders_query(last_id or 0).where(all_plausible(DATED[ORDERS]))
        rows = self.connection.execute(query).all()
        self._mark_new(ORDERS, last_id, rows[-1].id if rows else None)
        if not rows:
            return []
        facts = [self._order_fact(row) for row in rows]
        neighbours = self._neighbours(facts, thanks.delay)
        superseded = superseded_orders([*facts, *neighbours], thanks.delay)
        self._drop_superseded(facts, neighbours, superseded)
        found = self._computed(
            lambda chunk: order_thanks(chunk, neighbours, thanks, self.window),
            facts,
            lambda fact: SkippedRow("orders", fact.order_id, ""),
        )
        return self._not_history(found, {row.external_id: row.created_at for row in rows})

    def follow_ups(self) -> list[Occasion]:
        """Follow-ups due on the local days of the span: orders placed `after_days` earlier,
        one per run of orders (the latest), through the placed_at index."""
        settings, delay = self.occasions.follow_up, self.occasions.order_thanks.delay
        shift = timedelta(days=settings.after_days)
        start = self.span.since - shift - timedelta(days=1)  # any zone's local day, widened
        end = self.span.now - shift + timedelta(days=1)
        query = placed_between_query(start, end).where(
            plausible(orders.c.created_at), plausible(orders.c.amount)
        )
        rows = self.connection.execute(query).all()
        facts = [self._order_fact(row) for row in rows]
        if not facts:
            return []
        # the window holds every order near these but those just after its end
        near_end = [fact for fact in facts if fact.placed_at > end - delay]
        later = self._neighbours(near_end, delay) if near_end else []
        superseded = superseded_orders([*facts, *later], delay)
        latest = [fact for fact in facts if fact.order_id not in superseded]
        found = self._computed(
            lambda chunk: follow_ups(chunk, self.span, settings, self.window),
            latest,
            lambda fact: SkippedRow("orders", fact.order_id, ""),
        )
        return self._not_history(found, {row.external_id: row.created_at for row in rows})

    def _order_fact(self, row: Any) -> OrderFact:
        return OrderFact(
            row.customer_id,
            row.external_id,
            row.placed_at,
            row.amount,
            self.contact_zone(row.customer_id, row),
        )

    def _neighbours(self, facts: Sequence[OrderFact], delay: timedelta) -> list[OrderFact]:
        """The same customers' other orders placed within `delay` of the new ones."""
        new_ids = {fact.order_id for fact in facts}
        earliest = min(fact.placed_at for fact in facts) - delay
        latest = max(fact.placed_at for fact in facts) + delay
        customer_ids = sorted({fact.customer_id for fact in facts})
        found: list[OrderFact] = []
        for part in chunked(customer_ids):
            query = neighbours_query(part, earliest, latest).where(plausible(orders.c.amount))
            rows = self.connection.execute(query)
            found += [
                OrderFact(row.customer_id, row.external_id, row.placed_at, row.amount, UTC)
                for row in rows
                if row.external_id not in new_ids
            ]
        return found

    def _drop_superseded(
        self, facts: Sequence[OrderFact], neighbours: Sequence[OrderFact], superseded: set[str]
    ) -> None:
        """Earlier orders' thanks still waiting, now that a later order takes their place."""
        new = {fact.order_id for fact in facts}
        older = [o for o in neighbours if o.order_id in superseded and o.order_id not in new]
        if not older:
            return
        keys = [f"order:{o.order_id}" for o in older]
        result = self.connection.execute(
            touches.update()
            .where(
                and_(
                    touches.c.customer_id.in_(sorted({o.customer_id for o in older})),
                    touches.c.occasion_key.in_(keys),
                    touches.c.status.in_(("pending", "deferred")),
                )
            )
            .values(
                status="skipped",
                reason="a later order within the thanks delay takes its place",
                updated_at=self.span.now,
            )
        )
        self.report.superseded += result.rowcount or 0

    def _not_history(
        self, found: Iterable[Occasion], arrived: dict[str, datetime]
    ) -> list[Occasion]:
        """Drop occasions whose event was stored only after its note was already too late, or
        before the span (on a first run: history from before appreciate was watching).
        `arrived` maps the reference in an occasion's key (after the colon) to when its event
        was stored."""
        kept = []
        for occasion in found:
            stored_at = arrived.get(occasion.key.split(":", 1)[-1])
            if stored_at is not None and occasion.too_late(max(stored_at, self.span.since)):
                self.report.history += 1
                continue
            kept.append(occasion)
        return kept

    def referrals(self, last_id: int | None) -> list[Occasion]:
        referred = customers.alias("referred")
        referrer = customers.alias("referrer")
        rows = self.connection.execute(
            select(
                referrals.c.id,
                referrals.c.referrer_id,
                referrals.c.created_at,
                referrals.c.referred_on,
                referred.c.external_id,
                referrer.c.timezone,
            )
            .join(referred, referred.c.id == referrals.c.referred_id)
            .join(referrer, referrer.c.id == referrals.c.referrer_id)
            .where(referrals.c.id > (last_id or 0), all_plausible(DATED[REFERRALS]))
            .order_by(referrals.c.id)
        ).all()
        self._mark_new(REFERRALS, last_id, rows[-1].id if rows else None)
        if not rows:
            return []
        ids = {row.external_id: row.id for row in rows}  # a customer is referred once
        facts = [
            ReferralFact(
                row.referrer_id,
                row.external_id,
                row.created_at,
                self.zone(row.timezone),
                row.referred_on,
            )
            for row in rows
        ]
        settings = self.occasions.referral_thanks
        found = self._computed(
            lambda chunk: referral_thanks(chunk, settings, self.window),
            facts,
            lambda fact: SkippedRow("referrals", f"#{ids[fact.referred_external_id]}", ""),
        )
        self.report.history += sum(1 for fact in facts if _is_history(fact, settings))
        return found

    def reviews(self, last_id: int | None) -> list[Occasion]:
        """Thanks for the reviews stored since the last run (those written long before they
        were recorded are history; see `review_is_history`)."""
        rows = self.connection.execute(
            select(
                reviews.c.id,
                reviews.c.external_id,
                reviews.c.customer_id,
                reviews.c.reviewed_at,
                reviews.c.created_at,
                reviews.c.rating,
                customers.c.timezone,
                customers.c.email,
                customers.c.opted_out_at,
            )
            .join(customers, customers.c.id == reviews.c.customer_id)
            .where(reviews.c.id > (last_id or 0), all_plausible(DATED[REVIEWS]))
            .order_by(reviews.c.id)
        ).all()
        self._mark_new(REVIEWS, last_id, rows[-1].id if rows else None)
        if not rows:
            return []
        facts = [
            ReviewFact(
                row.customer_id,
                row.external_id,
                row.reviewed_at,
                row.created_at,
                self.contact_zone(row.customer_id, row),
                row.rating if isinstance(row.rating, int) else None,
            )
            for row in rows
        ]
        facts, twins = first_reviews_of_their_day(facts, self._earlier_reviews(facts, last_id))
        self.report.same_day_reviews += len(twins)
        for twin in twins:
            log.info(
                "review %s is not thanked: its customer's first review that day is", twin.review_id
            )
        settings = self.occasions.review_thanks
        found = self._computed(
            lambda chunk: review_thanks(chunk, settings, self.window),
            facts,
            lambda fact: SkippedRow("reviews", fact.review_id, ""),
        )
        self.report.history += sum(1 for fact in facts if _review_is_history(fact, settings))
        return self._not_history(found, {fact.review_id: fact.recorded_at for fact in facts})

    def _earlier_reviews(
        self, facts: Sequence[ReviewFact], last_id: int | None
    ) -> dict[int, list[datetime]]:
        """When the reviews stored before `last_id` (by earlier runs) of the customers in
        `facts` were written, from two days before the earliest of `facts` to two days after
        the latest (each customer's reviews in one range of their index)."""
        if last_id is None or not facts:
            return {}
        slack = timedelta(days=2)  # more than any zone's distance from UTC
        start = min(fact.reviewed_at for fact in facts) - slack
        end = max(fact.reviewed_at for fact in facts) + slack
        customer_ids = sorted({fact.customer_id for fact in facts})
        earlier: dict[int, list[datetime]] = {}
        for chunk in chunked(customer_ids):
            rows = self.connection.execute(
                select(reviews.c.customer_id, reviews.c.reviewed_at).where(
                    reviews.c.customer_id.in_(chunk),
                    reviews.c.reviewed_at.between(start, end),
                    reviews.c.id <= last_id,
                )
            )
            for customer_id, reviewed_at in rows:
                earlier.setdefault(customer_id, []).append(reviewed_at)
        return earlier

    def first_meetings(self, last_id: int | None) -> list[Occasion]:
        """New meetings that are their customer's first, and `first_met_on` days in the span."""
        rows = self.connection.execute(
            select(meetings.c.id, meetings.c.customer_id, meetings.c.created_at)
            .where(meetings.c.id > (last_id or 0), all_plausible(DATED[MEETINGS]))
            .order_by(meetings.c.id)
        ).all()
        self._mark_new(MEETINGS, last_id, rows[-1].id if rows else None)
        facts: dict[int, FirstMeetingFact] = {}
        arrived: dict[int, datetime] = {}
        if rows:
            for row in rows:
                arrived.setdefault(row.customer_id, row.created_at)
            facts.update(self._first_meetings_of(sorted(arrived)))
        first_day, last_day = self._utc_days(-self.occasions.first_meeting.delay)
        for row in self.connection.execute(first_met_on_query(first_day, last_day)):
            facts.setdefault(
                row.id,
                FirstMeetingFact(row.id, self.contact_zone(row.id, row), met_on=row.first_met_on),
            )
        settings = self.occasions.first_meeting
        found = self._computed(
            lambda chunk: first_meetings(chunk, settings, self.window),
            list(facts.values()),
            lambda fact: self._customer_row(fact.customer_id),
        )
        kept = []
        for occasion in found:
            stored_at = arrived.get(occasion.customer_id)
            if stored_at is not None and occasion.too_late(max(stored_at, self.span.since)):
                self.report.history += 1
            else:
                kept.append(occasion)
        return kept

    # Rows at the calendar's edges -----------------------------------------------------

    def _mark_new(self, table: str, last_id: int | None, last_read: int | None) -> None:
        """Skip (with a warning) the new rows of `table` that its plausible read left out, and
        move its watermark past everything new, read or skipped."""
        skipped, last_skipped = implausible_rows(
            self.connection, TABLES[table], last_id or 0, DATED[table]
        )
        for row in skipped:
            self.report.skip(row)
        newest = max((n for n in (last_read, last_skipped) if n is not None), default=None)
        if newest is not None:
            self.new_marks[table] = (None, newest)

    def _computed(
        self,
        rule: Callable[[list[Fact]], list[Occasion]],
        facts: Sequence[Fact],
        row_of: Callable[[Fact], SkippedRow],
    ) -> list[Occasion]:
        """`rule(facts)`; should it fail on a date it cannot compute with, each fact is tried
        alone and those that still fail are skipped, with a warning naming their row."""
        try:
            return rule(list(facts))
        except COMPUTING_FAILED:
            pass
        found: list[Occasion] = []
        for fact in facts:
            try:
                found += rule([fact])
            except COMPUTING_FAILED as error:
                row = row_of(fact)
                why = f"its occasion cannot be computed ({type(error).__name__}: {error})"
                self.report.skip(SkippedRow(row.table, row.row, why))
        return found

    def _customer_row(self, customer_id: int) -> SkippedRow:
        own = self.connection.execute(
            select(customers.c.external_id).where(customers.c.id == customer_id)
        ).scalar()
        return SkippedRow("customers", str(own) if own is not None else f"#{customer_id}", "")

    def _first_meetings_of(self, ids: list[int]) -> dict[int, FirstMeetingFact]:
        """Each customer's first meeting, unless `first_met_on` says they met earlier."""
        facts: dict[int, FirstMeetingFact] = {}
        for part in chunked(ids):
            firsts = self.connection.execute(
                select(
                    meetings.c.customer_id,
                    func.min(meetings.c.met_at).label("met_at"),
                    customers.c.timezone,
                    customers.c.first_met_on,
                )
                .join(customers, customers.c.id == meetings.c.customer_id)
                .where(meetings.c.customer_id.in_(part), plausible(meetings.c.met_at))
                .group_by(meetings.c.customer_id, customers.c.timezone, customers.c.first_met_on)
            )
            for first in firsts:
                zone = self.zone(first.timezone)
                met_at = aware_utc(first.met_at)
                if (
                    first.first_met_on is None
                    or met_at.astimezone(zone).date() <= first.first_met_on
                ):
                    facts[first.customer_id] = FirstMeetingFact(
                        first.customer_id, zone, met_at=met_at
                    )
        return facts


def _plausible_year(year: int | None) -> int | None:
    """A year of birth, unless it lies outside 1900-2200 (then unknown)."""
    return year if year is not None and EARLIEST_YEAR <= year <= LATEST_YEAR else None


def _is_history(referral: ReferralFact, settings: Any) -> bool:
    try:
        return referral_is_history(referral, settings)
    except COMPUTING_FAILED:
        return False  # skipped by `_computed` already


def _review_is_history(review: ReviewFact, settings: Any) -> bool:
    try:
        return review_is_history(review, settings)
    except COMPUTING_FAILED:
        return False  # skipped by `_computed` already


def _date_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _contacts(connection: Connection, ids: set[int], zone: ZoneBook) -> dict[int, Contact]:
    found: dict[int, Contact] = {}
    ordered = sorted(ids)
    for part in chunked(ordered):
        rows = connection.execute(
            select(
                customers.c.id, customers.c.email, customers.c.opted_out_at, customers.c.timezone
            ).where(customers.c.id.in_(part))
        )
        for row in rows:
            found[row.id] = Contact(row.email, row.opted_out_at, zone(row.timezone))
    return found
