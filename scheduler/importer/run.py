"""Importing one CSV file: stream, validate, write in atomic batches, report every reject.

Good rows are imported and bad rows are reported (line, column, reason) and, when asked,
written to a rejects file: the original cells plus a `reason` column, so the file can be
corrected and imported as it is. Each batch commits on its own: a crash or Ctrl-C leaves every
earlier batch in and nothing of the current one, and running the import again finishes the
job (rows already in are unchanged).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from scheduler.errors import ImportRejected
from scheduler.importer.batch import BatchOutcome, Pending, Rejection, WriteContext, write_batch
from scheduler.importer.kinds import KINDS, KindSpec, RowErrors
from scheduler.importer.source import RESERVED_COLUMNS, CsvSource
from scheduler.store.db import write_transaction

BATCH_SIZE = 5_000
Progress = Callable[[int, int], None]
"""Called after each batch with (bytes read, file size)."""


KEPT_REJECTIONS = 1_000
"""How many rejections a report keeps in memory; the rejects file always gets every one."""


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do)."""

    kind: str
    path: Path
    dry_run: bool
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_count: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected_count == 0

    def add(self, outcome: BatchOutcome) -> None:
        self.inserted += outcome.inserted
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged

    def reject(self, rejection: Rejection) -> None:
        self.rejected_count += 1
        if len(self.rejected) < KEPT_REJECTIONS:
            self.rejected.append(rejection)


def import_csv(
    engine: Engine,
    kind: str,
    path: Path,
    *,
    now: datetime,
    business_zone: ZoneInfo,
    rejects_path: Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import `path` as `kind` (customers, orders, referrals or meetings) into the store.

    Raises ImportRejected, before writing anything, when the file as a whole cannot be
    imported (unreadable, no header, a required column missing). A KeyboardInterrupt between
    or inside batches propagates after the current batch is rolled back. A dry run does all
    the work in one transaction that it rolls back, so its counts are exactly a real run's (on
    SQLite it holds the write lock meanwhile).
    """
    spec = KINDS[kind]
    context = WriteContext(now=now, business_zone=business_zone)
    report = ImportReport(kind=kind, path=path, dry_run=dry_run)
    today = now.astimezone(business_zone).date()
    with CsvSource(path) as source:
        report.ignored_columns = _check_header(spec, source)
        with (
            _rejects_writer(rejects_path, source.header) as write_rejection,
            _batch_writer(engine, kind, context, dry_run) as write,
            _Pipeline(write) as pipeline,
        ):

            def settle(outcome: BatchOutcome, held: list[Rejection], position: int) -> None:
                report.add(outcome)
                for rejection in sorted([*held, *outcome.rejected], key=_by_line):
                    report.reject(rejection)
                    write_rejection(rejection)
                if progress:
                    progress(position, source.size)

            batch: list[Pending] = []
            held: list[Rejection] = []
            for row in source.rows():
                report.rows += 1
                if row.problem is not None:
                    held.append(Rejection(row.line, row.raw, row.problem))
                    continue
                try:
                    batch.append(Pending(row.line, row.raw, spec.parse(row.cells, today)))
                except RowErrors as errors:
                    held.append(Rejection(row.line, row.raw, str(errors)))
                    continue
                if len(batch) >= batch_size:
                    pipeline.submit(batch, held, source.bytes_read, settle)
                    batch, held = [], []
            pipeline.submit(batch, held, source.bytes_read, settle)
            pipeline.drain()
    return report


Settle = Callable[[BatchOutcome, list[Rejection], int], None]


class _Pipeline:
    """Writes one batch on a background thread while the next one is read and parsed.

    At most one batch is in flight, so memory stays flat, and outcomes are settled in file
    order on the caller's thread. The database drivers release the GIL while the database
    works, so parsing and writing overlap on two cores. Leaving the block early (an error,
    Ctrl-C) waits for the batch in flight to finish its transaction, so only whole batches
    are ever stored.
    """

    def __init__(self, write: Callable[[list[Pending]], BatchOutcome]) -> None:
        self._write = write
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
        self._in_flight: tuple[Future[BatchOutcome], list[Rejection], int, Settle] | None = None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._executor.shutdown(wait=True)

    def submit(
        self, batch: list[Pending], held: list[Rejection], position: int, settle: Settle
    ) -> None:
        """Settle the batch in flight, then start writing `batch` (may be empty)."""
        self.drain()
        future: Future[BatchOutcome]
        if batch:
            future = self._executor.submit(self._write, batch)
        else:
            future = Future()
            future.set_result(BatchOutcome())
        self._in_flight = (future, held, position, settle)

    def drain(self) -> None:
        """Wait for the batch in flight and settle it (re-raising what its write raised)."""
        if self._in_flight is None:
            return
        future, held, position, settle = self._in_flight
        self._in_flight = None
        settle(future.result(), held, position)


def _by_line(rejection: Rejection) -> int:
    return rejection.line


@contextmanager
def _batch_writer(
    engine: Engine, kind: str, context: WriteContext, dry_run: bool
) -> Iterator[Callable[[list[Pending]], BatchOutcome]]:
    """A function writing one batch: each in its own transaction, or for a dry run all in one
    transaction that is rolled back at the end."""
    if not dry_run:

        def commit_each(batch: list[Pending]) -> BatchOutcome:
            with write_transaction(engine) as connection:
                return write_batch(connection, kind, batch, context)

        yield commit_each
        return
    with write_transaction(engine) as connection:
        yield lambda batch: write_batch(connection, kind, batch, context)
        connection.rollback()


def _check_header(spec: KindSpec, source: CsvSource) -> list[str]:
    """Refuse a file missing required columns; return the columns that will be ignored."""
    present = set(source.columns)
    missing = [column for column in spec.required if column not in present]
    if missing:
        names = ", ".join(missing)
        raise ImportRejected(
            source.path,
            1,
            f"missing required column(s) {names}; {spec.name} files have the columns "
            f"{', '.join(spec.known)}",
        )
    if spec.extra_columns_are_attributes:
        return []
    return [
        original
        for original, column in zip(source.header, source.columns, strict=True)
        if column not in spec.known and column not in RESERVED_COLUMNS
    ]


@contextmanager
def _rejects_writer(path: Path | None, header: list[str]) -> Iterator[Callable[[Rejection], None]]:
    """A function that appends a rejection to the rejects file (or does nothing)."""
    if path is None:
        yield lambda _rejection: None
        return
    handle: IO[str]
    with path.open("w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle)
        columns = [name for name in header if name.strip().lower() not in RESERVED_COLUMNS]
        writer.writerow([*columns, "reason"])
        keep = [i for i, name in enumerate(header) if name.strip().lower() not in RESERVED_COLUMNS]

        def write(rejection: Rejection) -> None:
            raw = rejection.raw
            cells = [raw[i] if i < len(raw) else "" for i in keep]
            reason = f"line {rejection.line}: {rejection.reason}"
            if len(raw) > len(header):  # keep what does not fit a column, in the reason
                reason += " (extra cells: " + " | ".join(raw[len(header) :]) + ")"
            writer.writerow([*cells, reason])

        yield write
