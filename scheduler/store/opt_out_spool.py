"""Opt-outs kept on disk while the store cannot take them, recorded as soon as it can.

A mail app's one-click unsubscribe (RFC 8058) is one POST: nothing says it is ever sent again,
so an opt-out that arrives while the store is down or locked must not depend on a retry.

Rules:
- `add` writes one file per opt-out into the spool folder (a temporary name, flushed and
  fsynced, then renamed, and the folder fsynced): once it returns, the opt-out survives a crash
  or a power cut, and a file is always whole. The folder is made on first use, readable by
  this user alone (it holds the customers' unsubscribe tokens). At most MAX_WAITING files wait:
  beyond that `add` refuses (SpoolFull), so a flood of requests cannot fill the disk.
- `replay` records every waiting opt-out in one write transaction, as if it had been recorded
  when the customer asked (`at`): the customer is opted out then, their open notes suppressed,
  and the audit row says it was kept while the store was unavailable. A later choice wins: an
  opt-out or resubscription recorded after `at` (the customer clicked "changed my mind" once
  the store was back) leaves the customer as they are. A token that names no customer is
  dropped. Only after the transaction commits are the files removed, so a crash between the
  two replays them again, which changes nothing (opting out is idempotent).
- Replays may run at once in several processes (the service and `appreciate web`): each
  removes only the files it read, and a file already gone is fine. In one process they run
  one at a time.
- A file that cannot be read as an opt-out (edited by hand, say) is renamed `*.unreadable`,
  kept for the owner, and logged; it never stops the others.
- Who replays: every delivery run before it sends anything (`scheduler.delivery.deliver`),
  and the unsubscribe page before it reads or writes a customer, and every REPLAY_EVERY while
  `appreciate web` serves.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from scheduler.config.file import Config
from scheduler.output import counted, printable
from scheduler.store.db import sqlite_path, write_transaction
from scheduler.store.models import metadata
from scheduler.store.opt_outs import Source, opt_out

log = logging.getLogger("appreciate.opt_outs")
customers = metadata.tables["customers"]
tokens = metadata.tables["unsubscribe_tokens"]
opt_outs = metadata.tables["opt_outs"]

MAX_WAITING = 10_000
"""Opt-outs that may wait at once (a few hundred bytes each): more is a flood, not customers."""
REPLAY_EVERY = 30.0
"""Seconds between replays while `appreciate web` serves on its own."""
REFUSED_FOR = 10.0
"""Seconds after the store refused a write (down, or locked past its busy timeout) during
which `store_refusing` says so: the unsubscribe page then keeps opt-outs at once instead of
making each click wait the store's busy timeout in turn."""
SPOOLED_SOURCES: tuple[Source, ...] = ("one_click", "page")
LATE_DETAIL = "kept on disk while the store was unavailable, recorded at {recorded}"
"""The audit row's detail of an opt-out recorded by `replay`."""
DEFAULT_NAME = "appreciate.opt-outs"
"""The spool folder's name in systemd's StateDirectory or beside the config."""
DEFAULT_SUFFIX = ".opt-outs"
"""Beside a SQLite store, its file's name and this."""
_SUFFIX = ".json"
_UNREADABLE = ".unreadable"

Replay = Literal["opted_out", "already", "later_choice", "no_customer"]


class SpoolFull(OSError):
    """MAX_WAITING opt-outs already wait: this one is refused (the page answers "try again")."""


@dataclass(frozen=True)
class Waiting:
    """One opt-out on disk: the customer's token, when they asked, and how."""

    path: Path
    token: str
    at: datetime
    source: Source


@dataclass
class Replayed:
    """What a replay did, by outcome (see `Replay`), and the files it could not read."""

    outcomes: dict[Replay, int] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)

    @property
    def recorded(self) -> int:
        """Opt-outs that opted a customer out."""
        return self.outcomes.get("opted_out", 0)


class OptOutSpool:
    """The spool folder `folder` (see the module's rules)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._kept: set[str] = set()
        """Tokens this process kept and no replay here has recorded yet (`holds`)."""
        self._refused_until = 0.0
        """`time.monotonic()` until which the store counts as refusing writes."""
        self._replaying = threading.Lock()
        """One replay at a time in this process: the web's requests (threads) that find opt-outs
        waiting after an outage wait for the first to record them, instead of all queueing
        for the store's write lock to find them recorded."""

    @classmethod
    def of(cls, config: Config, environ: Mapping[str, str] | None = None) -> OptOutSpool:
        """The spool `[web] opt_out_spool` names (relative to the config's folder); unset: a
        folder beside a SQLite store file, else in systemd's StateDirectory (its first), else
        beside the config. Raises ConfigError when the store's URL cannot be read."""
        env = os.environ if environ is None else environ
        named = config.settings.web.opt_out_spool
        if named:
            return cls(config.base_dir / named)
        store = sqlite_path(config.database_url(env))
        if store is not None:
            return cls(store.with_name(f"{store.name}{DEFAULT_SUFFIX}"))
        state = env.get("STATE_DIRECTORY", "").split(":")[0]
        return cls(Path(state or config.base_dir) / DEFAULT_NAME)

    def add(self, token: str, at: datetime, source: Source) -> None:
        """Keep this opt-out until the store takes it. Raises OSError (SpoolFull included) when
        it cannot be kept: the caller must then say it was not recorded."""
        if self.waiting() >= MAX_WAITING:
            raise SpoolFull(f"{MAX_WAITING} opt-outs already wait in {self.folder}")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"token": token, "at": at.isoformat(), "source": source})
        name = f"{at.timestamp():020.6f}-{secrets.token_hex(8)}"
        temporary = self.folder / f".{name}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.folder / f"{name}{_SUFFIX}")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _sync_folder(self.folder)
        self._kept.add(token)

    def holds(self, token: str) -> bool:
        """Whether this process kept an opt-out for `token` that no replay here has recorded
        yet (so the page can say it is done while the store cannot be written)."""
        return token in self._kept

    @property
    def store_refusing(self) -> bool:
        """Whether the store refused a write in the last REFUSED_FOR seconds (`refused`), and
        none has gone through since (`accepted`)."""
        return time.monotonic() < self._refused_until

    def refused(self) -> None:
        """The store just refused a write."""
        self._refused_until = time.monotonic() + REFUSED_FOR

    def accepted(self) -> None:
        """A write just went through."""
        self._refused_until = 0.0

    def waiting(self) -> int:
        """How many opt-outs wait (0 when the folder does not exist)."""
        return sum(1 for _ in self._files())

    def _has_waiting(self) -> bool:
        """Whether any opt-out waits: one look at the folder, cheap enough for every request."""
        return next(self._files(), None) is not None

    def replay(self, engine: Engine, now: datetime, *, wait: bool = True) -> Replayed:
        """Record every waiting opt-out (see the module's rules); `now` is when, for the audit
        row. Raises SQLAlchemyError when the store cannot take them (every file stays), and
        OSError when the folder cannot be read. Nothing waiting costs one look at the folder.
        `wait=False`: do nothing when another replay in this process is under way (it may be
        waiting out the store's busy timeout)."""
        done = Replayed()
        if not self._has_waiting() or not self._replaying.acquire(blocking=wait):
            return done
        try:
            return self._replay(engine, now, done)
        finally:
            self._replaying.release()

    def _replay(self, engine: Engine, now: datetime, done: Replayed) -> Replayed:
        waiting = self._read(done)
        if not waiting:
            return done
        recorded_at = f"{now:%Y-%m-%d %H:%M:%S} UTC"
        try:
            with write_transaction(engine) as connection:
                outcomes = [(entry, _record(connection, entry, recorded_at)) for entry in waiting]
        except SQLAlchemyError:
            self.refused()
            raise
        self.accepted()
        for entry, outcome in outcomes:
            done.outcomes[outcome] = done.outcomes.get(outcome, 0) + 1
            entry.path.unlink(missing_ok=True)
            self._kept.discard(entry.token)
        _sync_folder(self.folder)
        log.info(
            "%s kept while the store was unavailable %s now recorded: %s",
            counted(len(waiting), "opt-out"),
            "is" if len(waiting) == 1 else "are",
            ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in done.outcomes.items()),
        )
        return done

    def _files(self) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
                        yield entry
        except FileNotFoundError:
            return

    def _read(self, done: Replayed) -> list[Waiting]:
        """The waiting opt-outs, oldest first; each unreadable file renamed and logged."""
        waiting: list[Waiting] = []
        for entry in sorted(self._files(), key=lambda entry: entry.name):
            path = Path(entry.path)
            try:
                waiting.append(_parse(path, path.read_bytes()))
            except FileNotFoundError:  # replayed meanwhile by another process
                continue
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
                kept = path.with_name(path.name + _UNREADABLE)
                path.replace(kept)
                done.unreadable.append(kept)
                log.error(
                    "an opt-out file cannot be read (%s); kept as %s: record it by hand",
                    printable(str(error), newlines=False),
                    kept,
                )
        return waiting


def _parse(path: Path, data: bytes) -> Waiting:
    """The opt-out in `data`; ValueError, KeyError, TypeError or RecursionError (JSON nested
    too deep) when it is none."""
    if len(data) > 4_096:
        raise ValueError("too large to be an opt-out")
    fields = json.loads(data)
    source = fields["source"]
    if source not in SPOOLED_SOURCES:
        raise ValueError(f"unknown source {source!r}")
    at = datetime.fromisoformat(fields["at"])
    if at.tzinfo is None:
        raise ValueError("its time has no offset")
    token = fields["token"]
    if not isinstance(token, str) or not token:
        raise ValueError("it holds no token")
    return Waiting(path, token, at, source)


_BY_TOKEN = (
    select(customers.c.id, customers.c.external_id)
    .join(tokens, tokens.c.customer_id == customers.c.id)
    .where(tokens.c.token == bindparam("token"))
)
_LATEST_CHOICE = select(func.max(opt_outs.c.at)).where(opt_outs.c.customer_id == bindparam("who"))


def _record(connection: Connection, entry: Waiting, recorded_at: str) -> Replay:
    """One waiting opt-out, recorded inside the replay's transaction."""
    if "\x00" in entry.token:  # no stored token holds one (PostgreSQL's text cannot)
        return "no_customer"
    row = connection.execute(_BY_TOKEN, {"token": entry.token}).first()
    if row is None:
        return "no_customer"
    latest = connection.execute(_LATEST_CHOICE, {"who": row.id}).scalar()
    if latest is not None and latest > entry.at:
        log.info(
            "customer %s chose again after an opt-out kept while the store was unavailable; "
            "their later choice stands",
            printable(row.external_id, newlines=False),
        )
        return "later_choice"
    detail = LATE_DETAIL.format(recorded=recorded_at)
    choice = opt_out(connection, row.id, entry.at, entry.source, detail)
    if not choice.changed:
        return "already"
    log.info(
        "customer %s opted out (%s, kept while the store was unavailable): %s suppressed",
        printable(row.external_id, newlines=False),
        entry.source.replace("_", "-"),
        counted(choice.notes, "open note"),
    )
    return "opted_out"


def _sync_folder(folder: Path) -> None:
    """Make a rename or removal in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
