"""Addresses that bounced for good (`undeliverable_addresses`): no note goes to them.

Rules:
- Keyed by the address, lower-cased: a customer given another address (an import, their own
  app) is written to again, with nothing to undo; the same address written in other capitals
  stays undeliverable.
- `mark_undeliverable` keeps the first bounce's time and reason (a later one changes nothing).
- `works_again`: the owner says the customer's current address works again (the mailbox was
  fixed): it is taken off the list. Notes already suppressed for the bounce stay so.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from scheduler.store.db import conflict_insert
from scheduler.store.models import metadata
from scheduler.store.opt_outs import Choice

customers = metadata.tables["customers"]
undeliverable = metadata.tables["undeliverable_addresses"]


def mark_undeliverable(connection: Connection, address: str, now: datetime, reason: str) -> None:
    """No note goes to `address` from now on (see the module's rules)."""
    insert = conflict_insert(connection.dialect.name)
    connection.execute(
        insert(undeliverable)
        .values(address=address.strip().lower(), since=now, reason=reason[:2000])
        .on_conflict_do_nothing()
    )


def bounced_since(connection: Connection, address: str | None) -> tuple[datetime, str] | None:
    """When `address` bounced for good, and why; None when it did not."""
    if not address:
        return None
    row = connection.execute(
        select(undeliverable.c.since, undeliverable.c.reason).where(
            undeliverable.c.address == address.strip().lower()
        )
    ).first()
    return (row.since, row.reason) if row else None


def works_again(connection: Connection, customer_id: int, _now: datetime, _source: str) -> Choice:
    """Take the customer's current address off the list (see the module's rules)."""
    email = select(func.lower(customers.c.email)).where(customers.c.id == customer_id)
    done = connection.execute(
        delete(undeliverable).where(undeliverable.c.address == email.scalar_subquery())
    )
    return Choice(changed=bool(done.rowcount))
