"""A rendered note made into the message a customer receives: the business's sender, the
customer's address, the unsubscribe links. Shared by delivery and `appreciate preview`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scheduler.config.settings import BusinessSettings
from scheduler.errors import AppreciateError
from scheduler.notes.message import BuiltMessage, MessageParts, build_message, make_message_id
from scheduler.notes.render import RenderedNote


def note_message(
    business: BusinessSettings,
    note: RenderedNote,
    context: Mapping[str, Any],
    *,
    message_id: str | None,
    date: datetime,
) -> BuiltMessage:
    """The message for `note`, written for the customer in `context`.

    `message_id` is the note's stored one (a retry reuses it); None makes a new one in the
    sender's domain. The https unsubscribe link (with its one-click header) comes from the
    context, the mailto one from `[business] unsubscribe_email`.
    """
    customer = context.get("customer")
    if not isinstance(customer, Mapping):
        raise AppreciateError("the note's customer could not be read")
    unsubscribe = context.get("unsubscribe_url")
    return build_message(
        MessageParts(
            from_name=business.sender_name,
            from_address=business.sender_email,
            to_name=str(customer["name"]),
            to_address=str(customer["email"]),
            reply_to=business.reply_to or None,
            subject=note.subject,
            text=note.text,
            html=note.html,
            message_id=message_id or make_message_id(business.sender_email.rpartition("@")[2]),
            date=date,
            unsubscribe_url=unsubscribe if isinstance(unsubscribe, str) else None,
            unsubscribe_mailto=business.unsubscribe_email or None,
        )
    )
