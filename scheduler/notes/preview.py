"""`appreciate preview`: the note a customer would get for an occasion, from the real store.

Which occasion (and so which context) a preview is for:
- order_thanks, follow_up: the order given (it must be the customer's), else their latest (one
  dated outside 1900-2200, a placeholder, counts as older than any other);
- referral_thanks: the latest referral the customer made;
- review_thanks: the customer's latest review (one dated outside 1900-2200 counts as older);
- birthday, anniversary: the next one on or after today (the customer's local date), which
  needs a birthday or a customer_since (from 1900 to 2200) on record;
- first_meeting: their first meeting or first_met_on, when known (the note reads fine without);
- check_in: this month's.
A preview reads only: it runs in a transaction that is rolled back, and a customer without an
unsubscribe token yet is shown a placeholder token rather than given a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, select

from scheduler.config.settings import Settings
from scheduler.errors import AppreciateError
from scheduler.notes.note_context import ORDER_PREFIXES, REVIEW_PREFIX, TouchRef, build_contexts
from scheduler.occasions.dates import EARLIEST_YEAR, LATEST_YEAR, occurrence, plausible
from scheduler.store.calendar_edges import plausible as plausible_column
from scheduler.store.models import metadata
from scheduler.vocabulary import OccasionKind
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
reviews = metadata.tables["reviews"]


class PreviewUnavailable(AppreciateError):
    """The store lacks what this preview needs (the customer, an order, a birthday...)."""


@dataclass(frozen=True)
class PreviewOccasion:
    """What a preview renders: the touch it stands for, its context and the tier."""

    touch: TouchRef
    context: dict[str, Any]
    tier: str | None


def preview_occasion(
    connection: Connection,
    settings: Settings,
    kind: OccasionKind,
    customer_id: str,
    *,
    order_id: str | None = None,
    now: datetime,
) -> PreviewOccasion:
    """The occasion and context of `kind` for the customer with external id `customer_id`."""
    if order_id is not None and kind not in ORDER_PREFIXES:
        raise PreviewUnavailable(f"--order applies to order_thanks and follow_up, not {kind}")
    person = connection.execute(
        select(
            customers.c.id,
            customers.c.timezone,
            customers.c.birth_month,
            customers.c.birth_day,
            customers.c.customer_since,
        ).where(customers.c.external_id == customer_id)
    ).first()
    if person is None:
        raise PreviewUnavailable(f'there is no customer with id "{customer_id}"')
    zone = ZoneBook(ZoneInfo(settings.business.timezone))(person.timezone)
    today = now.astimezone(zone).date()
    key = _occasion_key(connection, settings, kind, customer_id, person, order_id, today)
    touch = TouchRef(0, person.id, kind, key, now)
    context = build_contexts(connection, [touch], settings, now=now, create_tokens=False)[0]
    return PreviewOccasion(touch, context, context["ltv"]["tier"])


def _occasion_key(
    connection: Connection,
    settings: Settings,
    kind: OccasionKind,
    customer_id: str,
    person: Any,
    order_id: str | None,
    today: date,
) -> str:
    feb29 = settings.occasions.birthday.feb29
    event = _event_key(connection, kind, customer_id, person.id, order_id)
    if event is not None:
        return event
    if kind == "birthday":
        if person.birth_month is None or person.birth_day is None:
            raise PreviewUnavailable(f"customer {customer_id} has no birthday on record")
        year = today.year
        if occurrence(person.birth_month, person.birth_day, year, feb29) < today:
            year += 1
        return f"birthday:{year}"
    if kind == "anniversary":
        since = person.customer_since
        if since is None:
            raise PreviewUnavailable(
                f"customer {customer_id} has no customer_since on record, so no anniversary"
            )
        if not plausible(since):
            raise PreviewUnavailable(
                f"customer {customer_id}'s customer_since, {since.isoformat()}, is not a date "
                f"from {EARLIEST_YEAR} to {LATEST_YEAR}, so no anniversary"
            )
        year = max(today.year, since.year + 1)
        if occurrence(since.month, since.day, year, feb29) < today:
            year += 1
        return f"anniversary:{year - since.year}"
    if kind == "check_in":
        return f"check_in:{today:%Y-%m}"
    return "first_meeting"


def _event_key(
    connection: Connection,
    kind: OccasionKind,
    customer_id: str,
    person_id: int,
    order_id: str | None,
) -> str | None:
    """The key of an occasion about an event (an order, a referral, a review), else None."""
    if kind in ORDER_PREFIXES:
        return ORDER_PREFIXES[kind] + _order(connection, customer_id, person_id, order_id)
    if kind == "referral_thanks":
        return "referral:" + _latest_referral(connection, customer_id, person_id)
    if kind == "review_thanks":
        return REVIEW_PREFIX + _latest_review(connection, customer_id, person_id)
    return None


def _order(connection: Connection, customer_id: str, person_id: int, order_id: str | None) -> str:
    if order_id is not None:
        owner = connection.execute(
            select(orders.c.customer_id).where(orders.c.external_id == order_id)
        ).scalar()
        if owner != person_id:
            raise PreviewUnavailable(f'customer {customer_id} has no order with id "{order_id}"')
        return order_id
    latest = connection.execute(
        select(orders.c.external_id)
        .where(orders.c.customer_id == person_id)
        .order_by(
            case((plausible_column(orders.c.placed_at), 1), else_=0).desc(),
            orders.c.placed_at.desc(),
            orders.c.id.desc(),
        )
        .limit(1)
    ).scalar()
    if latest is None:
        raise PreviewUnavailable(f"customer {customer_id} has no orders yet")
    return str(latest)


def _latest_referral(connection: Connection, customer_id: str, person_id: int) -> str:
    referred = customers.alias("referred")
    latest = connection.execute(
        select(referred.c.external_id)
        .join_from(referrals, referred, referred.c.id == referrals.c.referred_id)
        .where(referrals.c.referrer_id == person_id)
        .order_by(referrals.c.referred_on.desc(), referrals.c.id.desc())
        .limit(1)
    ).scalar()
    if latest is None:
        raise PreviewUnavailable(f"customer {customer_id} has not referred anyone yet")
    return str(latest)


def _latest_review(connection: Connection, customer_id: str, person_id: int) -> str:
    latest = connection.execute(
        select(reviews.c.external_id)
        .where(reviews.c.customer_id == person_id)
        .order_by(
            case((plausible_column(reviews.c.reviewed_at), 1), else_=0).desc(),
            reviews.c.reviewed_at.desc(),
            reviews.c.id.desc(),
        )
        .limit(1)
    ).scalar()
    if latest is None:
        raise PreviewUnavailable(f"customer {customer_id} has not written a review yet")
    return str(latest)
