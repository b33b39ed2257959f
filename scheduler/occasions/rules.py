"""Which notes are due: pure rules from plain facts, a window of time, and the settings.

Each rule returns `Occasion`s: one note for one customer, with a stable key (the same moment
always gives the same key, so the store can insert it "on conflict do nothing"), the moment it
is due (inside the customer's send window) and the moment after which it is too late to send.

Rules, per kind (each has its own named test):
- birthday: on the birthday in the customer's zone, `days_before` earlier if set; key
  `birthday:<year of the birthday>`. Never for the year of birth or before. Without a year of
  birth, every year.
- anniversary: each year on the day someone became a customer; key `anniversary:<n>`, n >= 1.
- Both use the Feb 29 policy of `scheduler.occasions.dates`.
- order_thanks: `delay` after the order, for orders of at least `min_amount`; when the same
  customer ordered again within `delay`, only the later order is thanked (`superseded_orders`).
  Key `order:<order id>`.
- follow_up: on the local day `after_days` after the order; key `follow_up:<order id>`. Like the
  birthdays, found when that day comes (so an opt-out in between is respected); detection asks
  for one per run of orders, as for the thanks.
- referral_thanks: to the referrer, when the referral was recorded; key
  `referral:<referred customer id>`.
- review_thanks: to the reviewer, at the first send moment on or after the review (its local
  day's window, else the next one) and not before it was recorded; key
  `review_thanks:<review id>`. None for a review made more than `max_lateness` before it was
  recorded (`review_is_history`), nor for one rated below `min_rating`. A customer is thanked
  for at most one review a local day (`first_reviews_of_their_day`): the same review often
  arrives twice (from the business's app with its id, from a site's export without one).
- first_meeting: `delay` after the first meeting (or the morning of `first_met_on`); key
  `first_meeting`.
- check_in: a customer quiet (no order, no note) for `quiet_days`, not checked in on for
  `every_days`; key `check_in:<yyyy-mm>` of the month it is due.

A rule given a window `[since, now]` returns the occasions that came into view in it: dated
occasions whose local day is in it, event occasions whose event is. After downtime the window
is long; occasions already past `max_lateness` come back with `too_late` set, so the store can
record them as expired rather than send them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise

from scheduler.config.occasion_settings import (
    AnniversarySettings,
    BirthdaySettings,
    CheckInSettings,
    FirstMeetingSettings,
    FollowUpSettings,
    OrderThanksSettings,
    ReferralThanksSettings,
    ReviewThanksSettings,
)
from scheduler.occasions.dates import Feb29Policy, occurrences_between
from scheduler.occasions.timing import SendWindow, local_day, local_moment
from scheduler.vocabulary import Channel, OccasionKind


@dataclass(frozen=True)
class Occasion:
    """One note that is (or was) due."""

    customer_id: int
    kind: OccasionKind
    key: str
    due_at: datetime
    expires_at: datetime
    channel: Channel = "email"

    def too_late(self, now: datetime) -> bool:
        return now > self.expires_at


@dataclass(frozen=True)
class Span:
    """The stretch of time a detection run looks at: after `since`, up to `now`."""

    since: datetime
    now: datetime

    def days(self, zone: tzinfo) -> tuple[date, date]:
        """The local days the span touches in `zone`, first and last."""
        return _local_days(self.since, self.now, zone)


@lru_cache(maxsize=1024)
def _local_days(since: datetime, now: datetime, zone: tzinfo) -> tuple[date, date]:
    """Cached: a run asks it for every customer, and customers share a few zones."""
    return local_day(since, zone), local_day(now, zone)


def _occasion(
    customer_id: int, kind: OccasionKind, key: str, due_at: datetime, lateness: timedelta
) -> Occasion:
    return Occasion(customer_id, kind, key, due_at, due_at + lateness)


# Dated occasions --------------------------------------------------------------------------


@dataclass(frozen=True)
class YearlyDate:
    """A customer's recurring date: a birthday (year may be unknown) or a first purchase."""

    customer_id: int
    zone: tzinfo
    month: int
    day: int
    year: int | None


def _kept_days(
    dated: YearlyDate, span: Span, days_before: int, feb29: Feb29Policy
) -> Iterator[tuple[int, date]]:
    """(year, the local day to greet) for each occurrence greeted on a day `span` touches."""
    first, last = span.days(dated.zone)
    shift = timedelta(days=days_before)
    for year, kept in occurrences_between(
        dated.month, dated.day, first + shift, last + shift, feb29
    ):
        if dated.year is None or year > dated.year:
            yield year, kept - shift


def birthdays(
    people: Iterable[YearlyDate], span: Span, settings: BirthdaySettings, window: SendWindow
) -> list[Occasion]:
    """Birthday notes greeted on a local day inside `span` (see the module's rules)."""
    return [
        _occasion(
            person.customer_id,
            "birthday",
            f"birthday:{year}",
            window.on_day(greet, person.zone),
            settings.max_lateness,
        )
        for person in people
        for year, greet in _kept_days(person, span, settings.days_before, settings.feb29)
    ]


def anniversaries(
    customers: Iterable[YearlyDate],
    span: Span,
    settings: AnniversarySettings,
    window: SendWindow,
    feb29: Feb29Policy = "feb28",
) -> list[Occasion]:
    """Anniversary notes (`year` of each YearlyDate is the year they became a customer)."""
    found = []
    for customer in customers:
        started = customer.year
        if started is None:
            continue
        for year, day in _kept_days(customer, span, 0, feb29):
            found.append(
                _occasion(
                    customer.customer_id,
                    "anniversary",
                    f"anniversary:{year - started}",
                    window.on_day(day, customer.zone),
                    settings.max_lateness,
                )
            )
    return found


# Event occasions --------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFact:
    customer_id: int
    order_id: str
    placed_at: datetime
    amount: Decimal
    zone: tzinfo


def superseded_orders(orders: Iterable[OrderFact], delay: timedelta) -> set[str]:
    """Orders followed by another order of the same customer within `delay` (placed after it,
    at most `delay` later): only the last of such a run is thanked."""
    by_customer: dict[int, list[OrderFact]] = {}
    for order in orders:
        by_customer.setdefault(order.customer_id, []).append(order)
    superseded: set[str] = set()
    for runs in by_customer.values():
        runs.sort(key=lambda order: (order.placed_at, order.order_id))
        for earlier, later in pairwise(runs):
            if later.placed_at - earlier.placed_at <= delay:
                superseded.add(earlier.order_id)
    return superseded


def order_thanks(
    orders: Iterable[OrderFact],
    neighbours: Iterable[OrderFact],
    settings: OrderThanksSettings,
    window: SendWindow,
) -> list[Occasion]:
    """Thanks for `orders` (the new ones), `delay` after each; `neighbours` are the same
    customers' other orders, which may supersede them."""
    new = list(orders)
    superseded = superseded_orders([*new, *neighbours], settings.delay)
    minimum = Decimal(str(settings.min_amount))
    return [
        _occasion(
            order.customer_id,
            "order_thanks",
            f"order:{order.order_id}",
            window.next_moment(order.placed_at + settings.delay, order.zone),
            settings.max_lateness,
        )
        for order in new
        if order.order_id not in superseded and order.amount >= minimum
    ]


def follow_ups(
    orders: Iterable[OrderFact], span: Span, settings: FollowUpSettings, window: SendWindow
) -> list[Occasion]:
    """A how-did-it-go note on the local day `after_days` after each order, for the orders
    whose day for it is one `span` touches."""
    after = timedelta(days=settings.after_days)
    found = []
    for order in orders:
        day = local_day(order.placed_at, order.zone) + after
        first, last = span.days(order.zone)
        if first <= day <= last:
            found.append(
                _occasion(
                    order.customer_id,
                    "follow_up",
                    f"follow_up:{order.order_id}",
                    window.on_day(day, order.zone),
                    settings.max_lateness,
                )
            )
    return found


@dataclass(frozen=True)
class ReferralFact:
    referrer_id: int
    referred_external_id: str
    recorded_at: datetime
    zone: tzinfo  # the referrer's
    referred_on: date | None = None


def referral_is_history(referral: ReferralFact, settings: ReferralThanksSettings) -> bool:
    """A referral made more than `max_lateness` before it was recorded (past referrals imported
    with the customer history): it gets no note. Counted from the end of the local day it was
    made, so a referral recorded a few days late is still thanked."""
    if referral.referred_on is None:
        return False
    day_end = datetime.combine(referral.referred_on + timedelta(days=1), time(0), referral.zone)
    return referral.recorded_at - day_end > settings.max_lateness


def referral_thanks(
    referrals: Iterable[ReferralFact], settings: ReferralThanksSettings, window: SendWindow
) -> list[Occasion]:
    """A thank-you to the referrer, at the first send moment after the referral was recorded;
    none for a referral that is history (see `referral_is_history`)."""
    return [
        _occasion(
            referral.referrer_id,
            "referral_thanks",
            f"referral:{referral.referred_external_id}",
            window.next_moment(referral.recorded_at, referral.zone),
            settings.max_lateness,
        )
        for referral in referrals
        if not referral_is_history(referral, settings)
    ]


@dataclass(frozen=True)
class ReviewFact:
    """A review: its customer, id, when it was written and recorded, and its stars."""

    customer_id: int
    review_id: str
    reviewed_at: datetime
    recorded_at: datetime
    zone: tzinfo  # the reviewer's
    rating: int | None = None


def review_is_history(review: ReviewFact, settings: ReviewThanksSettings) -> bool:
    """A review written more than `max_lateness` before it was recorded (past reviews imported
    with the customer history): it gets no note. Counted from the end of the local day it was
    written, as for referrals, so a review recorded a few days late is still thanked."""
    day = local_day(review.reviewed_at, review.zone)
    day_end = local_moment(day + timedelta(days=1), time(0), review.zone)
    return review.recorded_at - day_end > settings.max_lateness


def review_thanks(
    reviews: Iterable[ReviewFact], settings: ReviewThanksSettings, window: SendWindow
) -> list[Occasion]:
    """A thank-you to the reviewer at the first send moment on or after the review and its
    recording; none for a review that is history or rated below `min_rating` (a review without
    stars always counts)."""
    return [
        _occasion(
            review.customer_id,
            "review_thanks",
            f"review_thanks:{review.review_id}",
            window.next_moment(max(review.reviewed_at, review.recorded_at), review.zone),
            settings.max_lateness,
        )
        for review in reviews
        if not review_is_history(review, settings)
        and (review.rating is None or review.rating >= settings.min_rating)
    ]


def first_reviews_of_their_day(
    new: Sequence[ReviewFact], earlier: Mapping[int, Iterable[datetime]]
) -> tuple[list[ReviewFact], list[ReviewFact]]:
    """The `new` reviews that may be thanked, and those left out, as (kept, left_out): a
    customer is thanked for at most one review a local day (in their zone). The same review
    often arrives twice under two ids (the business's app writes it with the site's id, a
    site's export without one gives it a made-up id), or the customer posts it on two sites
    the same evening: one note, not two. `earlier` maps a customer to when their reviews
    stored before these were written (a day they had one is taken); then the first of `new`
    in the order given (stored first) takes its day, whatever its rating or lateness."""
    zones = {review.customer_id: review.zone for review in new}
    taken = {
        (customer, local_day(moment, zone))
        for customer, zone in zones.items()
        for moment in earlier.get(customer, ())
    }
    kept: list[ReviewFact] = []
    left_out: list[ReviewFact] = []
    for review in new:
        day = (review.customer_id, local_day(review.reviewed_at, review.zone))
        (left_out if day in taken else kept).append(review)
        taken.add(day)
    return kept, left_out


@dataclass(frozen=True)
class FirstMeetingFact:
    """A customer's first meeting: a moment (`met_at`) or only a day (`met_on`)."""

    customer_id: int
    zone: tzinfo
    met_at: datetime | None = None
    met_on: date | None = None

    def moment(self) -> datetime:
        if self.met_at is not None:
            return self.met_at
        if self.met_on is None:
            raise ValueError("a first meeting needs met_at or met_on")
        return local_moment(self.met_on, time(9), self.zone)


def first_meetings(
    meetings: Iterable[FirstMeetingFact], settings: FirstMeetingSettings, window: SendWindow
) -> list[Occasion]:
    """A nice-to-meet-you note `delay` after the first meeting (a day alone counts from 09:00
    local time)."""
    return [
        _occasion(
            meeting.customer_id,
            "first_meeting",
            "first_meeting",
            window.next_moment(meeting.moment() + settings.delay, meeting.zone),
            settings.max_lateness,
        )
        for meeting in meetings
    ]


@dataclass(frozen=True)
class QuietCustomer:
    """A candidate for a check-in: their last order and last note, and what they are worth."""

    customer_id: int
    zone: tzinfo
    last_order_at: datetime | None
    last_note_at: datetime | None
    last_check_in_at: datetime | None
    value: Decimal | None = None
    top_tier: bool = False


def check_ins(
    customers: Iterable[QuietCustomer],
    now: datetime,
    settings: CheckInSettings,
    window: SendWindow,
    values_known: bool,
) -> list[Occasion]:
    """Check-ins for valued customers quiet for `quiet_days` (see the module's rules). A
    customer who never ordered is not quiet but new, and gets none."""
    quiet = timedelta(days=settings.quiet_days)
    spacing = timedelta(days=settings.every_days)
    minimum = Decimal(str(settings.min_value))
    next_moments: dict[tzinfo, datetime] = {}  # the same `now` for everyone: once per zone
    found = []
    for customer in customers:
        if customer.last_order_at is None:
            continue
        last_heard = max(customer.last_order_at, customer.last_note_at or customer.last_order_at)
        if now - last_heard < quiet:
            continue
        if customer.last_check_in_at is not None and now - customer.last_check_in_at < spacing:
            continue
        if values_known and not (
            customer.top_tier or (customer.value is not None and customer.value >= minimum)
        ):
            continue
        due = next_moments.get(customer.zone)
        if due is None:
            due = next_moments[customer.zone] = window.next_moment(now, customer.zone)
        month = due.astimezone(customer.zone).strftime("%Y-%m")
        found.append(
            _occasion(
                customer.customer_id, "check_in", f"check_in:{month}", due, settings.max_lateness
            )
        )
    return found
