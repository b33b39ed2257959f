"""Secondary indexes: set aside while a bulk import writes, and never left missing.

Keeping an index on a random key (an order's customer, its time) up to date costs a random
B-tree page per row once the index outgrows the page cache: loading 5M orders into SQLite took
235 s with the indexes in place and 30 s without, plus 13 s to build them afterwards. So an
import much larger than its table drops the table's non-unique indexes first and builds them
again at the end. Unique indexes and constraints are never touched: they keep the data right.

Should the process die in between, `restore_missing_indexes` (run by `open_store` for every
command) builds whatever the schema declares and the database lacks, so the store is whole
again the next time anything opens it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Index, Table, inspect

from scheduler.store.db import sqlite_cache_size, write_transaction
from scheduler.store.models import metadata

log = logging.getLogger(__name__)

INDEX_BUILD_CACHE_KIB = 8_192
"""SQLite sorts for CREATE INDEX within its page cache's size: with 8 MiB instead of the usual
64 MiB, building the order indexes of 5M rows took 8.9 s instead of 13.8 s and peaked at 29 MB
instead of 143 MB (it spills sorted runs to a temporary file and merges them)."""


def secondary_indexes(table: Table) -> list[Index]:
    """The table's declared non-unique indexes, which only speed up reads."""
    return sorted((index for index in table.indexes if not index.unique), key=_name)


def _name(index: Index) -> str:
    return str(index.name)


def drop_indexes(connection: Connection, indexes: list[Index]) -> None:
    for index in indexes:
        index.drop(connection, checkfirst=True)


def create_indexes(connection: Connection, indexes: list[Index]) -> None:
    with sqlite_cache_size(connection, INDEX_BUILD_CACHE_KIB):
        for index in indexes:
            index.create(connection, checkfirst=True)


def missing_indexes(connection: Connection) -> list[Index]:
    """Declared indexes the database does not have."""
    inspector = inspect(connection)
    missing: list[Index] = []
    for table in metadata.sorted_tables:
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        missing.extend(index for index in table.indexes if index.name not in present)
    return sorted(missing, key=_name)


def restore_missing_indexes(engine: Engine) -> list[str]:
    """Build every declared index the database lacks (left out by an interrupted bulk import);
    return their names. Costs one catalogue read when nothing is missing."""
    with engine.connect() as connection:
        missing = missing_indexes(connection)
    if not missing:
        return []
    names = [_name(index) for index in missing]
    log.warning("rebuilding indexes an interrupted import left out: %s", ", ".join(names))
    with write_transaction(engine) as connection:
        create_indexes(connection, missing)
    return names


@contextmanager
def indexes_set_aside(engine: Engine, indexes: list[Index]) -> Iterator[None]:
    """Drop `indexes` (each in a committed transaction) and build them again afterwards, also
    when the body fails or is interrupted."""
    if not indexes:
        yield
        return
    with write_transaction(engine) as connection:
        drop_indexes(connection, indexes)
    try:
        yield
    finally:
        with write_transaction(engine) as connection:
            create_indexes(connection, indexes)
