"""The outbox: occasions recorded as touches exactly once, suppressed or expired with a reason,
and each customer's notes spaced by the frequency cap.

Rules:
- A touch is inserted with "on conflict do nothing" on (customer, occasion key): recording the
  same occasion again, from another tick or another instance, changes nothing.
- An occasion already past its lateness is recorded as `expired`; one for a customer who opted
  out or has no usable email as `suppressed`. Both say why, so the sent-log shows the moment was
  seen.
- A card or a call (`channel`) is suppressed only by an opt-out (it needs no email address),
  and the frequency cap spaces emails only.
- After new touches arrive for a customer, that customer's open touches (pending, deferred) are
  planned again under the cap (`scheduler.occasions.cap`): due times move later, never earlier
  than each occasion's own, and what cannot fit expires.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, select, update

from scheduler.addresses import InvalidAddress, normalize_address
from scheduler.config.settings import ScheduleSettings
from scheduler.occasions.cap import space_out
from scheduler.occasions.rules import Occasion
from scheduler.occasions.timing import SendWindow
from scheduler.store.bulk import BulkWriter, chunked
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc_or_none
from scheduler.vocabulary import OccasionKind
from scheduler.zones import ZoneBook

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
undeliverable = metadata.tables["undeliverable_addresses"]
OPEN = ("pending", "deferred")
"""Touches not yet handed to the sender: their due time may still move."""
TAKEN = ("claimed", "sending", "sent", "unknown")
"""Touches that went (or may have gone) out: they count for the frequency cap."""
NOTED = OPEN + TAKEN
"""Touches that count as a note to the customer: sent, or on its way."""


@dataclass(frozen=True)
class Contact:
    """What decides whether a customer may get a note."""

    email: str | None
    opted_out_at: datetime | None
    zone: tzinfo
    bounced_since: datetime | None = None
    """When the address bounced for good (`undeliverable_addresses`); known at send time."""


def suppression_reason(contact: Contact) -> str | None:
    """Why no note may go to this customer, or None when one may."""
    if contact.opted_out_at is not None:
        return f"opted out on {contact.opted_out_at.date().isoformat()}"
    if not contact.email:
        return "no email address"
    if contact.bounced_since is not None:
        since = contact.bounced_since.date().isoformat()
        return f"the address {contact.email} bounced on {since}"
    try:
        normalize_address(contact.email)
    except InvalidAddress as error:
        return f'the email address "{contact.email}" cannot be used: {error}'
    return None


def contacts_query(customer_ids: Iterable[int]) -> Select[Any]:
    """The contact of each of these customers, with their own id (`external_id`) and when
    their address bounced for good (addresses are compared without regard to case)."""
    return (
        select(
            customers.c.id,
            customers.c.external_id,
            customers.c.email,
            customers.c.opted_out_at,
            customers.c.timezone,
            undeliverable.c.since.label("bounced_since"),
        )
        .outerjoin(undeliverable, undeliverable.c.address == func.lower(customers.c.email))
        .where(customers.c.id.in_(sorted(set(customer_ids))))
    )


def contact_of(row: Any, zones: ZoneBook) -> Contact:
    """A row of `contacts_query` as a Contact."""
    return Contact(row.email, row.opted_out_at, zones(row.timezone), row.bounced_since)


RecordCounts = Counter[tuple[OccasionKind, str]]
"""How many touches were added, by (kind, status)."""


def record(
    connection: Connection,
    occasions: Iterable[Occasion],
    contacts: dict[int, Contact],
    *,
    now: datetime,
    schedule: ScheduleSettings,
) -> RecordCounts:
    """Insert the occasions not yet recorded; then space the affected customers' notes."""
    wanted = list(occasions)
    existing = _existing(connection, sorted({o.customer_id for o in wanted}))
    new: dict[tuple[int, str], tuple[Occasion, str, str | None]] = {}
    for occasion in wanted:
        key = (occasion.customer_id, occasion.key)
        if key not in new and occasion.key not in existing.get(occasion.customer_id, {}):
            new[key] = (occasion, *_status(occasion, contacts[occasion.customer_id], now))
    BulkWriter(
        connection,
        touches,
        _COLUMNS,
        {"created_at": now, "updated_at": now},
        skip_conflicts_on=("customer_id", "occasion_key"),
    ).insert(
        (o.customer_id, o.kind, o.key, status, reason, o.due_at, o.expires_at, o.channel)
        for o, status, reason in new.values()
    )
    counts: RecordCounts = Counter((o.kind, status) for o, status, _ in new.values())
    fresh: dict[int, list[datetime]] = {}
    for occasion, status, _ in new.values():
        if status == "pending" and occasion.channel == "email":
            fresh.setdefault(occasion.customer_id, []).append(occasion.due_at)
    if fresh and schedule.min_days_between:
        gap = timedelta(days=schedule.min_days_between)
        crowded = _crowded(fresh, existing, gap)
        if crowded:
            _space(connection, crowded, contacts, schedule, now)
    return counts


_COLUMNS = (
    "customer_id",
    "kind",
    "occasion_key",
    "status",
    "reason",
    "due_at",
    "expires_at",
    "channel",
)


def _existing(connection: Connection, customer_ids: list[int]) -> dict[int, dict[str, str]]:
    """These customers' touches: occasion key -> status. (Inside the caller's transaction; on
    SQLite its write lock keeps this exact, and on PostgreSQL a touch another instance adds
    meanwhile is still skipped by the insert's ON CONFLICT.)"""
    found: dict[int, dict[str, str]] = {}
    for part in chunked(customer_ids):
        rows = connection.execute(
            select(touches.c.customer_id, touches.c.occasion_key, touches.c.status).where(
                touches.c.customer_id.in_(part)
            )
        )
        for customer_id, key, status in rows:
            found.setdefault(customer_id, {})[key] = status
    return found


def _crowded(
    fresh: dict[int, list[datetime]], existing: dict[int, dict[str, str]], gap: timedelta
) -> list[int]:
    """The customers whose new notes may break the cap: two new ones within `gap` of each
    other, or other notes (open or taken) besides them. Everyone else is spared the
    planning."""
    crowded = []
    for customer_id, moments in fresh.items():
        moments.sort()
        others = existing.get(customer_id, {}).values()
        if any(status in NOTED for status in others) or any(
            later - earlier < gap for earlier, later in pairwise(moments)
        ):
            crowded.append(customer_id)
    return sorted(crowded)


def _status(occasion: Occasion, contact: Contact, now: datetime) -> tuple[str, str | None]:
    """A new touch's status and reason: suppressed, expired, or pending. A card or a call
    needs no email address: only an opt-out suppresses it."""
    if occasion.channel == "email":
        reason = suppression_reason(contact)
    elif contact.opted_out_at is not None:
        reason = f"opted out on {contact.opted_out_at.date().isoformat()}"
    else:
        reason = None
    if reason is not None:
        return "suppressed", reason
    if occasion.too_late(now):
        allowed = occasion.expires_at - occasion.due_at
        return (
            "expired",
            f"missed by {_days(now - occasion.due_at)}; sent at most {_days(allowed)} late",
        )
    return "pending", None


def _days(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


def _space(
    connection: Connection,
    customer_ids: list[int],
    contacts: dict[int, Contact],
    schedule: ScheduleSettings,
    now: datetime,
) -> None:
    """Plan these customers' open touches again under the frequency cap (a few queries per
    500 customers, however many touches they have)."""
    window = SendWindow.from_settings(schedule)
    gap = timedelta(days=schedule.min_days_between)
    for chunk in chunked(customer_ids):
        last_taken = dict(
            connection.execute(
                select(
                    touches.c.customer_id,
                    func.max(func.coalesce(touches.c.sent_at, touches.c.due_at)),
                )
                .where(
                    and_(
                        touches.c.customer_id.in_(chunk),
                        touches.c.status.in_(TAKEN),
                        touches.c.channel == "email",
                    )
                )
                .group_by(touches.c.customer_id)
            ).all()
        )
        open_rows: dict[int, list[Any]] = {}
        for row in connection.execute(
            select(
                touches.c.id,
                touches.c.customer_id,
                touches.c.kind,
                touches.c.occasion_key,
                touches.c.due_at,
                touches.c.expires_at,
                touches.c.status,
            ).where(
                and_(
                    touches.c.customer_id.in_(chunk),
                    touches.c.status.in_(OPEN),
                    touches.c.channel == "email",
                )
            )
        ):
            open_rows.setdefault(row.customer_id, []).append(row)
        changes: list[dict[str, Any]] = []
        for customer_id, rows in open_rows.items():
            if len(rows) == 1 and customer_id not in last_taken:
                continue  # nothing to space
            changes += _space_one(
                customer_id,
                rows,
                last_taken.get(customer_id),
                gap,
                schedule,
                window,
                contacts[customer_id].zone,
            )
        if changes:
            connection.execute(RESCHEDULE, [{**change, "now": now} for change in changes])


RESCHEDULE = (  # the touch's new due time, status and reason
    update(touches)
    .where(touches.c.id == bindparam("touch_id"))
    .values(
        due_at=bindparam("send_at"),
        status=bindparam("new_status"),
        reason=bindparam("new_reason"),
        updated_at=bindparam("now"),
    )
)


def _space_one(
    customer_id: int,
    rows: list[Any],
    last_taken: Any,
    gap: timedelta,
    schedule: ScheduleSettings,
    window: SendWindow,
    zone: tzinfo,
) -> list[dict[str, Any]]:
    """The changes the cap makes to one customer's open touches."""
    by_key = {row.occasion_key: row for row in rows}
    occasions = [
        Occasion(customer_id, row.kind, row.occasion_key, row.due_at, row.expires_at or row.due_at)
        for row in rows
    ]
    planned = space_out(
        occasions,
        last_note_at=aware_utc_or_none(last_taken),
        gap=gap,
        precedence=schedule.precedence,
        window=window,
        zone=zone,
    )
    changes = []
    for plan in planned:
        row = by_key[plan.occasion.key]
        if plan.send_at == row.due_at and plan.status != "expired":
            continue  # unchanged (a deferred touch keeps saying why it was deferred)
        changes.append(
            {
                "touch_id": row.id,
                "send_at": plan.send_at,
                "new_status": plan.status,
                "new_reason": plan.reason,
            }
        )
    return changes
