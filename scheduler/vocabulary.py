"""The words appreciate's parts share: occasion kinds, note statuses, the largest id. A leaf
(no imports of appreciate's own), so that the command line can offer them as choices without
loading the config, the store or the sender.
"""

from __future__ import annotations

from typing import Literal, get_args

MAX_ID = 2**63 - 1
"""The largest id the store holds (a 64-bit integer): a larger note id, count or limit names
nothing, and the commands and pages say so by name instead of passing it to the driver."""

OccasionKind = Literal[
    "birthday",
    "order_thanks",
    "referral_thanks",
    "review_thanks",
    "first_meeting",
    "follow_up",
    "anniversary",
    "check_in",
]
OCCASION_KINDS: tuple[OccasionKind, ...] = get_args(OccasionKind)
"""Every kind, in the default precedence (which goes first when several fall together)."""

STATUSES = (
    "pending",
    "deferred",
    "claimed",
    "sending",
    "sent",
    "failed",
    "unknown",
    "held",
    "suppressed",
    "expired",
    "skipped",
    "bounced",
    "printed",
)
"""Every status a note (a touch) can have; see `scheduler.store.models.Touch`."""
CHANNELS = ("email", "card", "call")
"""How a note reaches its customer: an email (sent by the daemon), a printed card the owner
signs and posts (`appreciate cards`), or a call on the owner's list (`appreciate calls`)."""
Channel = Literal["email", "card", "call"]
WAITING = ("pending", "deferred")
"""Statuses of notes waiting to go (a sender claims them once due)."""
RETRYABLE = ("failed", "unknown", "held")
"""Statuses a person may send again (`appreciate retry`)."""
INBOUND_KINDS = (
    "bounce",
    "soft_bounce",
    "complaint",
    "opt_out",
    "auto_reply",
    "reply",
    "unmatched",
)
"""What was done with a message that came back (`scheduler.inbound.record`)."""
