"""Senders take due notes with a lease, and only the lease's owner writes their outcome.

Rules:
- A note is due when it is pending or deferred, its due time has come, any retry wait is
  over, and so is any later day the daily budget planned it for. Claiming sets `claimed` with
  (owner, until); on PostgreSQL the due rows are picked with
  `FOR UPDATE SKIP LOCKED`, so several instances share the work without waiting on each other;
  on SQLite the claim runs under the write lock (`BEGIN IMMEDIATE`).
- Right before a note is handed to the server it becomes `sending`. A sender that dies leaves
  its leases to expire: `claimed` notes go back to pending (another sender takes them),
  `sending` ones become `unknown` (they may have gone out; never resent by themselves).
- Every outcome is written with `WHERE lease_owner = owner`: a sender whose lease was taken
  over writes nothing. Each status change also goes into `touch_events` with its time and reason.
- Sending can be paused for everyone (a refused login, a server without the TLS it must offer,
  a server that does not greet like a mail server): the reason is kept in `app_state` until
  the owner resumes.
- A mail server that throttles slows every instance down: a back-off (until when, why, how
  many throttles in a row) is kept in `app_state`, and no send starts before it ends. A throttle
  while a back-off runs is part of it; one after it ran out waits twice as long as the last
  (see `throttle`); an accepted message forgets a back-off that ran out (`end_throttle`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    and_,
    bindparam,
    or_,
    select,
    true,
    update,
)

from scheduler.delivery.throttle import PAUSED, THROTTLED, Throttle, throttle_from_json
from scheduler.store.db import conflict_insert
from scheduler.store.driver_writes import DriverSQL
from scheduler.store.models import metadata
from scheduler.store.touch_history import record_events
from scheduler.vocabulary import WAITING, OccasionKind
from scheduler.waits import doubled_wait

touches = metadata.tables["touches"]
touch_events = metadata.tables["touch_events"]
app_state = metadata.tables["app_state"]
CLAIMABLE = WAITING
_HELD_BY_OWNER = and_(
    touches.c.id == bindparam("touch_id"), touches.c.lease_owner == bindparam("owner")
)
"""A note (`touch_id`) whose lease `owner` still holds."""


@dataclass(frozen=True)
class ClaimedTouch:
    id: int
    customer_id: int
    kind: OccasionKind
    occasion_key: str
    due_at: datetime
    expires_at: datetime | None
    attempts: int
    message_id: str | None


@dataclass(frozen=True)
class Result:
    """The new state of one claimed note."""

    touch_id: int
    status: str
    reason: str | None
    reply: str | None = None
    sent_at: datetime | None = None
    retry_at: datetime | None = None
    attempted: bool = True
    """Whether this counts as an attempt (a paused or released note's does not)."""


def reap(connection: Connection, now: datetime) -> tuple[int, int]:
    """Leases past their time: claimed notes back to pending, sending ones to unknown. Returns
    (requeued, unknown)."""
    return _take_back(connection, touches.c.lease_until < now, now, "taken up again")


def _take_back(
    connection: Connection, held: ColumnElement[bool], now: datetime, again: str
) -> tuple[int, int]:
    """The claimed or sending notes matching `held` lose their lease: claimed ones go back to
    pending (the reason ends with `again`), sending ones become unknown (they may have gone).
    Each row changes only if it is still as read. Returns (requeued, unknown)."""
    rows = connection.execute(
        select(touches.c.id, touches.c.status, touches.c.lease_owner).where(
            and_(held, touches.c.status.in_(("claimed", "sending")))
        )
    ).all()
    events = [
        (row.id, "pending", f"the sender {row.lease_owner} stopped before sending it; {again}")
        if row.status == "claimed"
        else (
            row.id,
            "unknown",
            f"the sender {row.lease_owner} stopped while handing it to the server: it may "
            f"have gone out; `appreciate retry {row.id}` sends it again",
        )
        for row in rows
    ]
    if events:
        old_status = {row.id: row.status for row in rows}
        connection.execute(
            update(touches)
            .where(
                and_(
                    touches.c.id == bindparam("touch_id"),
                    touches.c.status == bindparam("old_status"),
                    held,
                )
            )
            .values(
                status=bindparam("new_status"),
                reason=bindparam("new_reason"),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            ),
            [
                {"touch_id": t, "old_status": old_status[t], "new_status": s, "new_reason": r}
                for t, s, r in events
            ],
        )
        record_events(connection, events, now)
    unknown = sum(1 for _, status, _ in events if status == "unknown")
    return len(events) - unknown, unknown


def claim(
    connection: Connection,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    only: Sequence[int] | None = None,
) -> list[ClaimedTouch]:
    """Take up to `limit` due notes (earliest due first) for `owner` until now + lease; with
    `only`, due notes among those ids alone. Only email notes: cards and calls are the
    owner's (`appreciate cards`, `appreciate calls`)."""
    among = touches.c.id.in_(only) if only is not None else true()
    due = (
        select(touches.c.id)
        .where(
            and_(
                among,
                touches.c.status.in_(CLAIMABLE),
                touches.c.channel == "email",
                touches.c.due_at <= now,
                or_(touches.c.retry_at.is_(None), touches.c.retry_at <= now),
                or_(touches.c.planned_at.is_(None), touches.c.planned_at <= now),
            )
        )
        .order_by(touches.c.due_at, touches.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = connection.execute(
        update(touches)
        .where(touches.c.id.in_(due.scalar_subquery()))
        .values(status="claimed", lease_owner=owner, lease_until=now + lease, updated_at=now)
        .returning(
            touches.c.id,
            touches.c.customer_id,
            touches.c.kind,
            touches.c.occasion_key,
            touches.c.due_at,
            touches.c.expires_at,
            touches.c.attempts,
            touches.c.message_id,
        )
    ).all()
    return sorted((ClaimedTouch(*row) for row in rows), key=lambda t: (t.due_at, t.id))


_MARK = (
    update(touches)
    .where(and_(_HELD_BY_OWNER, touches.c.status == "claimed"))
    .values(status="sending", lease_until=bindparam("until"), updated_at=bindparam("now"))
)


def mark_sending(
    connection: DriverSQL, touch_id: int, owner: str, now: datetime, lease: timedelta
) -> bool:
    """The note is about to be handed to the server; False when the lease was lost. The lease
    starts again from now, so a batch that took long to reach this note does not leave it to
    be reaped (and called unknown) while it is being sent."""
    return _sending_marks(connection.dialect).mark(connection, touch_id, owner, now, now + lease)


class _SendingMarks:
    """`_MARK`, compiled once for a dialect and handed to the driver as it is: the send loop
    marks every note, and SQLAlchemy's per-statement work was most of a mark's cost."""

    def __init__(self, dialect: Dialect) -> None:
        compiled = _MARK.compile(dialect=dialect)
        self._sql = str(compiled)
        self._order = compiled.positiontup  # None: the driver takes named parameters
        self._fixed = compiled.construct_params(_check=False)  # the statuses
        moment = touches.c.lease_until.type.bind_processor(dialect)
        self._moment: Callable[[datetime], object] = moment or (lambda value: value)

    def mark(
        self, connection: DriverSQL, touch_id: int, owner: str, now: datetime, until: datetime
    ) -> bool:
        params = {
            **self._fixed,
            "touch_id": touch_id,
            "owner": owner,
            "now": self._moment(now),
            "until": self._moment(until),
        }
        args = tuple(params[name] for name in self._order) if self._order else params
        return connection.exec_driver_sql(self._sql, args).rowcount == 1


@functools.lru_cache(maxsize=8)
def _sending_marks(dialect: Dialect) -> _SendingMarks:
    return _SendingMarks(dialect)


def save_prepared(
    connection: DriverSQL, owner: str, rows: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Keep each note as written (message_id, subject, body_text, body_html, headers) before it
    is sent: a retry resends the same Message-ID. One executemany, compiled once per dialect
    and handed to the driver as it is (see `_Compiled`)."""
    if rows:
        save = _saves(connection.dialect)
        memo: dict[datetime, object] = {}
        connection.exec_driver_sql(
            save.sql, [save.args({**row, "owner": owner, "now": now}, memo) for row in rows]
        )


_SAVE = (
    update(touches)
    .where(_HELD_BY_OWNER)
    .values(
        message_id=bindparam("new_message_id"),
        subject=bindparam("new_subject"),
        body_text=bindparam("new_text"),
        body_html=bindparam("new_html"),
        headers=bindparam("new_headers"),
        updated_at=bindparam("now"),
    )
)


_RESULT = (
    update(touches)
    .where(_HELD_BY_OWNER)
    .values(
        status=bindparam("new_status"),
        reason=bindparam("new_reason"),
        last_reply=bindparam("new_reply"),
        sent_at=bindparam("new_sent_at"),
        retry_at=bindparam("new_retry_at"),
        attempts=touches.c.attempts + bindparam("attempted"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("now"),
    )
)


_HELD = select(touches.c.id).where(touches.c.lease_owner == bindparam("owner"))
_EVENT = (
    touch_events.insert()
    .inline()
    .values(
        touch_id=bindparam("touch_id"),
        at=bindparam("at"),
        status=bindparam("status"),
        reason=bindparam("reason"),
    )
)


def record_results(
    connection: DriverSQL, owner: str, results: Sequence[Result], now: datetime
) -> int:
    """Write each outcome (only where `owner` still holds the lease) and its event; returns how
    many were written. In the caller's transaction: one query for the leases still held, one
    executemany for the outcomes and one for the events, each compiled once per dialect and
    handed to the driver as it is (see `_ResultWrites`)."""
    if not results:
        return 0
    return _result_writes(connection.dialect).record(connection, owner, results, now)


class _Compiled:
    """A statement compiled once for a dialect: its SQL, and its parameters in the driver's
    form (positional or named), with `moments` (datetime parameters) converted as the column
    type would."""

    def __init__(self, statement: Any, dialect: Dialect, moments: Sequence[str] = ()) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._order = compiled.positiontup  # None: the driver takes named parameters
        self._fixed = compiled.construct_params(_check=False)  # values fixed in the statement
        moment = touches.c.lease_until.type.bind_processor(dialect)
        convert: Callable[[datetime], object] = moment or (lambda value: value)
        self._moments = dict.fromkeys(moments, convert)

    def args(self, values: dict[str, Any], memo: dict[datetime, object] | None = None) -> Any:
        """`values` as the driver takes them; `memo` keeps each moment converted once across
        the rows of one executemany (they share `now`)."""
        params = {**self._fixed, **values}
        for name, convert in self._moments.items():
            value = params[name]
            if value is not None:
                if memo is None:
                    params[name] = convert(value)
                    continue
                converted = memo.get(value)
                if converted is None:
                    converted = memo[value] = convert(value)
                params[name] = converted
        return tuple(params[name] for name in self._order) if self._order else params


class _ResultWrites:
    """What `record_results` runs, compiled once for a dialect (the send loop records every
    note's outcome, and SQLAlchemy's per-statement work was most of the cost)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._result = _Compiled(_RESULT, dialect, ("new_sent_at", "new_retry_at", "now"))
        self._event = _Compiled(_EVENT, dialect, ("at",))

    def record(
        self, connection: DriverSQL, owner: str, results: Sequence[Result], now: datetime
    ) -> int:
        held = _held_query(self._dialect, len(results))
        ids = {f"id_{n}": r.touch_id for n, r in enumerate(results)}
        found = connection.exec_driver_sql(held.sql, held.args({**ids, "owner": owner}))
        mine_ids = {row[0] for row in found}
        mine = [r for r in results if r.touch_id in mine_ids]
        if not mine:
            return 0
        memo: dict[datetime, object] = {}
        connection.exec_driver_sql(
            self._result.sql,
            [
                self._result.args(
                    {
                        "touch_id": r.touch_id,
                        "owner": owner,
                        "new_status": r.status,
                        "new_reason": r.reason,
                        "new_reply": r.reply,
                        "new_sent_at": r.sent_at,
                        "new_retry_at": r.retry_at,
                        "attempted": 1 if r.attempted else 0,
                        "now": now,
                    },
                    memo,
                )
                for r in mine
            ],
        )
        connection.exec_driver_sql(
            self._event.sql,
            [
                self._event.args(
                    {"touch_id": r.touch_id, "at": now, "status": r.status, "reason": r.reason},
                    memo,
                )
                for r in mine
            ],
        )
        return len(mine)


@functools.lru_cache(maxsize=8)
def _result_writes(dialect: Dialect) -> _ResultWrites:
    return _ResultWrites(dialect)


@functools.lru_cache(maxsize=8)
def _saves(dialect: Dialect) -> _Compiled:
    return _Compiled(_SAVE, dialect, ("now",))


@functools.lru_cache(maxsize=256)
def _held_query(dialect: Dialect, count: int) -> _Compiled:
    """Which of `count` notes (`id_0`..) `owner` still holds the lease of."""
    ids: list[Any] = [bindparam(f"id_{n}") for n in range(count)]
    return _Compiled(_HELD.where(touches.c.id.in_(ids)), dialect)


def release(connection: Connection, owner: str, now: datetime) -> tuple[int, int]:
    """At stop: `owner`'s claimed notes back to pending at once (no waiting for the lease), and
    the ones it was handing to the server when it stopped to unknown (they may have gone).
    Returns (released, unknown)."""
    return _take_back(connection, touches.c.lease_owner == owner, now, "released")


def paused_reason(connection: Connection) -> str | None:
    """Why sending is paused, or None."""
    value: str | None = connection.execute(
        select(app_state.c.value).where(app_state.c.name == PAUSED)
    ).scalar()
    return value


def pause(connection: Connection, reason: str, now: datetime) -> None:
    """Pause sending for every instance, keeping the first reason given (two instances pausing
    at once is fine)."""
    insert = conflict_insert(connection.dialect.name)
    connection.execute(
        insert(app_state)
        .values(name=PAUSED, value=reason, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def resume(connection: Connection) -> str | None:
    """Lift the pause; the reason it had, or None when sending was not paused."""
    reason = paused_reason(connection)
    connection.execute(app_state.delete().where(app_state.c.name == PAUSED))
    return reason


def throttled(connection: Connection, *, lock: bool = False) -> Throttle | None:
    """The last back-off recorded (it may have run out), or None; `lock`: held until the
    transaction ends (PostgreSQL; on SQLite the write transaction holds the whole store)."""
    query = select(app_state.c.value).where(app_state.c.name == THROTTLED)
    value = connection.execute(query.with_for_update() if lock else query).scalar()
    return None if value is None else throttle_from_json(value)


def throttle(
    connection: Connection, reason: str, now: datetime, first_wait: timedelta, longest: timedelta
) -> Throttle:
    """Record that the server throttled a send at `now`, and return the back-off in force. One
    still running is kept (several connections or instances throttled at once are one
    throttle); after one that ran out the wait is twice as long: `first_wait`, doubling with
    each throttle in a row, at most `longest`."""
    last = throttled(connection, lock=True)
    if last is not None and last.until > now:
        return last
    in_a_row = last.in_a_row + 1 if last is not None else 1
    backoff = Throttle(now + doubled_wait(first_wait, in_a_row, longest), reason, in_a_row)
    insert = conflict_insert(connection.dialect.name)
    statement = insert(app_state).values(
        name=THROTTLED, value=json.dumps(backoff.as_dict()), updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )
    return backoff


def end_throttle(connection: Connection, now: datetime) -> None:
    """A message was accepted: a back-off that ran out is forgotten, so the next throttle waits
    `first_wait` again. One still running stays (another instance was throttled since)."""
    last = throttled(connection, lock=True)
    if last is not None and last.until <= now:
        connection.execute(app_state.delete().where(app_state.c.name == THROTTLED))
