"""Opting out and back in: the customer's own choice, kept with who, when and how, and acted
on at once.

Rules:
- `opt_out` sets `customers.opted_out_at` and writes an `opt_outs` row (action `opt_out`,
  its source and detail), then suppresses every open note of the customer: pending, deferred,
  and claimed by a sender (whose `sending` mark then fails, so the note never goes; the send
  path checks the opt-out again too). A note already being handed to the server (`sending`)
  cannot be called back. Each suppressed note's history says why.
- Idempotent: a customer already opted out stays as they are (the first opt-out's time is
  kept, nothing is written); `opt_out` says whether it changed anything.
- `resubscribe` clears `opted_out_at`, writes an `opt_outs` row (action `resubscribe`), and
  gives back to pending the notes suppressed for the opt-out since it was made that are still
  in time (not past `expires_at`). A customer not opted out is left as they are.
- `opted_out_elsewhere` does the same for customers a CSV import has just opted out.
- Run these inside a write transaction (`scheduler.store.db.write_transaction` on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, bindparam, or_, select, update

from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.outbox import OPEN
from scheduler.store.touch_history import record_events

customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
opt_outs = metadata.tables["opt_outs"]

Source = Literal["one_click", "page", "email", "reply", "complaint", "import", "console"]
SOURCES: tuple[Source, ...] = (
    "one_click",
    "page",
    "email",
    "reply",
    "complaint",
    "import",
    "console",
)
"""How a choice reached appreciate: the mail app's one-click button (RFC 8058), the unsubscribe
page, an email, a reply, a spam complaint, a CSV import, the owner's console."""
SUPPRESSIBLE = (*OPEN, "claimed")
"""Notes an opt-out stops: not yet handed to the server."""
OPTED_OUT_PREFIX = "opted out on "
"""How the reason of a note suppressed for an opt-out begins (see `scheduler.store.outbox`)."""


@dataclass(frozen=True)
class Choice:
    """What a call did: whether the customer's state changed, and how many notes it touched
    (suppressed by an opt-out, given back by a resubscription)."""

    changed: bool
    notes: int = 0


# Built once: the unsubscribe page runs them for every click (SQLAlchemy then reuses their
# compiled form instead of building each statement again).
_OPT_OUT = (
    update(customers)
    .where(customers.c.id == bindparam("who"), customers.c.opted_out_at.is_(None))
    .values(opted_out_at=bindparam("now"), updated_at=bindparam("now"))
)
_AUDIT = opt_outs.insert().values(
    customer_id=bindparam("who"),
    at=bindparam("now"),
    action=bindparam("action"),
    source=bindparam("source"),
    detail=bindparam("detail"),
)
_STOP_NOTES = (
    update(touches)
    .where(
        touches.c.customer_id.in_(bindparam("who", expanding=True)),
        touches.c.status.in_(SUPPRESSIBLE),
    )
    .values(
        status="suppressed",
        reason=bindparam("reason"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("now"),
    )
    .returning(touches.c.id)
)


def opt_out(
    connection: Connection, customer_id: int, now: datetime, source: Source, detail: str = ""
) -> Choice:
    """Opt the customer out now (see the module's rules)."""
    done = connection.execute(_OPT_OUT, {"who": customer_id, "now": now})
    if done.rowcount != 1:
        return Choice(changed=False)
    _audit(connection, customer_id, now, "opt_out", source, detail)
    return Choice(changed=True, notes=_stop_open_notes(connection, [customer_id], now, source))


def opted_out_elsewhere(
    connection: Connection,
    opted_out: Sequence[int],
    now: datetime,
    source: Source,
    detail: str = "",
) -> int:
    """Customers whose `opted_out_at` the caller has just set (a CSV import): the audit rows,
    and their open notes suppressed as `opt_out` does, in a few statements however many there
    are. How many notes were suppressed."""
    suppressed = 0
    for chunk in chunked(list(opted_out)):
        connection.execute(
            opt_outs.insert(),
            [
                {
                    "customer_id": who,
                    "at": now,
                    "action": "opt_out",
                    "source": source,
                    "detail": detail or None,
                }
                for who in chunk
            ],
        )
        suppressed += _stop_open_notes(connection, chunk, now, source)
    return suppressed


def resubscribe(
    connection: Connection, customer_id: int, now: datetime, source: Source, detail: str = ""
) -> Choice:
    """Opt the customer back in now (see the module's rules)."""
    since = connection.execute(
        select(customers.c.opted_out_at).where(customers.c.id == customer_id)
    ).scalar()
    if since is None:
        return Choice(changed=False)
    connection.execute(
        update(customers)
        .where(customers.c.id == customer_id)
        .values(opted_out_at=None, updated_at=now)
    )
    _audit(connection, customer_id, now, "resubscribe", source, detail)
    given_back = connection.execute(
        update(touches)
        .where(
            touches.c.customer_id == customer_id,
            touches.c.status == "suppressed",
            touches.c.reason.startswith(OPTED_OUT_PREFIX),
            touches.c.updated_at >= since,
            or_(touches.c.expires_at.is_(None), touches.c.expires_at > now),
        )
        .values(status="pending", reason=None, updated_at=now)
        .returning(touches.c.id)
    ).all()
    record_events(connection, [(row.id, "pending", "resubscribed") for row in given_back], now)
    return Choice(changed=True, notes=len(given_back))


def _stop_open_notes(
    connection: Connection, customer_ids: Sequence[int], now: datetime, source: Source
) -> int:
    reason = f"{OPTED_OUT_PREFIX}{now.date().isoformat()} ({source.replace('_', '-')})"
    suppressed = connection.execute(
        _STOP_NOTES, {"who": list(customer_ids), "reason": reason, "now": now}
    ).all()
    record_events(connection, [(row.id, "suppressed", reason) for row in suppressed], now)
    return len(suppressed)


def _audit(
    connection: Connection,
    customer_id: int,
    now: datetime,
    action: str,
    source: Source,
    detail: str,
) -> None:
    connection.execute(
        _AUDIT,
        {
            "who": customer_id,
            "now": now,
            "action": action,
            "source": source,
            "detail": detail or None,
        },
    )
