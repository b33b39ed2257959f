"""What a note's template sees: plain dicts, lists, strings, numbers and dates, read in batches.

`build_contexts` answers a batch of touches with a few queries per 500 (customers, the orders,
referrals, reviews and first meetings the keys name, lifetime values, unsubscribe tokens), never one
per touch. Keys of a context:
- customer: id (the business's own id), name, first_name (`attributes.preferred_name` when set,
  else the first word of the name), email, birthday (a date; None without a year of birth),
  customer_since, years_as_customer (whole years up to the note's due date, None without
  customer_since), attributes (the extra import columns, strings).
- order (order_thanks `order:<id>`, follow_up `follow_up:<id>`): id, placed_at (local date
  and time in the customer's zone), amount ("42.50"), description (or None). None when the
  order is gone or belongs to someone else.
- referral (referral_thanks `referral:<referred id>`): referred {name, first_name,
  attributes}, referred_on. None when the referral is gone.
- review (review_thanks `review_thanks:<review id>`): id, where (or None), rating (whole
  stars 1-5, or None), url (an http(s) address, or None: anything else the store holds is
  left out; plain text, never linked), text (or None; at most 5,000 characters), excerpt (its
  start on one line, at most about 200 characters, "..." when cut; None without text),
  reviewed_on (the local date). None when the review is gone or belongs to someone else.
- meeting (first_meeting): met_on, the first meeting's local date or `first_met_on`, whichever
  is earlier (None when neither is known).
- business: name, sender_name, sender_email, review_url (None when not set), timezone.
- ltv: tier ("vip", "regular", "new"), total and historical ("1234.50"); all None before
  lifetime values are computed.
- occasion: kind, key, due_date and sent_on (the customer's local dates of the due moment and
  of `now`); for anniversary `years` (the n of `anniversary:<n>`), for birthday `age` (None
  without a year of birth).
- unsubscribe_url: the unsubscribe page (`[business] unsubscribe_url`, else `[web] public_url`
  + `/u/{token}`) with the customer's token, or None.
Dates follow the customer's zone, else the business's. Touches whose customer is gone are
left out. A date or time outside 1900-2200 (a placeholder such as 9999-12-31 written by another
application) is not on record: None, as if it were unknown. The business's own values (the
`business` part and `unsubscribe_url`) are `BusinessText`, so HTML notes link them and nothing
else (see `scheduler.notes.note_links`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from scheduler.config.settings import Settings
from scheduler.notes.note_links import BusinessText
from scheduler.notes.unsubscribe import read_tokens, tokens_for, unsubscribe_link
from scheduler.occasions.dates import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    Feb29Policy,
    occurrence,
    plausible,
)
from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.review_values import REVIEW_TEXT_LENGTH, excerpt, safe_url, stored_rating
from scheduler.store.types import aware_utc
from scheduler.vocabulary import OccasionKind
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
meetings = metadata.tables["meetings"]
reviews = metadata.tables["reviews"]
customer_values = metadata.tables["customer_values"]
BATCH = 500
"""Touches answered per round of queries."""
PREVIEW_TOKEN = "PREVIEW-TOKEN"  # noqa: S105 - a placeholder, not a secret
"""Stands in for a token not made yet when nothing may be written (see `build_contexts`)."""
ORDER_PREFIXES = {"order_thanks": "order:", "follow_up": "follow_up:"}
REVIEW_PREFIX = "review_thanks:"


@dataclass(frozen=True)
class TouchRef:
    """The facts of a touch that its note's context is built from."""

    id: int
    customer_id: int
    kind: str
    occasion_key: str
    due_at: datetime


def build_contexts(
    connection: Connection,
    touches: Sequence[TouchRef],
    settings: Settings,
    *,
    now: datetime,
    create_tokens: bool = True,
) -> dict[int, dict[str, Any]]:
    """Each touch's template context, by touch id (see the module's keys).

    `create_tokens=False` writes nothing: a customer without an unsubscribe token yet gets
    PREVIEW_TOKEN in the link instead of a new one."""
    contexts: dict[int, dict[str, Any]] = {}
    reader = _Reader(connection, settings, now, create_tokens)
    for batch in chunked(list(touches), BATCH):
        contexts.update(reader.contexts(batch))
    return contexts


def business_context(settings: Settings) -> dict[str, Any]:
    """The `business` part of every context."""
    business = settings.business
    return {
        "name": BusinessText(business.name),
        "sender_name": BusinessText(business.sender_name),
        "sender_email": BusinessText(business.sender_email),
        "review_url": BusinessText(business.review_url) if business.review_url else None,
        "timezone": BusinessText(business.timezone),
    }


def first_name(name: str, attributes: Mapping[str, str]) -> str:
    """`preferred_name` when set, else the first word of the name."""
    preferred = (attributes.get("preferred_name") or "").strip()
    if preferred:
        return preferred
    words = name.split()
    return words[0] if words else ""


def whole_years(since: date, until: date, feb29: Feb29Policy = "feb28") -> int:
    """Whole years from `since` to `until`; a 29 February start counts as the policy says."""
    years = until.year - since.year
    if until < occurrence(since.month, since.day, until.year, feb29):
        years -= 1
    return max(years, 0)


def money(value: Decimal | None) -> str | None:
    """`Decimal("42.5")` as "42.50"."""
    return None if value is None else f"{value:.2f}"


def key_number(key: str) -> int | None:
    """The number after the colon of `anniversary:3` or `birthday:2027`."""
    _, _, tail = key.partition(":")
    return int(tail) if tail.isdigit() else None


class _Reader:
    """One `build_contexts` call: settings-derived parts made once, queries per batch."""

    def __init__(
        self, connection: Connection, settings: Settings, now: datetime, create_tokens: bool
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.now = now
        self.create_tokens = create_tokens
        self.zones = ZoneBook(ZoneInfo(settings.business.timezone))
        self.business = business_context(settings)
        self.feb29: Feb29Policy = settings.occasions.birthday.feb29

    def contexts(self, touches: Sequence[TouchRef]) -> dict[int, dict[str, Any]]:
        people = self._customers({touch.customer_id for touch in touches})
        order_ids = {
            touch.occasion_key.removeprefix(ORDER_PREFIXES[touch.kind])
            for touch in touches
            if touch.kind in ORDER_PREFIXES
        }
        referred_ids = {
            touch.occasion_key.removeprefix("referral:")
            for touch in touches
            if touch.kind == "referral_thanks"
        }
        review_ids = {
            touch.occasion_key.removeprefix(REVIEW_PREFIX)
            for touch in touches
            if touch.kind == "review_thanks"
        }
        met = {touch.customer_id for touch in touches if touch.kind == "first_meeting"}
        found_orders = self._orders(order_ids)
        found_reviews = self._reviews(review_ids)
        found_referrals = self._referrals(referred_ids)
        first_meetings = self._first_meetings(met)
        values = self._values(people.keys())
        links = self._links(people.keys())
        built = {}
        for touch in touches:
            person = people.get(touch.customer_id)
            if person is None:
                continue
            zone = self.zones(person["timezone"])
            context = self._common(touch, person, zone, values.get(touch.customer_id))
            context["unsubscribe_url"] = links.get(touch.customer_id)
            if touch.kind in ORDER_PREFIXES:
                order_id = touch.occasion_key.removeprefix(ORDER_PREFIXES[touch.kind])
                order = found_orders.get(order_id)
                owned = order is not None and order["customer_id"] == touch.customer_id
                context["order"] = _order_context(order, zone) if owned and order else None
            elif touch.kind == "referral_thanks":
                referral = found_referrals.get(touch.occasion_key.removeprefix("referral:"))
                owned = referral is not None and referral["referrer_id"] == touch.customer_id
                context["referral"] = _referral_context(referral) if owned and referral else None
            elif touch.kind == "review_thanks":
                review = found_reviews.get(touch.occasion_key.removeprefix(REVIEW_PREFIX))
                owned = review is not None and review["customer_id"] == touch.customer_id
                context["review"] = _review_context(review, zone) if owned and review else None
            elif touch.kind == "first_meeting":
                met_at = first_meetings.get(touch.customer_id)
                dates = [
                    d for d in (person["first_met_on"], _local_date(met_at, zone)) if plausible(d)
                ]
                context["meeting"] = {"met_on": min(dates) if dates else None}
            built[touch.id] = context
        return built

    def _common(
        self, touch: TouchRef, person: dict[str, Any], zone: tzinfo, value: Any
    ) -> dict[str, Any]:
        due_date = touch.due_at.astimezone(zone).date()
        occasion: dict[str, Any] = {
            "kind": touch.kind,
            "key": touch.occasion_key,
            "due_date": due_date,
            "sent_on": self.now.astimezone(zone).date(),
        }
        if touch.kind == "anniversary":
            occasion["years"] = key_number(touch.occasion_key)
        elif touch.kind == "birthday":
            year = key_number(touch.occasion_key)
            born = person["birth_year"]
            known = year is not None and born is not None and EARLIEST_YEAR <= born <= LATEST_YEAR
            occasion["age"] = year - born if known else None
        return {
            "customer": _customer_context(person, due_date, self.feb29),
            "business": dict(self.business),
            "ltv": {
                "tier": value.tier if value is not None else None,
                "total": money(value.total) if value is not None else None,
                "historical": money(value.historical) if value is not None else None,
            },
            "occasion": occasion,
        }

    # Queries ------------------------------------------------------------------------------

    def _customers(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        rows = self.connection.execute(
            select(
                customers.c.id,
                customers.c.external_id,
                customers.c.name,
                customers.c.email,
                customers.c.birth_year,
                customers.c.birth_month,
                customers.c.birth_day,
                customers.c.timezone,
                customers.c.first_met_on,
                customers.c.customer_since,
                customers.c.attributes,
            ).where(customers.c.id.in_(sorted(ids)))
        )
        return {row.id: dict(row._mapping) for row in rows}

    def _orders(self, external_ids: set[str]) -> dict[str, dict[str, Any]]:
        if not external_ids:
            return {}
        rows = self.connection.execute(
            select(
                orders.c.external_id,
                orders.c.customer_id,
                orders.c.placed_at,
                orders.c.amount,
                orders.c.description,
            ).where(orders.c.external_id.in_(sorted(external_ids)))
        )
        return {row.external_id: dict(row._mapping) for row in rows}

    def _referrals(self, referred_ids: set[str]) -> dict[str, dict[str, Any]]:
        if not referred_ids:
            return {}
        referred = customers.alias("referred")
        rows = self.connection.execute(
            select(
                referred.c.external_id,
                referred.c.name,
                referred.c.attributes,
                referrals.c.referrer_id,
                referrals.c.referred_on,
            )
            .join_from(referrals, referred, referred.c.id == referrals.c.referred_id)
            .where(referred.c.external_id.in_(sorted(referred_ids)))
        )
        return {row.external_id: dict(row._mapping) for row in rows}

    def _reviews(self, external_ids: set[str]) -> dict[str, dict[str, Any]]:
        if not external_ids:
            return {}
        rows = self.connection.execute(
            select(
                reviews.c.external_id,
                reviews.c.customer_id,
                reviews.c.reviewed_at,
                reviews.c.site,
                reviews.c.url,
                reviews.c.rating,
                reviews.c.text,
            ).where(reviews.c.external_id.in_(sorted(external_ids)))
        )
        return {row.external_id: dict(row._mapping) for row in rows}

    def _first_meetings(self, customer_ids: set[int]) -> dict[int, datetime]:
        if not customer_ids:
            return {}
        rows = self.connection.execute(
            select(meetings.c.customer_id, func.min(meetings.c.met_at).label("first"))
            .where(meetings.c.customer_id.in_(sorted(customer_ids)))
            .group_by(meetings.c.customer_id)
        )
        return {row.customer_id: aware_utc(row.first) for row in rows}

    def _values(self, customer_ids: Iterable[int]) -> dict[int, Any]:
        rows = self.connection.execute(
            select(
                customer_values.c.customer_id,
                customer_values.c.tier,
                customer_values.c.total,
                customer_values.c.historical,
            ).where(customer_values.c.customer_id.in_(sorted(customer_ids)))
        )
        return {row.customer_id: row for row in rows}

    def _links(self, customer_ids: Iterable[int]) -> dict[int, str | None]:
        if not self.settings.unsubscribe_url:
            return {}
        ids = list(customer_ids)
        if self.create_tokens:
            tokens = tokens_for(self.connection, ids)
        else:
            tokens = read_tokens(self.connection, ids)
        return {
            who: _business_text(unsubscribe_link(self.settings, tokens.get(who, PREVIEW_TOKEN)))
            for who in ids
        }


def _customer_context(
    person: Mapping[str, Any], due_date: date, feb29: Feb29Policy
) -> dict[str, Any]:
    attributes = _attributes(person["attributes"])
    since = person["customer_since"] if plausible(person["customer_since"]) else None
    return {
        "id": person["external_id"],
        "name": person["name"],
        "first_name": first_name(person["name"], attributes),
        "email": person["email"],
        "birthday": _birthday(person["birth_year"], person["birth_month"], person["birth_day"]),
        "customer_since": since,
        "years_as_customer": whole_years(since, due_date, feb29) if since else None,
        "attributes": attributes,
    }


def _attributes(stored: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(key): str(value) for key, value in (stored or {}).items()}


def _business_text(value: str | None) -> BusinessText | None:
    return None if value is None else BusinessText(value)


def _birthday(year: int | None, month: int | None, day: int | None) -> date | None:
    if year is None or month is None or day is None:
        return None
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    return born if plausible(born) else None


def _order_context(order: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    placed_at = order["placed_at"]
    return {
        "id": order["external_id"],
        "placed_at": placed_at.astimezone(zone) if plausible(placed_at) else None,
        "amount": money(order["amount"]),
        "description": order["description"],
    }


def _referral_context(referral: Mapping[str, Any]) -> dict[str, Any]:
    attributes = _attributes(referral["attributes"])
    referred_on = referral["referred_on"]
    return {
        "referred": {
            "name": referral["name"],
            "first_name": first_name(referral["name"], attributes),
            "attributes": attributes,
        },
        "referred_on": referred_on if plausible(referred_on) else None,
    }


def _review_context(review: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A stored review as a template sees it: what the business's app may have written is
    checked again (a bad url or rating is left out, the text is bounded)."""
    text = review["text"] if isinstance(review["text"], str) and review["text"].strip() else None
    text = text[:REVIEW_TEXT_LENGTH] if text else None
    site = review["site"].strip() if isinstance(review["site"], str) else ""
    return {
        "id": review["external_id"],
        "where": site or None,
        "rating": stored_rating(review["rating"]),
        "url": safe_url(review["url"]),
        "text": text,
        "excerpt": excerpt(text) if text else None,
        "reviewed_on": _local_date(review["reviewed_at"], zone),
    }


def _local_date(moment: datetime | None, zone: tzinfo) -> date | None:
    return moment.astimezone(zone).date() if plausible(moment) else None


# Samples, for `appreciate templates check` ------------------------------------------------

SAMPLE_DUE = date(2027, 6, 15)
SAMPLE_REVIEW_URL = "https://example.com/review"
SAMPLE_UNSUBSCRIBE_URL = "https://example.com/unsubscribe/SAMPLE-TOKEN"
SAMPLE_ATTRIBUTES = {"pet_name": "Biscuit", "preferred_name": "Sam"}


def sample_context(
    kind: OccasionKind,
    settings: Settings,
    *,
    tier: str | None = "regular",
    sparse: bool = False,
    attributes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A representative context for `kind`, shaped exactly like `build_contexts`' ones.

    Every optional fact is known, the review and unsubscribe links included (the configured
    ones, else examples), so every branch a template takes for them is tried. `sparse=True`
    leaves every optional fact unknown instead (no birthday, no customer_since, no order
    description, no links, no lifetime value), for the branches taken without them.

    `attributes`: the attribute names the customer and the referred friend carry, each with a
    sample value, sparse or not (which customers lack one is a question for the store: see
    `scheduler.notes.template_check`). None: `pet_name` only, and none at all when sparse."""
    zone = ZoneInfo(settings.business.timezone)
    business = business_context(settings)
    review = business["review_url"] or BusinessText(SAMPLE_REVIEW_URL)
    business["review_url"] = None if sparse else review
    unsubscribe = BusinessText(unsubscribe_link(settings, "SAMPLE-TOKEN") or SAMPLE_UNSUBSCRIBE_URL)
    since = None if sparse else date(2021, 6, 15)
    if attributes is None:
        held = {} if sparse else {"pet_name": "Biscuit"}
    else:
        held = {name: SAMPLE_ATTRIBUTES.get(name, f"sample {name}") for name in attributes}
    context: dict[str, Any] = {
        "customer": {
            "id": "C-1001",
            "name": "Sam Taylor",
            "first_name": "Sam",
            "email": "sam.taylor@example.com",
            "birthday": None if sparse else date(1988, 6, 15),
            "customer_since": since,
            "years_as_customer": whole_years(since, SAMPLE_DUE) if since else None,
            "attributes": held,
        },
        "business": business,
        "ltv": (
            {"tier": None, "total": None, "historical": None}
            if sparse
            else {"tier": tier, "total": "1250.00", "historical": "850.00"}
        ),
        "occasion": {
            "kind": kind,
            "key": _sample_key(kind),
            "due_date": SAMPLE_DUE,
            "sent_on": SAMPLE_DUE,
        },
        "unsubscribe_url": None if sparse else unsubscribe,
    }
    if kind == "anniversary":
        context["occasion"]["years"] = 6
    elif kind == "birthday":
        context["occasion"]["age"] = None if sparse else 39
    if kind in ORDER_PREFIXES:
        placed = datetime.combine(date(2027, 6, 1), time(14, 30), tzinfo=zone)
        context["order"] = {
            "id": "A-2042",
            "placed_at": placed,
            "amount": "42.50",
            "description": None if sparse else "a sourdough starter kit",
        }
    elif kind == "referral_thanks":
        context["referral"] = {
            "referred": {"name": "Jordan Lee", "first_name": "Jordan", "attributes": dict(held)},
            "referred_on": date(2027, 6, 14),
        }
    elif kind == "review_thanks":
        text = (
            "Dr. Rivera and the whole team made me feel at ease from the first minute. "
            "I would not go anywhere else."
        )
        context["review"] = {
            "id": "R-3001",
            "where": None if sparse else "Google",
            "rating": None if sparse else 5,
            "url": None if sparse else "https://maps.example.com/reviews/R-3001",
            "text": None if sparse else text,
            "excerpt": None if sparse else text,
            "reviewed_on": date(2027, 6, 14),
        }
    elif kind == "first_meeting":
        context["meeting"] = {"met_on": None if sparse else date(2027, 6, 14)}
    return context


def _sample_key(kind: OccasionKind) -> str:
    keys = {
        "birthday": "birthday:2027",
        "order_thanks": "order:A-2042",
        "referral_thanks": "referral:C-1002",
        "review_thanks": "review_thanks:R-3001",
        "first_meeting": "first_meeting",
        "follow_up": "follow_up:A-2042",
        "anniversary": "anniversary:6",
        "check_in": "check_in:2027-06",
    }
    return keys[kind]
