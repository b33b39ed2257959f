"""One detection run: read what is new, ask the rules which notes are due, record them.

What a run looks at (so a tick costs what is new, not the size of the store):
- orders, referrals and meetings with an id above the watermark of the previous run;
- customers whose birthday, first-purchase day or `first_met_on` falls on a local day the run
  covers, through the indexed month-day and date columns;
- check-ins once per UTC day (the first run of a day), from the customers' last orders.

The span a run covers starts where the previous run ended. After a long stop it reaches back at
most as far as the longest `max_lateness` (plus a day), so a year of downtime does not record
a year of expired notes; a first run reaches back one day. Events that arrived already too late
for their note (an order imported months after it was placed) are history, not missed
occasions: they get no touch at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Select, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.occasions.dates import month_days_between
from scheduler.occasions.rules import (
    FirstMeetingFact,
    Occasion,
    OrderFact,
    QuietCustomer,
    ReferralFact,
    Span,
    YearlyDate,
    anniversaries,
    birthdays,
    check_ins,
    first_meetings,
    follow_ups,
    order_thanks,
    referral_thanks,
    superseded_orders,
)
from scheduler.occasions.timing import SendWindow
from scheduler.outbox import Contact, RecordCounts, record, touches
from scheduler.settings import OccasionKind, Settings
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
meetings = metadata.tables["meetings"]
marks = metadata.tables["detection_marks"]
customer_values = metadata.tables["customer_values"]

RUN, ORDERS, REFERRALS, MEETINGS, CHECK_INS = "run", "orders", "referrals", "meetings", "check_ins"
ZONE_REACH = timedelta(days=1)
"""Local days run from UTC-12 to UTC+14: a UTC day's neighbours cover every zone's."""


@dataclass
class DetectionReport:
    """What one run looked at and recorded."""

    since: datetime
    now: datetime
    recorded: RecordCounts = field(default_factory=Counter)
    history: int = 0
    """Events that arrived too late for their note, and got none."""
    superseded: int = 0
    """Waiting order notes (thanks, follow-ups) skipped: the customer ordered again within the
    thanks delay."""

    def count(self, kind: OccasionKind, status: str) -> int:
        return self.recorded[(kind, status)]


def detect(engine: Engine, settings: Settings, now: datetime) -> DetectionReport:
    """Run detection once at `now`, in one transaction (SQLite: under the write lock)."""
    with write_transaction(engine) as connection:
        return detect_on(connection, settings, now)


def detect_on(connection: Connection, settings: Settings, now: datetime) -> DetectionReport:
    """Like `detect`, inside the caller's transaction (so a plan can roll it back)."""
    state = _read_marks(connection)
    reach = max(kind.max_lateness for kind in _occasion_settings(settings)) + timedelta(days=1)
    previous = state.get(RUN, (None, None))[0]
    since = max(previous, now - reach) if previous else now - timedelta(days=1)
    report = DetectionReport(since=since, now=now)
    if now <= since:
        return report
    span = Span(since, now)
    detector = _Detector(connection, settings, span, report)
    found = detector.all(state)
    contacts = _contacts(connection, {o.customer_id for o in found}, detector.default_zone)
    report.recorded = record(connection, found, contacts, now=now, schedule=settings.schedule)
    _write_marks(connection, {RUN: (now, None), **detector.new_marks}, now)
    return report


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
        self.default_zone = ZoneInfo(settings.business.timezone)
        self.zones: dict[str | None, tzinfo] = {None: self.default_zone}
        self.new_marks: dict[str, tuple[datetime | None, int | None]] = {}

    def zone(self, name: str | None) -> tzinfo:
        found = self.zones.get(name)
        if found is None:
            found = self.zones[name] = ZoneInfo(name) if name else self.default_zone
        return found

    def all(self, state: dict[str, tuple[datetime | None, int | None]]) -> list[Occasion]:
        found: list[Occasion] = []
        if self.occasions.birthday.enabled:
            found += self.birthdays()
        if self.occasions.anniversary.enabled:
            found += self.anniversaries()
        found += self.orders(state.get(ORDERS, (None, None))[1])
        if self.occasions.referral_thanks.enabled:
            found += self.referrals(state.get(REFERRALS, (None, None))[1])
        if self.occasions.first_meeting.enabled:
            found += self.first_meetings(state.get(MEETINGS, (None, None))[1])
        last_check_in = state.get(CHECK_INS, (None, None))[0]
        if self.occasions.check_in.enabled and (
            last_check_in is None or last_check_in.date() < self.span.now.date()
        ):
            found += self.check_ins()
            self.new_marks[CHECK_INS] = (self.span.now, None)
        return found

    # Dated occasions, through the indexed columns -------------------------------------

    def _utc_days(self, shift: timedelta = timedelta(0)) -> tuple[date, date]:
        """Every local day the span can touch in any zone, shifted by `shift`."""
        first = (self.span.since - ZONE_REACH + shift).date()
        last = (self.span.now + ZONE_REACH + shift).date()
        return first, last

    def birthdays(self) -> list[Occasion]:
        settings = self.occasions.birthday
        pairs = month_days_between(*self._utc_days(timedelta(days=settings.days_before)))
        rows = self.connection.execute(birthday_query(pairs))
        people = [
            YearlyDate(
                row.id, self.zone(row.timezone), row.birth_month, row.birth_day, row.birth_year
            )
            for row in rows
        ]
        return birthdays(people, self.span, settings, self.window)

    def anniversaries(self) -> list[Occasion]:
        first, last = self._utc_days()
        earliest = self.connection.execute(select(func.min(customers.c.customer_since))).scalar()
        if earliest is None:
            return []
        pairs = month_days_between(first, last)
        dates = [
            day
            for year in range(earliest.year, last.year)
            for month, day_of_month in pairs
            if (day := _date_or_none(year, month, day_of_month)) is not None
        ]
        if not dates:
            return []
        rows = self.connection.execute(anniversary_query(dates))
        since = [
            YearlyDate(
                row.id,
                self.zone(row.timezone),
                row.customer_since.month,
                row.customer_since.day,
                row.customer_since.year,
            )
            for row in rows
        ]
        return anniversaries(
            since, self.span, self.occasions.anniversary, self.window, self.occasions.birthday.feb29
        )

    # Event occasions, by watermark ----------------------------------------------------

    def orders(self, last_id: int | None) -> list[Occasion]:
        thanks, follow = self.occasions.order_thanks, self.occasions.follow_up
        if not (thanks.enabled or follow.enabled):
            return []
        query = new_orders_query(last_id or 0)
        rows = self.connection.execute(query).all()
        if not rows:
            return []
        self.new_marks[ORDERS] = (None, rows[-1].id)
        facts = [
            OrderFact(
                row.customer_id, row.external_id, row.placed_at, row.amount, self.zone(row.timezone)
            )
            for row in rows
        ]
        arrived = {row.external_id: row.created_at for row in rows}
        neighbours = self._neighbours(facts, thanks.delay)
        superseded = superseded_orders([*facts, *neighbours], thanks.delay)
        self._drop_superseded(facts, neighbours, superseded)
        found: list[Occasion] = []
        if thanks.enabled:
            found += order_thanks(facts, neighbours, thanks, self.window)
        if follow.enabled:  # one follow-up for a run of orders, like the thanks
            latest = [fact for fact in facts if fact.order_id not in superseded]
            found += follow_ups(latest, follow, self.window)
        return self._not_history(found, arrived)

    def _neighbours(self, facts: Sequence[OrderFact], delay: timedelta) -> list[OrderFact]:
        """The same customers' other orders placed within `delay` of the new ones."""
        new_ids = {fact.order_id for fact in facts}
        earliest = min(fact.placed_at for fact in facts) - delay
        latest = max(fact.placed_at for fact in facts) + delay
        customer_ids = sorted({fact.customer_id for fact in facts})
        found: list[OrderFact] = []
        for start in range(0, len(customer_ids), 500):
            rows = self.connection.execute(
                neighbours_query(customer_ids[start : start + 500], earliest, latest)
            )
            found += [
                OrderFact(row.customer_id, row.external_id, row.placed_at, row.amount, UTC)
                for row in rows
                if row.external_id not in new_ids
            ]
        return found

    def _drop_superseded(
        self, facts: Sequence[OrderFact], neighbours: Sequence[OrderFact], superseded: set[str]
    ) -> None:
        """Earlier orders' thanks and follow-ups still waiting, now that a later order takes
        their place."""
        new = {fact.order_id for fact in facts}
        older = [o for o in neighbours if o.order_id in superseded and o.order_id not in new]
        if not older:
            return
        keys = [f"{prefix}:{o.order_id}" for o in older for prefix in ("order", "follow_up")]
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
        """Drop occasions whose event was stored only after its note was already too late.
        `arrived` maps the reference in an occasion's key (after the colon) to when its event
        was stored."""
        kept = []
        for occasion in found:
            stored_at = arrived.get(occasion.key.split(":", 1)[-1])
            if stored_at is not None and occasion.too_late(stored_at):
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
                referred.c.external_id,
                referrer.c.timezone,
            )
            .join(referred, referred.c.id == referrals.c.referred_id)
            .join(referrer, referrer.c.id == referrals.c.referrer_id)
            .where(referrals.c.id > (last_id or 0))
            .order_by(referrals.c.id)
        ).all()
        if not rows:
            return []
        self.new_marks[REFERRALS] = (None, rows[-1].id)
        facts = [
            ReferralFact(row.referrer_id, row.external_id, row.created_at, self.zone(row.timezone))
            for row in rows
        ]
        return referral_thanks(facts, self.occasions.referral_thanks, self.window)

    def first_meetings(self, last_id: int | None) -> list[Occasion]:
        """New meetings that are their customer's first, and `first_met_on` days in the span."""
        rows = self.connection.execute(
            select(meetings.c.id, meetings.c.customer_id, meetings.c.created_at)
            .where(meetings.c.id > (last_id or 0))
            .order_by(meetings.c.id)
        ).all()
        facts: dict[int, FirstMeetingFact] = {}
        arrived: dict[int, datetime] = {}
        if rows:
            self.new_marks[MEETINGS] = (None, rows[-1].id)
            for row in rows:
                arrived.setdefault(row.customer_id, row.created_at)
            facts.update(self._first_meetings_of(sorted(arrived)))
        first_day, last_day = self._utc_days(-self.occasions.first_meeting.delay)
        for row in self.connection.execute(first_met_on_query(first_day, last_day)):
            facts.setdefault(
                row.id, FirstMeetingFact(row.id, self.zone(row.timezone), met_on=row.first_met_on)
            )
        found = first_meetings(facts.values(), self.occasions.first_meeting, self.window)
        kept = []
        for occasion in found:
            stored_at = arrived.get(occasion.customer_id)
            if stored_at is not None and occasion.too_late(stored_at):
                self.report.history += 1
            else:
                kept.append(occasion)
        return kept

    def _first_meetings_of(self, ids: list[int]) -> dict[int, FirstMeetingFact]:
        """Each customer's first meeting, unless `first_met_on` says they met earlier."""
        facts: dict[int, FirstMeetingFact] = {}
        for start in range(0, len(ids), 500):
            firsts = self.connection.execute(
                select(
                    meetings.c.customer_id,
                    func.min(meetings.c.met_at).label("met_at"),
                    customers.c.timezone,
                    customers.c.first_met_on,
                )
                .join(customers, customers.c.id == meetings.c.customer_id)
                .where(meetings.c.customer_id.in_(ids[start : start + 500]))
                .group_by(meetings.c.customer_id, customers.c.timezone, customers.c.first_met_on)
            )
            for first in firsts:
                zone = self.zone(first.timezone)
                met_at = _aware(first.met_at)
                if (
                    first.first_met_on is None
                    or met_at.astimezone(zone).date() <= first.first_met_on
                ):
                    facts[first.customer_id] = FirstMeetingFact(
                        first.customer_id, zone, met_at=met_at
                    )
        return facts

    def check_ins(self) -> list[Occasion]:
        """Customers whose last order is older than `quiet_days`; the rule decides the rest."""
        settings = self.occasions.check_in
        values_known = (
            self.connection.execute(select(func.count()).select_from(customer_values)).scalar_one()
            > 0
        )
        last_order = (
            select(orders.c.customer_id, func.max(orders.c.placed_at).label("last_order_at"))
            .group_by(orders.c.customer_id)
            .subquery()
        )
        quiet_since = self.span.now - timedelta(days=settings.quiet_days)
        candidates = self.connection.execute(
            select(
                customers.c.id,
                customers.c.timezone,
                last_order.c.last_order_at,
                customer_values.c.total,
                customer_values.c.tier,
            )
            .join(last_order, last_order.c.customer_id == customers.c.id)
            .outerjoin(customer_values, customer_values.c.customer_id == customers.c.id)
            .where(last_order.c.last_order_at <= quiet_since)
        ).all()
        if not candidates:
            return []
        notes = self._last_notes([row.id for row in candidates])
        people = [
            QuietCustomer(
                row.id,
                self.zone(row.timezone),
                _aware(row.last_order_at),
                *notes.get(row.id, (None, None)),
                value=row.total,
                top_tier=row.tier == "top",
            )
            for row in candidates
        ]
        return check_ins(people, self.span.now, settings, self.window, values_known)

    def _last_notes(self, ids: list[int]) -> dict[int, tuple[datetime | None, datetime | None]]:
        """Per customer: the last note sent (any kind), and the last check-in."""
        found: dict[int, tuple[datetime | None, datetime | None]] = {}
        for start in range(0, len(ids), 500):
            rows = self.connection.execute(
                select(
                    touches.c.customer_id,
                    func.max(touches.c.sent_at).label("last_sent"),
                    func.max(func.coalesce(touches.c.sent_at, touches.c.due_at))
                    .filter(touches.c.kind == "check_in")
                    .label("last_check_in"),
                )
                .where(touches.c.customer_id.in_(ids[start : start + 500]))
                .where(touches.c.status.in_(("pending", "deferred", "claimed", "sent", "unknown")))
                .group_by(touches.c.customer_id)
            )
            for row in rows:
                found[row.customer_id] = (
                    _maybe_aware(row.last_sent),
                    _maybe_aware(row.last_check_in),
                )
        return found


def birthday_query(pairs: Iterable[tuple[int, int]]) -> Select[Any]:
    """Customers born on any of the (month, day) `pairs`, through the month-day index: one
    `month = m AND day IN (...)` per month."""
    by_month: dict[int, list[int]] = {}
    for month, day in sorted(pairs):
        by_month.setdefault(month, []).append(day)
    return select(
        customers.c.id,
        customers.c.birth_month,
        customers.c.birth_day,
        customers.c.birth_year,
        customers.c.timezone,
    ).where(
        or_(
            *(
                and_(customers.c.birth_month == month, customers.c.birth_day.in_(days))
                for month, days in by_month.items()
            )
        )
    )


def anniversary_query(dates: Sequence[date]) -> Select[Any]:
    """Customers who became customers on any of `dates`, through the customer_since index."""
    return select(customers.c.id, customers.c.customer_since, customers.c.timezone).where(
        customers.c.customer_since.in_(dates)
    )


def first_met_on_query(first: date, last: date) -> Select[Any]:
    """Customers first met on a day from `first` to `last`, through the first_met_on index."""
    return select(customers.c.id, customers.c.first_met_on, customers.c.timezone).where(
        customers.c.first_met_on.between(first, last)
    )


def new_orders_query(last_id: int) -> Select[Any]:
    """Orders after the watermark, with their customer's zone, by the primary key."""
    return (
        select(
            orders.c.id,
            orders.c.external_id,
            orders.c.customer_id,
            orders.c.placed_at,
            orders.c.amount,
            orders.c.created_at,
            customers.c.timezone,
        )
        .join(customers, customers.c.id == orders.c.customer_id)
        .where(orders.c.id > last_id)
        .order_by(orders.c.id)
    )


def neighbours_query(
    customer_ids: Sequence[int], earliest: datetime, latest: datetime
) -> Select[Any]:
    """These customers' orders placed in `earliest..latest`, through (customer, placed_at)."""
    return select(
        orders.c.customer_id, orders.c.external_id, orders.c.placed_at, orders.c.amount
    ).where(
        and_(orders.c.customer_id.in_(customer_ids), orders.c.placed_at.between(earliest, latest))
    )


def _date_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _aware(value: Any) -> datetime:
    """A timestamp from an aggregate, which SQLite returns as text without our column type."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, found {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _maybe_aware(value: Any) -> datetime | None:
    return None if value is None else _aware(value)


def _contacts(connection: Connection, ids: set[int], default_zone: tzinfo) -> dict[int, Contact]:
    found: dict[int, Contact] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        rows = connection.execute(
            select(
                customers.c.id, customers.c.email, customers.c.opted_out_at, customers.c.timezone
            ).where(customers.c.id.in_(ordered[start : start + 500]))
        )
        for row in rows:
            zone = ZoneInfo(row.timezone) if row.timezone else default_zone
            found[row.id] = Contact(row.email, row.opted_out_at, zone)
    return found


def _read_marks(connection: Connection) -> dict[str, tuple[datetime | None, int | None]]:
    return {
        row.name: (row.moment, row.last_id)
        for row in connection.execute(select(marks.c.name, marks.c.moment, marks.c.last_id))
    }


def _write_marks(
    connection: Connection, new: dict[str, tuple[datetime | None, int | None]], now: datetime
) -> None:
    """Move the watermarks forward (never back: another instance may have gone further)."""
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    for name, (moment, last_id) in new.items():
        statement = dialect.insert(marks).values(
            name=name, moment=moment, last_id=last_id, updated_at=now
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "moment": func.coalesce(
                    _greatest(connection, marks.c.moment, excluded.moment), excluded.moment
                ),
                "last_id": func.coalesce(
                    _greatest(connection, marks.c.last_id, excluded.last_id), excluded.last_id
                ),
                "updated_at": excluded.updated_at,
            },
        )
        connection.execute(statement)


def _greatest(connection: Connection, *values: Any) -> Any:
    """The larger value (NULL when either is NULL); SQLite's max() of several is GREATEST."""
    if connection.dialect.name == "sqlite":
        return func.max(*values)
    return func.greatest(*values)
