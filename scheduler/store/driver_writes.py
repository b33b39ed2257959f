"""A write transaction of ready SQL handed straight to the database driver, for the send loop's
per-note transaction: on SQLite, SQLAlchemy's own work per statement and per transaction
cost more than the statements themselves.

Rules:
- `driver_writes(connection)` is one transaction. On SQLite: `BEGIN IMMEDIATE` (the write lock
  up front, as `db.write_transaction` takes it), the statements, `COMMIT`, each handed to the
  sqlite3 connection beneath `connection`, which must be in no transaction (SQLAlchemy never
  learns of this one, and the connection is left as it was found). On another database it is
  `connection.begin()` and the statements go through `connection.exec_driver_sql`.
- Statements are SQL for the driver with its parameters, as `Connection.exec_driver_sql` takes
  them: a list of parameter sets runs the statement for each (executemany), anything else is
  one parameter set. The result can be iterated for rows and has `rowcount`.
- Any error rolls the transaction back. A driver error is raised as SQLAlchemy would raise it
  (`sqlalchemy.exc.OperationalError` for a store locked longer than its busy timeout), so the
  callers' handling does not depend on which way the SQL went.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from scheduler.errors import StoreError


class DriverResult(Protocol):
    """What a statement gives back: its rows, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


class DriverSQL(Protocol):
    """What runs ready SQL: a SQLAlchemy `Connection`, or the SQLite driver's own (see the
    module's rules)."""

    @property
    def dialect(self) -> Dialect: ...

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> DriverResult: ...


class _SqliteDriver:
    """`exec_driver_sql` on the sqlite3 connection itself, errors raised as SQLAlchemy's."""

    def __init__(self, dialect: Dialect, driver: sqlite3.Connection) -> None:
        self._dialect = dialect
        self._driver = driver

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> sqlite3.Cursor:
        try:
            if isinstance(parameters, list):
                return self._driver.executemany(statement, parameters)
            return self._driver.execute(statement, () if parameters is None else parameters)
        except sqlite3.Error as error:
            raise DBAPIError.instance(
                statement, parameters, error, sqlite3.Error, dialect=self._dialect
            ) from error


def driver_writes(connection: Connection) -> AbstractContextManager[DriverSQL]:
    """One write transaction on `connection` whose SQL goes straight to the driver (see the
    module's rules)."""
    if connection.dialect.name != "sqlite":
        return _begun(connection)
    if connection.in_transaction():
        raise StoreError("driver_writes needs a connection with no transaction open")
    driver = connection.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):  # pragma: no cover - pysqlite is the driver
        raise StoreError("the SQLite connection is closed or not pysqlite's")
    return _SqliteTransaction(_SqliteDriver(connection.dialect, driver), driver)


@contextmanager
def _begun(connection: Connection) -> Iterator[DriverSQL]:
    with connection.begin():
        yield connection


class _SqliteTransaction:
    """BEGIN IMMEDIATE on entry; COMMIT on a clean exit, else (or when COMMIT fails) ROLLBACK.
    A class rather than a generator: it runs for every note sent."""

    def __init__(self, writes: _SqliteDriver, driver: sqlite3.Connection) -> None:
        self._writes = writes
        self._driver = driver

    def __enter__(self) -> DriverSQL:
        self._writes.exec_driver_sql("BEGIN IMMEDIATE")
        return self._writes

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                self._writes.exec_driver_sql("COMMIT")
            except BaseException:
                self._roll_back()
                raise
        else:
            self._roll_back()

    def _roll_back(self) -> None:
        if self._driver.in_transaction:
            self._driver.rollback()
