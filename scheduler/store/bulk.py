"""Reading and writing many rows fast, with values converted exactly as SQLAlchemy would.

Core's `connection.execute(insert(table), rows)` spends most of its time per row building and
processing parameter dictionaries, and an expanding `IN` is compiled anew for every distinct
number of keys. For imports of millions of rows this module builds the SQL once, converts each
value with its column type's own SQLAlchemy processor (so what is stored is identical: the same
SQLite datetime text, the same money representation, the same JSON) and talks to the driver's
cursor directly, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Table

Processor = Callable[[Any], Any] | None
T = TypeVar("T")
IN_LIST_SIZE = 500
"""Keys per `IN (...)` list when a query is asked about many rows."""


def chunked(items: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bind_processors(
    connection: Connection, table: Table, columns: Sequence[str]
) -> list[Processor]:
    dialect = connection.dialect
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


def _mark(connection: Connection) -> str:
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


class BulkWriter:
    """Inserts and updates of a fixed list of `columns` of `table` on `connection`.

    `constants` are columns with one value for every row (such as `updated_at`), converted
    once rather than per row. With `skip_conflicts_on` (the columns of a unique index), a row
    that would break it is skipped rather than failing the batch.
    """

    def __init__(
        self,
        connection: Connection,
        table: Table,
        columns: Sequence[str],
        constants: Mapping[str, Any] | None = None,
        *,
        skip_conflicts_on: Sequence[str] = (),
    ) -> None:
        self._connection = connection
        self._converting = [
            (index, process)
            for index, process in enumerate(_bind_processors(connection, table, columns))
            if process is not None
        ]
        fixed = dict(constants or {})
        fixed_processors = _bind_processors(connection, table, list(fixed))
        self._constants = tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(fixed.values(), fixed_processors, strict=True)
        )
        quote = connection.dialect.identifier_preparer.quote
        mark = _mark(connection)
        names = [*columns, *fixed]
        self._insert_sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
            f"VALUES ({', '.join(mark for _ in names)})"
        )
        if skip_conflicts_on:  # SQLite and PostgreSQL spell it the same way
            keys = ", ".join(quote(name) for name in skip_conflicts_on)
            self._insert_sql += f" ON CONFLICT ({keys}) DO NOTHING"
        assignments = ", ".join(f"{quote(name)} = {mark}" for name in names)
        self._update_sql = f"UPDATE {quote(table.name)} SET {assignments} WHERE id = {mark}"

    def _bind(self, values: Sequence[Any]) -> tuple[Any, ...]:
        bound = list(values)
        for index, process in self._converting:
            value = bound[index]
            if value is not None:
                bound[index] = process(value)
        return (*bound, *self._constants)

    def insert(self, rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows given as values in the order of `columns`."""
        bound = [self._bind(row) for row in rows]
        if bound:
            with _cursor(self._connection) as cursor:
                cursor.executemany(self._insert_sql, bound)

    def update(self, rows: Iterable[tuple[int, Sequence[Any]]]) -> None:
        """Update rows given as (id, values in the order of `columns`)."""
        bound = [(*self._bind(values), row_id) for row_id, values in rows]
        if bound:
            with _cursor(self._connection) as cursor:
                cursor.executemany(self._update_sql, bound)


@contextmanager
def _cursor(connection: Connection) -> Iterator[Any]:
    """A driver cursor on the connection's current transaction, closed after use."""
    cursor = connection.connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def rows_where_in(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    keys: Iterable[Any],
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE key IN (keys)`, values converted as SQLAlchemy would."""
    values = list(keys)
    if not values:
        return []
    dialect = connection.dialect
    (key_processor,) = _bind_processors(connection, table, [key])
    if key_processor is not None:
        values = [key_processor(value) for value in values]
    values += values[-1:] * (_padded_length(len(values)) - len(values))
    quote = dialect.identifier_preparer.quote
    mark = _mark(connection)
    sql = (
        f"SELECT {', '.join(quote(name) for name in columns)} FROM {quote(table.name)} "
        f"WHERE {quote(key)} IN ({', '.join(mark for _ in values)})"
    )
    with _cursor(connection) as cursor:
        cursor.execute(sql, tuple(values))
        fetched = cursor.fetchall()
        processors = [  # the driver's type codes pick the conversion, as SQLAlchemy's results do
            table.c[name].type.dialect_impl(dialect).result_processor(dialect, description[1])
            for name, description in zip(columns, cursor.description, strict=True)
        ]
    if not any(processors):
        return [tuple(row) for row in fetched]
    return [
        tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(row, processors, strict=True)
        )
        for row in fetched
    ]


def _padded_length(count: int) -> int:
    """How many keys to send for `count`: the next power of two below 1024, else the next
    multiple of 1024. The last key is repeated to fill (a repeat matches nothing new). So the
    statement's text takes few shapes, and drivers reuse their prepared statements: with one
    text per count, SQLite's statement cache kept up to 128 compiled 5,000-key statements,
    tens of megabytes."""
    if count <= 1024:
        return 1 << (count - 1).bit_length()
    return -(-count // 1024) * 1024


def select_where_in(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    keys: Iterable[Any],
) -> list[dict[str, Any]]:
    """Like `rows_where_in`, each row as a dict by column name."""
    return [
        dict(zip(columns, row, strict=True))
        for row in rows_where_in(connection, table, columns, key, keys)
    ]
