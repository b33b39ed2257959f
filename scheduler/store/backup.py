"""A consistent copy of a SQLite store, taken while the service runs (`appreciate db backup`).

Rules:
- The copy is SQLite's online backup of one snapshot: every committed transaction, including
  those still in the `-wal` file (which a plain `cp appreciate.db` misses), and nothing of one
  under way. Other processes go on reading and writing meanwhile.
- It is one self-contained file (rollback journal, no `-wal` beside it), readable by its owner
  only (0600), checked before it is kept (`PRAGMA quick_check`, and it must hold appreciate's
  schema), fsynced, and then renamed into place: the destination is a whole, working store or
  nothing.
- An existing destination (the store itself included) is never overwritten.
- PostgreSQL has its own tools: `pg_dump` is suggested instead.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from scheduler.errors import StoreError
from scheduler.store.db import STORE_MODE, display_url, sqlite_path


@dataclass(frozen=True)
class Backup:
    """What `back_up` wrote: the file, its size, and what it holds."""

    path: Path
    size: int
    customers: int
    notes: int


def back_up(url: str, destination: Path) -> Backup:
    """Copy the store at `url` to `destination` (see the module's rules). Raises StoreError."""
    store = sqlite_path(url)
    if store is None:
        raise StoreError(
            f"{display_url(url)} is not a SQLite file: back up PostgreSQL with its own tools, "
            "e.g. `pg_dump --format=custom --file=appreciate.dump DATABASE`"
        )
    if not store.is_file():
        raise StoreError(f"there is no store at {store} to back up")
    if str(destination) in ("", "-"):
        raise StoreError(
            "name the new file to write (a backup is never written to standard output)"
        )
    destination = destination.absolute()
    if destination.exists() or destination.is_symlink():
        raise StoreError(f"{destination} already exists; name a new file (nothing was written)")
    if not destination.parent.is_dir():
        raise StoreError(f"the folder {destination.parent} does not exist")
    temporary = destination.with_name(f".{destination.name}.partial")
    try:
        _copy(store, temporary)
        customers, notes = _check(temporary)
        _sync(temporary)
        os.link(temporary, destination)  # fails, rather than overwrites, if it appeared meanwhile
        _sync(destination.parent)
    except (sqlite3.Error, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise StoreError(f"cannot back up {store} to {destination}: {reason}") from None
    finally:
        with suppress(OSError):  # a name too long once prefixed and suffixed: already said
            temporary.unlink(missing_ok=True)
    return Backup(destination, destination.stat().st_size, customers, notes)


def _copy(store: Path, temporary: Path) -> None:
    temporary.unlink(missing_ok=True)  # left by a backup that was killed
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE)
    os.close(descriptor)
    source = sqlite3.connect(_read_only(store), uri=True, timeout=30)
    with closing(source), closing(sqlite3.connect(temporary)) as copy:
        source.backup(copy)  # one step: one snapshot, whatever writes meanwhile
        copy.execute("PRAGMA journal_mode=DELETE")


def _check(copy: Path) -> tuple[int, int]:
    """The copy's customers and notes; raises sqlite3.Error when it is damaged or holds no
    appreciate store."""
    with closing(sqlite3.connect(_read_only(copy), uri=True)) as connection:
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the copy failed SQLite's check: {verdict}")
        try:
            customers = connection.execute("SELECT count(*) FROM customers").fetchone()[0]
            notes = connection.execute("SELECT count(*) FROM touches").fetchone()[0]
        except sqlite3.OperationalError:
            raise sqlite3.DatabaseError("it holds no appreciate store") from None
    return int(customers), int(notes)


def _read_only(path: Path) -> str:
    """SQLite's URI opening `path` read-only: `#`, `?` and `%` in it are quoted, so they stay
    part of the name (else SQLite opens, or creates, another file)."""
    return f"file:{quote(str(path))}?mode=ro"


def _sync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
