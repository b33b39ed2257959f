"""Reading what lifetime value needs as numpy arrays, and saving the scores.

Orders are read in one pass through the driver's cursor (no ORM, no per-row type processing):
the database turns `placed_at` into epoch seconds and money into floats, so ten million orders
become four arrays without a Python object per value surviving the chunk they came in.
Scores replace the previous ones in one transaction: a reader sees the old scores or the new,
never a mix. A score beyond what a `Money` column holds (orders of hundreds of billions another
application wrote, say) is stored as the nearest amount it holds, +-LARGEST_AMOUNT, and counted
(`beyond_store`) so the refresh can say so; it never fails the refresh.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Column, Connection, Float, case, cast, func, select

from scheduler.ltv.value import LifetimeValues
from scheduler.progress import StageProgress
from scheduler.store.bulk import BulkWriter
from scheduler.store.models import metadata
from scheduler.store.types import LARGEST_AMOUNT

orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]
ltv_runs = metadata.tables["ltv_runs"]
CHUNK = 100_000
"""Rows fetched, or written, at a time."""
READING, SAVING = "Reading orders", "Saving values"
EARLIEST, LATEST = -2_208_988_800, 7_258_118_400
"""1900-01-01 and 2200-01-01 in epoch seconds: the times an order can plausibly have."""


@dataclass(frozen=True)
class OrderArrays:
    """Every order: its customer, when it was placed (UTC epoch seconds), its amount and its
    margin (NaN where the order has none)."""

    customer_id: NDArray[np.int64]
    placed: NDArray[np.int64]
    amount: NDArray[np.float64]
    margin: NDArray[np.float64]
    unreadable: int = 0
    """Orders left out: a placed_at the database cannot read as a time (written by another
    application in a format of its own) or outside 1900-2200, or an amount that is none or
    not from 0 to LARGEST_AMOUNT (1e300 or infinity written by that application)."""


def read_orders(connection: Connection, progress: StageProgress | None = None) -> OrderArrays:
    """All orders, in storage order."""
    total = connection.execute(select(func.count()).select_from(orders)).scalar_one()
    table = np.empty((total, 4), dtype=np.float64)  # ids and epoch seconds are exact in float64
    filled = 0
    statement = select(
        orders.c.customer_id,
        _epoch_seconds(connection),
        _number(connection, orders.c.amount),
        _number(connection, orders.c.margin),
    )
    for rows in _chunks(connection, statement):
        block = np.array(rows, dtype=np.float64)  # None (no margin) becomes NaN
        if filled + len(rows) > table.shape[0]:  # orders added since the count
            table = np.resize(table, (filled + len(rows), 4))
        table[filled : filled + len(rows)] = block
        filled += len(rows)
        if progress:
            progress(READING, filled, max(total, filled))
    table = table[:filled]
    amount = table[:, 2]
    readable = (
        (table[:, 1] >= EARLIEST)
        & (table[:, 1] <= LATEST)
        & (amount >= 0)  # NaN (no amount) compares false
        & (amount <= float(LARGEST_AMOUNT))
    )
    if not readable.all():
        table = table[readable]
    return OrderArrays(
        customer_id=table[:, 0].astype(np.int64),
        placed=np.floor(table[:, 1]).astype(np.int64),
        amount=np.ascontiguousarray(table[:, 2]),
        margin=np.ascontiguousarray(table[:, 3]),
        unreadable=int(filled - table.shape[0]),
    )


def _number(connection: Connection, column: Column[Any]) -> Any:
    """`column` as a float; on SQLite, text another application wrote there (`'NaN'`) is
    NULL, not the 0.0 SQLite's CAST makes of it."""
    if connection.dialect.name == "sqlite":
        numeric = func.typeof(column).in_(("real", "integer"))
        return case((numeric, cast(column, Float)), else_=None)
    return cast(column, Float)


def _epoch_seconds(connection: Connection) -> Any:
    if connection.dialect.name == "sqlite":  # placed_at is UTC text with microseconds
        return cast(func.strftime("%s", orders.c.placed_at), Float)
    return func.floor(func.extract("epoch", orders.c.placed_at))


def _chunks(connection: Connection, statement: Any) -> Iterator[Sequence[Any]]:
    """The statement's rows, CHUNK at a time, straight from the driver. Its only literals are
    our own constants, so they are written into the SQL."""
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled))
        while rows := cursor.fetchmany(CHUNK):
            yield rows
    finally:
        cursor.close()


def read_referrals(connection: Connection) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(referrer ids, referred ids), pair by pair."""
    statement = select(referrals.c.referrer_id, referrals.c.referred_id)
    rows = [row for chunk in _chunks(connection, statement) for row in chunk]
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def read_customer_ids(connection: Connection) -> NDArray[np.int64]:
    """Every customer's id: customers without orders get a score too."""
    chunks = [
        np.array(rows, dtype=np.int64).reshape(-1)
        for rows in _chunks(connection, select(customers.c.id))
    ]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)


def beyond_store(values: LifetimeValues) -> int:
    """How many customers have a score (any of its parts) that `save_values` stores capped."""
    parts = np.stack((values.historical, values.predicted, values.referral, values.total))
    return int(np.count_nonzero((np.abs(parts) > float(LARGEST_AMOUNT)).any(axis=0)))


def _storable(amounts: NDArray[np.float64]) -> list[float]:
    largest = float(LARGEST_AMOUNT)
    return np.clip(np.round(amounts, 2), -largest, largest).tolist()  # type: ignore[no-any-return]


def save_values(
    connection: Connection,
    values: LifetimeValues,
    *,
    as_of: date,
    computed_at: datetime,
    progress: StageProgress | None = None,
) -> int:
    """Replace every stored score with `values`; the new run's id."""
    run_id: int = connection.execute(
        ltv_runs.insert().values(
            computed_at=computed_at,
            as_of=as_of,
            model=values.model,
            params=values.params,
            spend_params=values.spend_params,
            log_likelihood=values.log_likelihood,
            reason=values.reason,
            customers=int(values.customer_id.shape[0]),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    connection.execute(customer_values.delete())
    writer = BulkWriter(
        connection,
        customer_values,
        ("customer_id", "historical", "predicted", "referral", "total", "p_alive", "tier"),
        {"run_id": run_id},
    )
    count = int(values.customer_id.shape[0])
    tiers = values.tier_labels()
    for start in range(0, count, CHUNK):
        part = slice(start, start + CHUNK)
        alive = [None if math.isnan(p) else p for p in values.p_alive[part].tolist()]
        writer.insert(
            zip(
                values.customer_id[part].tolist(),
                _storable(values.historical[part]),
                _storable(values.predicted[part]),
                _storable(values.referral[part]),
                _storable(values.total[part]),
                alive,
                tiers[part].tolist(),
                strict=True,
            )
        )
        if progress:
            progress(SAVING, min(start + CHUNK, count), count)
    return run_id
