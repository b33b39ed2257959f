"""Detected notes routed to their channel (email, card, call) by `[channels]`.

The customer's tier comes from their latest lifetime-value score (none yet: no tier), and a
call needs a phone number (without one the note is routed as if calls were not configured).
See `scheduler.occasions.channels` for the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from sqlalchemy import Connection, select

from scheduler.config.settings import Settings
from scheduler.occasions.channels import channel_for, routed
from scheduler.occasions.rules import Occasion
from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.outbox import Contact

customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]


def route(
    connection: Connection,
    settings: Settings,
    occasions: Iterable[Occasion],
    contacts: dict[int, Contact],
    business_zone: tzinfo,
    *,
    cards_only: bool = False,
) -> list[Occasion]:
    """Each occasion as the notes it becomes; with `cards_only` (the look-ahead for cards due
    before their day), only the cards."""
    channels = settings.channels
    wanted = list(occasions)
    if not channels.cards and not channels.call:
        return [] if cards_only else wanted
    facts = _tiers_and_phones(connection, {o.customer_id for o in wanted})
    found: list[Occasion] = []
    for occasion in wanted:
        tier, phone = facts.get(occasion.customer_id, (None, None))
        channel = channel_for(occasion.kind, tier, bool(phone), channels)
        zone = contacts[occasion.customer_id].zone
        notes = routed(occasion, channel, zone, business_zone, channels)
        found += [note for note in notes if note.channel == "card"] if cards_only else notes
    return found


def _tiers_and_phones(
    connection: Connection, ids: set[int]
) -> dict[int, tuple[str | None, str | None]]:
    found: dict[int, tuple[str | None, str | None]] = {}
    for part in chunked(sorted(ids)):
        rows = connection.execute(
            select(customers.c.id, customer_values.c.tier, customers.c.phone)
            .outerjoin(customer_values, customer_values.c.customer_id == customers.c.id)
            .where(customers.c.id.in_(part))
        )
        for row in rows:
            found[row.id] = (row.tier, row.phone)
    return found
