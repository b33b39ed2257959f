"""Which channel a note takes (email, a printed card, a call), and when a card is due.

Rules:
- A note is a call when its customer's tier or its kind is in `[channels] call` and the
  customer has a phone number; else a card when the tier or kind is in `cards`; else an email.
  Call wins over card.
- A card keeps its occasion's key, so an occasion still has one note. With `card_and_email`
  the email keeps the key and the card is a second note keyed `card:<key>`.
- A card for a dated occasion (birthday, anniversary) is due at the start of the business's
  local day `card_lead_days` before the occasion's local day (in the customer's zone), so it
  arrives in time; other cards (an order's thanks: no known future date) are due when their
  note is. A card stays printable until its occasion's own `max_lateness` has passed.
- A call is due when its note is, and expires as the note does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta, tzinfo

from scheduler.config.settings import ChannelsSettings
from scheduler.occasions.rules import Occasion
from scheduler.occasions.timing import local_day, local_moment
from scheduler.vocabulary import Channel, OccasionKind

DATED: frozenset[OccasionKind] = frozenset({"birthday", "anniversary"})
"""Occasions on a known future day: their cards are due `card_lead_days` earlier."""
CARD_PREFIX = "card:"


def channel_for(
    kind: OccasionKind, tier: str | None, has_phone: bool, settings: ChannelsSettings
) -> Channel:
    """The channel of a note of `kind` for a customer of `tier` (see the module's rules)."""
    if has_phone and (kind in settings.call or (tier is not None and tier in settings.call)):
        return "call"
    if kind in settings.cards or (tier is not None and tier in settings.cards):
        return "card"
    return "email"


def card_due(
    occasion: Occasion, customer_zone: tzinfo, business_zone: tzinfo, lead: int
) -> Occasion:
    """`occasion` as a card: due `lead` days before its day when dated (see the rules)."""
    if occasion.kind not in DATED:
        return replace(occasion, channel="card")
    day = local_day(occasion.due_at, customer_zone) - timedelta(days=lead)
    due = min(local_moment(day, time(0), business_zone), occasion.due_at)
    return replace(occasion, channel="card", due_at=due)


def routed(
    occasion: Occasion,
    channel: Channel,
    customer_zone: tzinfo,
    business_zone: tzinfo,
    settings: ChannelsSettings,
) -> list[Occasion]:
    """The notes `occasion` becomes on `channel`: one, or an email and a card."""
    if channel == "email":
        return [occasion]
    if channel == "call":
        return [replace(occasion, channel="call")]
    card = card_due(occasion, customer_zone, business_zone, settings.card_lead_days)
    if settings.card_and_email:
        return [occasion, replace(card, key=CARD_PREFIX + occasion.key)]
    return [card]
