"""The tables of the customer store (and nothing else).

The customer tables (customers, orders, referrals, meetings, reviews) are documented in the
README so a business's own application may write them directly; appreciate owns touches and
customer_values (with ltv_runs). All timestamps are aware UTC; money is Decimal with two
places.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlmodel import Field, SQLModel

from scheduler.store.types import Attributes, Money, OptOutTime, UtcDateTime, Year

EXTERNAL_ID_LENGTH = 128
POSTAL_LENGTHS = {
    "phone": 40,
    "address_line1": 120,
    "address_line2": 120,
    "city": 80,
    "postal_code": 20,
    "region": 80,
    "country": 80,
}
"""The longest each contact column may be (for cards' address labels and the call list)."""
# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _created() -> Any:
    return Field(
        sa_column_kwargs={"server_default": func.current_timestamp()},
        sa_type=UtcDateTime,
        nullable=False,
        default=None,
    )


class Customer(SQLModel, table=True):
    """A person the business may thank.

    `birth_month`/`birth_day` are set together (a birthday may have no year, and 02-29 is
    valid); `timezone` is an IANA name or NULL for the business's own; `phone` and the postal
    address (`address_line1` ... `country`) serve cards and calls; `attributes` holds the
    extra columns of an import (a pet's name, a preferred first name) for templates.
    """

    __tablename__ = "customers"
    __table_args__ = (
        # The dates detection asks for every day; each index also carries what detection reads
        # of the customer (zone, email, opt-out), so today's birthdays are a few adjacent
        # index pages rather than a random table page each.
        Index(
            "ix_customers_birthday",
            "birth_month",
            "birth_day",
            "birth_year",
            "timezone",
            "email",
            "opted_out_at",
        ),
        Index("ix_customers_customer_since", "customer_since", "timezone", "email", "opted_out_at"),
        Index("ix_customers_first_met_on", "first_met_on"),
        CheckConstraint(
            "(birth_month IS NULL AND birth_day IS NULL AND birth_year IS NULL)"
            " OR (birth_month BETWEEN 1 AND 12 AND birth_day BETWEEN 1 AND 31)",
            name="ck_customers_birthday",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=EXTERNAL_ID_LENGTH, unique=True, index=False)
    name: str = Field(sa_type=Text)
    email: str | None = Field(default=None, max_length=320)
    birth_year: int | None = Field(default=None, sa_type=Year)
    birth_month: int | None = Field(default=None, sa_type=SmallInteger)
    birth_day: int | None = Field(default=None, sa_type=SmallInteger)
    timezone: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=POSTAL_LENGTHS["phone"])
    address_line1: str | None = Field(default=None, max_length=POSTAL_LENGTHS["address_line1"])
    address_line2: str | None = Field(default=None, max_length=POSTAL_LENGTHS["address_line2"])
    city: str | None = Field(default=None, max_length=POSTAL_LENGTHS["city"])
    postal_code: str | None = Field(default=None, max_length=POSTAL_LENGTHS["postal_code"])
    region: str | None = Field(default=None, max_length=POSTAL_LENGTHS["region"])
    country: str | None = Field(default=None, max_length=POSTAL_LENGTHS["country"])
    first_met_on: date | None = None
    customer_since: date | None = None
    opted_out_at: datetime | None = Field(default=None, sa_type=OptOutTime)
    attributes: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(Attributes, nullable=False, server_default="{}")
    )
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


class Order(SQLModel, table=True):
    """A purchase. `margin` is the profit on it, when the business knows it."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_placed_at", "placed_at"),
        Index("ix_orders_customer_placed_at", "customer_id", "placed_at"),
        CheckConstraint("amount >= 0", name="ck_orders_amount_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    external_id: str = Field(max_length=EXTERNAL_ID_LENGTH, unique=True)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    placed_at: datetime = Field(sa_type=UtcDateTime)
    amount: Decimal = Field(sa_type=Money)
    margin: Decimal | None = Field(default=None, sa_type=Money)
    description: str | None = Field(default=None, sa_type=Text)
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


class Referral(SQLModel, table=True):
    """One customer bringing another; a customer is referred at most once."""

    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referrer_id <> referred_id", name="ck_referrals_not_self"),
        Index("ix_referrals_referrer", "referrer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    referrer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    referred_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    referred_on: date
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


class Meeting(SQLModel, table=True):
    """A time the business met the customer; unique per customer and moment."""

    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("customer_id", "met_at", name="uq_meetings_customer_met_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    met_at: datetime = Field(sa_type=UtcDateTime)
    note: str | None = Field(default=None, sa_type=Text)
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


REVIEW_TEXT_LENGTH = 5000
"""A review's text is at most this many characters (an import keeps the first ones)."""
REVIEW_SITE_LENGTH = 64
URL_LENGTH = 2048


class Review(SQLModel, table=True):
    """A review or testimonial a customer wrote. `site` is where (Google, Yelp; NULL: unknown
    or in person), `url` an http(s) address of it, `rating` whole stars 1-5 (NULL: none)."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_customer_reviewed_at", "customer_id", "reviewed_at"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
        CheckConstraint(
            f"text IS NULL OR length(text) <= {REVIEW_TEXT_LENGTH}", name="ck_reviews_text_length"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    external_id: str = Field(max_length=EXTERNAL_ID_LENGTH, unique=True)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    reviewed_at: datetime = Field(sa_type=UtcDateTime)
    site: str | None = Field(default=None, max_length=REVIEW_SITE_LENGTH)
    url: str | None = Field(default=None, max_length=URL_LENGTH)
    rating: int | None = Field(default=None, sa_type=SmallInteger)
    text: str | None = Field(default=None, sa_type=Text)
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


class Touch(SQLModel, table=True):
    """One note for one occasion: the outbox while pending, the sent-log afterwards.

    `(customer_id, occasion_key)` is unique, so an occasion can never produce a second note.
    `status` is one of pending, deferred, claimed (taken by a sender), sending (being handed to
    the server), sent, failed, unknown (may have gone: the line was lost after the message),
    held (the server cannot take the address), suppressed, expired, skipped (an order thanks
    replaced by a later order's), bounced (sent, then returned for good by the customer's
    mail server), printed (a card, printed for the owner to sign and post).

    Its indexes (declared below the class) each answer one kind of question without reading
    the table, as the sent-log lists notes by latest activity (`updated_at`, then `id`, both
    descending): what is due, and one status in a span of due dates (status, due_at, ...); one
    status (status, updated_at, id); a span of due dates (due_at, ...); the latest activity
    and the console's charts (updated_at, id, status, kind); and the note a message that came
    back quotes (message_id).
    """

    __tablename__ = "touches"
    __table_args__ = (
        UniqueConstraint("customer_id", "occasion_key", name="uq_touches_customer_occasion"),
        Index("ix_touches_message_id", "message_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(max_length=32)
    occasion_key: str = Field(max_length=160)
    status: str = Field(max_length=16, default="pending")
    channel: str = Field(
        max_length=8, default="email", sa_column_kwargs={"server_default": "email"}
    )
    """email, card or call (`scheduler.vocabulary.CHANNELS`): only email notes are claimed."""
    printed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When a card note was last printed by `appreciate cards`."""
    reason: str | None = Field(default=None, sa_type=Text)
    due_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    message_id: str | None = Field(default=None, max_length=255)
    subject: str | None = Field(default=None, sa_type=Text)
    body_text: str | None = Field(default=None, sa_type=Text)
    body_html: str | None = Field(default=None, sa_type=Text)
    last_reply: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    retry_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """After a temporary failure: not before this moment."""
    planned_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """The daily budget moved this note to a later day: not before this moment (`due_at` keeps
    the occasion's own time)."""
    headers: str | None = Field(default=None, sa_type=Text)
    """The message's header block as sent (with the stored bodies: the whole note)."""
    replied_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When the customer first answered the note (a person's reply, not a machine's)."""
    created_at: datetime | None = _created()
    updated_at: datetime | None = _created()


_touch = SQLModel.metadata.tables[Touch.__tablename__].c
Index(
    "ix_touches_status_due_at",
    _touch.status,
    _touch.due_at,
    _touch.updated_at.desc(),
    _touch.id.desc(),
    _touch.kind,
)
Index("ix_touches_status_updated_at", _touch.status, _touch.updated_at, _touch.id)
Index("ix_touches_due_at", _touch.due_at, _touch.updated_at.desc(), _touch.id.desc(), _touch.kind)
Index("ix_touches_updated_at", _touch.updated_at, _touch.id, _touch.status, _touch.kind)
BY_HAND = text("channel <> 'email'")
"""Cards and calls: the notes the owner sends by hand (`ix_touches_by_hand` holds only them;
a query counting them names this same condition, so both databases use the index)."""
Index(
    "ix_touches_by_hand",
    _touch.channel,
    _touch.status,
    sqlite_where=BY_HAND,
    postgresql_where=BY_HAND,
)


class TouchEvent(SQLModel, table=True):
    """A touch's history: every status change after it was recorded, with when and why."""

    __tablename__ = "touch_events"
    __table_args__ = (Index("ix_touch_events_touch", "touch_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    touch_id: int = Field(
        sa_column=Column(BIG_ID, ForeignKey("touches.id", ondelete="CASCADE"), nullable=False)
    )
    at: datetime = Field(sa_type=UtcDateTime)
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_type=Text)


class UnsubscribeToken(SQLModel, table=True):
    """The opaque token in a customer's unsubscribe link (made when first needed)."""

    __tablename__ = "unsubscribe_tokens"

    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    )
    token: str = Field(max_length=64, unique=True)
    created_at: datetime | None = _created()


class OptOut(SQLModel, table=True):
    """Who opted out or back in, when and how: the audit behind `customers.opted_out_at`.

    `action` is `opt_out` or `resubscribe`; `source` says how (see
    `scheduler.store.opt_outs.SOURCES`); `detail` what else is known (a file, a page).
    """

    __tablename__ = "opt_outs"
    __table_args__ = (Index("ix_opt_outs_customer", "customer_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    )
    at: datetime = Field(sa_type=UtcDateTime)
    action: str = Field(max_length=16)
    source: str = Field(max_length=16)
    detail: str | None = Field(default=None, sa_type=Text)


class InboundMessage(SQLModel, table=True):
    """A message that came back (a bounce, a complaint, a reply...), stored once, with what it
    was taken for and the note it answers.

    `kind` is what was done: bounce, soft_bounce, complaint, opt_out, auto_reply, reply, or
    unmatched (nothing done: `detail` says why); `seen_as` what it looked like (the same, or
    for an unmatched message what it would have been). `digest` (SHA-256 of the raw bytes) and
    `message_id` each let a message in only once. `raw` is kept until `keep_raw_until`.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_kind", "kind", "id"),
        Index("ix_inbound_messages_customer", "customer_id", "received_at"),
        Index("ix_inbound_messages_touch", "touch_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    received_at: datetime = Field(sa_type=UtcDateTime)
    digest: str = Field(max_length=64, unique=True)
    message_id: str | None = Field(default=None, max_length=255, unique=True)
    kind: str = Field(max_length=16)
    seen_as: str = Field(max_length=16)
    touch_id: int | None = Field(
        default=None,
        sa_column=Column(BIG_ID, ForeignKey("touches.id", ondelete="SET NULL"), nullable=True),
    )
    customer_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True),
    )
    sender: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, sa_type=Text)
    detail: str | None = Field(default=None, sa_type=Text)
    raw: bytes | None = Field(default=None, sa_type=LargeBinary)
    keep_raw_until: datetime | None = Field(default=None, sa_type=UtcDateTime)


class UndeliverableAddress(SQLModel, table=True):
    """An address that bounced for good: no note goes to it. Keyed by the address (lower
    case), so a customer given another address by an import or the console is written to
    again, and the owner may clear it by hand."""

    __tablename__ = "undeliverable_addresses"

    address: str = Field(max_length=320, primary_key=True)
    since: datetime = Field(sa_type=UtcDateTime)
    reason: str = Field(sa_type=Text)


class AppState(SQLModel, table=True):
    """Small facts every instance shares, by name (such as why sending is paused)."""

    __tablename__ = "app_state"

    name: str = Field(max_length=64, primary_key=True)
    value: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class LtvRun(SQLModel, table=True):
    """One lifetime-value computation: the model chosen, why, and its fitted parameters."""

    __tablename__ = "ltv_runs"

    id: int | None = Field(default=None, primary_key=True)
    computed_at: datetime = Field(sa_type=UtcDateTime)
    as_of: date
    model: str = Field(max_length=16)
    params: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    spend_params: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    log_likelihood: float | None = None
    reason: str = Field(sa_type=Text)
    customers: int


class CustomerValue(SQLModel, table=True):
    """A customer's latest lifetime-value score; `run_id` says how it was computed."""

    __tablename__ = "customer_values"
    __table_args__ = (Index("ix_customer_values_total", "total"),)

    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    )
    run_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ltv_runs.id", ondelete="CASCADE"), nullable=False)
    )
    historical: Decimal = Field(sa_type=Money)
    predicted: Decimal = Field(sa_type=Money)
    referral: Decimal = Field(sa_type=Money)
    total: Decimal = Field(sa_type=Money)
    p_alive: float | None = None
    tier: str = Field(max_length=16)


class DetectionMark(SQLModel, table=True):
    """How far occasion detection has got: the last run's moment, and per event table the
    highest row id already looked at (the watermarks that keep a tick's cost to what is new)."""

    __tablename__ = "detection_marks"

    name: str = Field(max_length=64, primary_key=True)
    moment: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_id: int | None = Field(default=None, sa_type=BIG_ID)
    updated_at: datetime | None = _created()


metadata = SQLModel.metadata
