"""What came back, for people: inbound messages newest first, with the note each answered and
the customer's own id (never our row id)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from scheduler.store.models import metadata

inbound_messages = metadata.tables["inbound_messages"]
customers = metadata.tables["customers"]


def inbound_rows(connection: Connection, kind: str | None, limit: int) -> list[dict[str, Any]]:
    """Inbound messages of `kind` (all: None), newest first, at most `limit` (0: all)."""
    query = (
        select(
            inbound_messages.c.id,
            inbound_messages.c.received_at,
            inbound_messages.c.kind,
            inbound_messages.c.seen_as,
            inbound_messages.c.touch_id.label("note"),
            customers.c.external_id.label("customer_id"),
            inbound_messages.c.sender,
            inbound_messages.c.subject,
            inbound_messages.c.detail,
        )
        .outerjoin(customers, customers.c.id == inbound_messages.c.customer_id)
        .order_by(inbound_messages.c.id.desc())
    )
    if kind is not None:
        query = query.where(inbound_messages.c.kind == kind)
    if limit:
        query = query.limit(limit)
    return [dict(row._mapping) for row in connection.execute(query)]
