"""Dates at the calendar's edges (and amounts that are none) in the store: found in SQL, so
they never reach the rules.

Rules:
- A date or time is plausible from EARLIEST_YEAR to LATEST_YEAR (`scheduler.occasions.dates`).
  Rows holding another (a placeholder 9999-12-31 or 0001-01-01 written before import bounded
  dates, or by the business's own application) are left out of what detection reads by
  `plausible(column)`, compared in SQL: Python never computes with them (a day added to
  9999-12-31 overflows), and on SQLite even text that is no date at all sorts outside.
- An amount (a `Money` column) is plausible from 0 to LARGEST_AMOUNT (what NUMERIC(14, 2)
  holds): the business's own application may write 1e300, infinity or text on SQLite, and 'NaN'
  on PostgreSQL (which passes `amount >= 0`); such a row is left out the same way.
- `implausible_rows` names the rows a watermark read leaves out, once: their table, their own id
  (the business's id where the table has one) and each column at fault, as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    String,
    Table,
    and_,
    case,
    cast,
    not_,
    or_,
    select,
)

from scheduler.occasions.dates import EARLIEST_YEAR, LATEST_YEAR
from scheduler.store.types import LARGEST_AMOUNT, Money

FIRST_DAY, LAST_DAY = date(EARLIEST_YEAR, 1, 1), date(LATEST_YEAR, 12, 31)
FIRST_MOMENT = datetime.combine(FIRST_DAY, time(0), UTC)
LAST_MOMENT = datetime.combine(LAST_DAY, time.max, UTC)


@dataclass(frozen=True)
class SkippedRow:
    """A row a reader left out, and why."""

    table: str
    row: str
    """Its own id: the business's id (external_id) where the table has one, else `#<id>`."""
    why: str

    def __str__(self) -> str:
        return f"{self.table} {self.row}: {self.why}"


def plausible(column: Column[object], *, nullable: bool = False) -> ColumnElement[bool]:
    """`column` (a date, a timestamp or an amount) holds a plausible value (NULL too, when
    `nullable`)."""
    first, last = _bounds(column)
    inside = column.between(first, last)
    return or_(column.is_(None), inside) if nullable else inside


def _bounds(column: Column[object]) -> tuple[object, object]:
    if isinstance(column.type, Money):
        return Decimal(0), LARGEST_AMOUNT
    if isinstance(column.type, Date):
        return FIRST_DAY, LAST_DAY
    return FIRST_MOMENT, LAST_MOMENT


def _fault(column: Column[object], value: object) -> str:
    """Why `value`, as stored in `column`, is left out."""
    if isinstance(column.type, Money):
        return f"{column.name} {value} is not an amount from 0 to {LARGEST_AMOUNT}"
    return f"{column.name} {value} is not a date from {EARLIEST_YEAR} to {LATEST_YEAR}"


def all_plausible(columns: Sequence[tuple[Column[object], bool]]) -> ColumnElement[bool]:
    """Every (column, nullable) pair holds a plausible value."""
    return and_(*(plausible(column, nullable=nullable) for column, nullable in columns))


def implausible_rows(
    connection: Connection,
    table: Table,
    after_id: int,
    columns: Sequence[tuple[Column[object], bool]],
) -> tuple[list[SkippedRow], int | None]:
    """The rows with an id above `after_id` that `all_plausible(columns)` leaves out, each with
    the columns at fault, and the highest such id (None when there are none)."""
    own = table.c.external_id if "external_id" in table.c else table.c.id
    checks = [
        (
            column,
            cast(column, String),
            case((plausible(column, nullable=nullable), 1), else_=0),
        )
        for column, nullable in columns
    ]
    rows = connection.execute(
        select(table.c.id, own, *(value for _, value, _ in checks), *(ok for _, _, ok in checks))
        .where(table.c.id > after_id, not_(all_plausible(columns)))
        .order_by(table.c.id)
    ).all()
    skipped = []
    for row in rows:
        values, oks = row[2 : 2 + len(checks)], row[2 + len(checks) :]
        faults = [
            _fault(column, value)
            for (column, _, _), value, ok in zip(checks, values, oks, strict=True)
            if not ok
        ]
        own_id = str(row[1]) if own is not table.c.id else f"#{row[0]}"
        skipped.append(SkippedRow(table.name, own_id, "; ".join(faults)))
    return skipped, (rows[-1][0] if rows else None)
