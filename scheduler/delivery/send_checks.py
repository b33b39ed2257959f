"""The checks a claimed note passes before it is written: one place for the sender and the plan.

Rules, in order:
- a note whose customer is gone (deleted since it was recorded) fails;
- a note to a customer who opted out, or whose address cannot be used or bounced for good,
  since it was recorded is `suppressed`, with the reason;
- a note past its `expires_at` (it waited too long: a stopped service, a full budget) expires.
A note that passes is written and sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from scheduler.config.settings import Settings
from scheduler.delivery.claims import ClaimedTouch, Result
from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.outbox import Contact, contact_of, contacts_query, suppression_reason
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]


def check_before_writing(
    touch: ClaimedTouch, contact: Contact | None, now: datetime
) -> Result | None:
    """The outcome of a note that must not be sent (see the module's rules), or None."""
    if contact is None:
        return Result(touch.id, "failed", "the customer is gone", attempted=False)
    problem = suppression_reason(contact)
    if problem is not None:
        return Result(touch.id, "suppressed", problem, attempted=False)
    if touch.expires_at is not None and now > touch.expires_at:
        reason = f"too late to send: it could go until {touch.expires_at:%Y-%m-%d %H:%M} UTC"
        return Result(touch.id, "expired", reason, attempted=False)
    return None


def contacts_of(
    connection: Connection, customer_ids: Sequence[int], settings: Settings
) -> dict[int, Contact]:
    """The current contact details of these customers (those still in the store)."""
    zones = ZoneBook(ZoneInfo(settings.business.timezone))
    found: dict[int, Contact] = {}
    for part in chunked(sorted(set(customer_ids))):
        for row in connection.execute(contacts_query(part)):
            found[row.id] = contact_of(row, zones)
    return found
