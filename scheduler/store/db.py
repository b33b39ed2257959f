"""Engines for the store: SQLite tuned for a daemon, PostgreSQL for several instances.

SQLite connections use WAL (readers never block the writer), a busy timeout, foreign keys and
`synchronous=NORMAL`. pysqlite's own transaction handling is turned off so that SQLAlchemy's
`BEGIN` is the real one; a connection with the execution option `sqlite_begin="IMMEDIATE"`
takes the write lock up front (no lock-upgrade deadlocks between writers).

A SQLite store file that does not exist yet is created readable by its owner only (0600), as
it holds customer data: SQLite then gives its `-wal` and `-shm` files the same mode.
A lock waited for longer than the busy timeout raises OperationalError on both databases
(SQLite's busy timeout; PostgreSQL's `lock_timeout`, set on each connection), so a store that
another writer holds is reported, never waited for without end (the delivery's database calls
run on the event loop).

A SQLite store file deleted, moved away or replaced (a backup copied over it) while an engine
has it open is noticed at the next transaction: every transaction then fails with an
OperationalError saying so, instead of writing on into a file nobody will see again (SQLite
keeps writing to the unlinked file, and mixing the old file's `-wal` with the new file could
corrupt it). Restarting opens the file now at the path. Without this, what a service did after
a restore was lost at its next start, and notes it sent could go again.

A PostgreSQL connection that is not made within CONNECT_TIMEOUT seconds (libpq's
`connect_timeout`: a host that accepts and never answers, a firewall that drops the packets)
fails with OperationalError, which every command reports as "the store could not be used".
A `connect_timeout` in the URL's query (`postgresql://host/db?connect_timeout=30`), or libpq's
PGCONNECT_TIMEOUT variable, wins over that default; libpq counts one under 2 as 2, and 0 as
none (psycopg then stops after its own default).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from scheduler.errors import StoreError

BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for a lock another writer holds before it fails."""
CONNECT_TIMEOUT = 10
"""Seconds a new PostgreSQL connection may take (each address tried, when a name has several),
unless the URL or PGCONNECT_TIMEOUT says otherwise: long enough for a busy server or a slow
link, short enough that an unreachable store is reported rather than waited for."""
CACHE_KIB = 65_536
"""SQLite's page cache per connection: 64 MiB keeps index pages cached during imports."""


def create_store_engine(
    url: str, *, busy_timeout: float = BUSY_TIMEOUT, connect_timeout: int = CONNECT_TIMEOUT
) -> Engine:
    """An engine for `url`, configured for appreciate; a lock is waited for at most
    `busy_timeout` seconds, a PostgreSQL connection `connect_timeout` seconds unless the URL
    or the environment sets libpq's own (see the module's rules). Raises StoreError for an
    unusable URL."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                _create_private(path)
            engine = create_engine(parsed, connect_args={"timeout": busy_timeout})
            _tune_sqlite(engine, busy_timeout)
            if path is not None:
                _watch_file(engine, path)
            return engine
        if backend == "postgresql":
            given = "connect_timeout" in parsed.query or os.environ.get("PGCONNECT_TIMEOUT")
            connect_args = {} if given else {"connect_timeout": connect_timeout}
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
            _tune_postgresql(engine, busy_timeout)
            return engine
    except NoSuchModuleError:
        raise StoreError(f"no driver for {display_url(url)}") from None
    except ModuleNotFoundError as error:
        raise StoreError(
            f"the database driver {error.name} is not installed; for PostgreSQL run "
            "`pip install 'appreciate[postgres]'`"
        ) from None
    except ArgumentError:
        raise StoreError(f'"{display_url(url)}" is not a database URL') from None
    raise StoreError(f"{display_url(url)}: appreciate supports SQLite and PostgreSQL only")


STORE_MODE = 0o600


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename: SQLite's own syntax, left to it
        return None
    return Path(database)


def _create_private(path: Path) -> None:
    """Create the store file `path`, empty and 0600, unless it exists (an empty file is an
    empty SQLite database)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE)
    except FileExistsError:
        return
    except OSError as error:
        raise StoreError(f"cannot create the store {path}: {error.strerror}") from None
    os.close(descriptor)


def conflict_insert(dialect: str) -> Callable[[Table], Any]:
    """The dialect's `insert` construct, which has ON CONFLICT (`on_conflict_do_nothing`,
    `on_conflict_do_update`). Imported when first asked for: a dialect's module takes tens of
    milliseconds to load, and a SQLite store never needs PostgreSQL's."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert  # noqa: PLC0415

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert


def display_url(url: str) -> str:
    """The URL with any password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


@contextmanager
def sqlite_cache_size(connection: Connection, kib: int) -> Iterator[None]:
    """Use a page cache of `kib` KiB on this SQLite connection meanwhile (PostgreSQL: no-op)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{kib}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size=-{CACHE_KIB}")


@contextmanager
def write_transaction(engine: Engine, *, references_checked: bool = False) -> Iterator[Connection]:
    """A transaction that intends to write: on SQLite it takes the write lock at BEGIN.

    `references_checked`: the caller reads every customer it references inside this
    transaction before writing. On SQLite, whose write lock then keeps anyone from deleting
    them meanwhile, the per-row foreign-key lookups are skipped: they cost a random page of
    the customers table each, about half of what inserting an order costs.
    """
    with engine.connect() as plain:
        connection = plain
        skip_checks = references_checked and engine.dialect.name == "sqlite"
        if engine.dialect.name == "sqlite":
            connection = plain.execution_options(sqlite_begin="IMMEDIATE")
        if skip_checks:  # outside any transaction, where SQLite honours it
            _sqlite_foreign_keys(plain, on=False)
        try:
            with connection.begin():
                yield connection
        finally:
            if skip_checks:
                _sqlite_foreign_keys(plain, on=True)


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Set the pragma on the driver's connection directly: through SQLAlchemy, the statement
    would open a transaction first, and SQLite ignores this pragma inside one."""
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - only a closed connection has none
        raise StoreError("the database connection was closed")
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _tune_postgresql(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a session setting, outside any transaction
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {_milliseconds(busy_timeout)}")
        cursor.close()
        dbapi_connection.autocommit = autocommit


def _tune_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_milliseconds(busy_timeout)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


class StoreFileChanged(sqlite3.OperationalError):
    """The store file at the engine's path is no longer the one it opened."""


def _file_identity(path: Path) -> tuple[int, int] | None:
    """The file at `path` (device and inode), or None when there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _watch_file(engine: Engine, path: Path) -> None:
    """Fail every transaction, and every new connection (which would create an empty file in
    place of a deleted one), once the file at `path` is not the one the engine opened (see the
    module's rules): one stat a transaction, about a microsecond."""
    opened = _file_identity(path)

    def changed() -> StoreFileChanged | None:
        now = _file_identity(path)
        if now == opened:
            return None
        what = "deleted or moved away" if now is None else "replaced by another file"
        return StoreFileChanged(
            f"the store {path} was {what} while appreciate had it open; nothing is read or "
            "written until appreciate is restarted (then it opens the file now there)"
        )

    @event.listens_for(engine, "do_connect")
    def _connect_same_file(*_: Any) -> None:
        if (problem := changed()) is not None:
            raise problem  # SQLAlchemy raises it as its OperationalError

    @event.listens_for(engine, "begin", insert=True)
    def _begin_same_file(connection: Connection) -> None:
        if (problem := changed()) is not None:
            raise OperationalError("BEGIN", None, problem)


def store_failure(error: BaseException) -> str | None:
    """What went wrong, in one line, when `error` is the database's (unreachable, refused,
    locked...), else None. The driver's own message, without the statement and its values."""
    if not isinstance(error, SQLAlchemyError):
        return None
    cause = error.orig if isinstance(error, DBAPIError) else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
