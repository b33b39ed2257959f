"""Importing one CSV file: stream, validate, write in atomic batches, report every reject.

Good rows are imported and bad rows are reported (line, column, reason) and, when asked,
written to a rejects file: the original cells plus a `reason` column, so the file can be
corrected and imported as it is (`scheduler.importer.rejects`). Rows imported with a warning (a
customer's invalid email left out) are reported and written there too. Each batch commits on
its own: a crash or Ctrl-C leaves every earlier batch in and nothing of the current one, and
running the import again finishes the job (rows already in are unchanged).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Index, func, select

from scheduler.errors import ImportRejected
from scheduler.importer.batch import (
    BatchOutcome,
    Pending,
    Rejection,
    WriteContext,
    target_table,
    write_batch,
)
from scheduler.importer.kinds import KINDS, KindSpec, RowContext
from scheduler.importer.mapping import NO_MAPPING, ColumnMapping, MappedColumn
from scheduler.importer.money import AmountFormat, amount_format
from scheduler.importer.parse import ParsedBatch, parsed_batches
from scheduler.importer.rejects import check_rejects_path, rejects_file
from scheduler.importer.source import RESERVED_COLUMNS, CsvSource
from scheduler.store.db import write_transaction
from scheduler.store.indexes import drop_indexes, indexes_set_aside, secondary_indexes

BATCH_SIZE = 5_000
Progress = Callable[[int, int], None]
"""Called after each batch with (bytes read, file size)."""


KEPT_REJECTIONS = 1_000
"""How many rejections a report keeps in memory; the rejects file always gets every one."""

BULK_MIN_ROWS = 100_000
"""An import expected to bring at least this many rows, and at least as many as its table
already holds, sets the table's secondary indexes aside and builds them again at the end."""


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
    warning_count: int = 0
    warnings: list[Rejection] = field(default_factory=list)
    """Rows imported without a cell they had (see `Candidate.warnings`), and why."""
    ignored_columns: list[str] = field(default_factory=list)
    mapping: list[MappedColumn] = field(default_factory=list)
    """The column mapping used (from the config and --map), as applied to this file."""
    encoding: str = "UTF-8"

    @property
    def ok(self) -> bool:
        """No row was rejected (warnings do not count)."""
        return self.rejected_count == 0

    def add(self, outcome: BatchOutcome) -> None:
        self.inserted += outcome.inserted
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged

    def reject(self, rejection: Rejection) -> None:
        self.rejected_count += 1
        if len(self.rejected) < KEPT_REJECTIONS:
            self.rejected.append(rejection)

    def warn(self, warning: Rejection) -> None:
        self.warning_count += 1
        if len(self.warnings) < KEPT_REJECTIONS:
            self.warnings.append(warning)


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
    mapping: ColumnMapping = NO_MAPPING,
    amounts: AmountFormat | None = None,
    protected: dict[str, Path] | None = None,
) -> ImportReport:
    """Import `path` as `kind` (customers, orders, referrals, meetings or reviews) into the store.

    `mapping` names the file's columns (`scheduler.importer.mapping`); `amounts` says how
    amounts are written (default: en_US, no currency sign). A `rejects_path` that is the input
    (by any path) or one of `protected` is refused before anything is read (RejectsPathRefused).

    Raises ImportRejected (or ColumnMappingError), before writing anything, when the file as a
    whole cannot be imported (unreadable, no header, a required column missing, a mapping
    that does not fit it). A KeyboardInterrupt between or inside batches propagates after the
    current batch is rolled back, leaving any earlier rejects file as it was. A dry run does all
    the work in one transaction that it rolls back, so its counts are exactly a real run's (on
    SQLite it holds the write lock meanwhile); it writes the rejects file too.

    A bulk import (see BULK_MIN_ROWS) writes without the table's secondary indexes and builds
    them at the end, also after a failure or Ctrl-C (`scheduler.store.indexes`). A dry run on
    SQLite does so inside its transaction, and its rollback brings them back; a dry run on
    PostgreSQL keeps them, as dropping one would lock readers out for the whole run.
    """
    if rejects_path is not None:
        check_rejects_path(rejects_path, {"the file being imported": path, **(protected or {})})
    spec = KINDS[kind]
    context = WriteContext(now=now, business_zone=business_zone, source=path.name)
    report = ImportReport(kind=kind, path=path, dry_run=dry_run)
    rows = RowContext(now.astimezone(business_zone).date(), amounts or amount_format())
    with CsvSource(path, mapping) as source:
        header = source.header
        size = source.size
        report.ignored_columns = _check_header(spec, source)
        report.encoding = source.encoding.label
    report.mapping = list(mapping.entries)
    with (
        _long_lived_objects_frozen(),
        closing(parsed_batches(path, kind, rows, batch_size, mapping)) as batches,
    ):
        first = next(batches)
        set_aside = _indexes_to_set_aside(engine, kind, first, size, dry_run)
        with (
            rejects_file(rejects_path, header) as rejects,
            _batch_writer(engine, kind, context, dry_run, set_aside) as write,
        ):
            for batch in itertools.chain([first], batches):
                outcome = write(batch.pending) if batch.pending else BatchOutcome()
                report.rows += batch.rows
                report.add(outcome)
                for rejection, warned in _in_line_order(batch, outcome):
                    if warned:
                        report.warn(rejection)
                        if rejects:
                            rejects.warned(rejection)
                    else:
                        report.reject(rejection)
                        if rejects:
                            rejects.rejected(rejection)
                if progress:
                    progress(batch.position, size)
    return report


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before the import out of the garbage collector's passes.

    An import allocates millions of short-lived objects, which triggers full collections;
    each would walk every object of the loaded libraries again. Frozen, they are skipped:
    imports run about a third faster. Nothing is leaked: they are unfrozen afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _indexes_to_set_aside(
    engine: Engine, kind: str, first: ParsedBatch, size: int, dry_run: bool
) -> list[Index]:
    """The secondary indexes to drop while importing, judged from the first batch: none unless
    the file holds at least BULK_MIN_ROWS rows and at least as many as the table."""
    if first.position <= 0 or (dry_run and engine.dialect.name != "sqlite"):
        return []
    expected_rows = size * first.rows // first.position
    if expected_rows < BULK_MIN_ROWS:
        return []
    table = target_table(kind)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(table)).scalar_one()
    return secondary_indexes(table) if expected_rows >= stored else []


def _in_line_order(batch: ParsedBatch, outcome: BatchOutcome) -> list[tuple[Rejection, bool]]:
    """The batch's rejections and warnings (flagged True) by line."""
    found = [(rejection, False) for rejection in (*batch.rejected, *outcome.rejected)]
    found += [(warning, True) for warning in outcome.warned]
    found.sort(key=_by_line)
    return found


def _by_line(entry: tuple[Rejection, bool]) -> int:
    return entry[0].line


@contextmanager
def _batch_writer(
    engine: Engine, kind: str, context: WriteContext, dry_run: bool, set_aside: list[Index]
) -> Iterator[Callable[[list[Pending]], BatchOutcome]]:
    """A function writing one batch: each in its own transaction, or for a dry run all in one
    transaction that is rolled back at the end. `set_aside` indexes are dropped meanwhile."""
    if not dry_run:

        def commit_each(batch: list[Pending]) -> BatchOutcome:
            with write_transaction(engine, references_checked=True) as connection:
                return write_batch(connection, kind, batch, context)

        with indexes_set_aside(engine, set_aside):
            yield commit_each
        return
    with write_transaction(engine, references_checked=True) as connection:
        drop_indexes(connection, set_aside)
        yield lambda batch: write_batch(connection, kind, batch, context)
        connection.rollback()


def _check_header(spec: KindSpec, source: CsvSource) -> list[str]:
    """Refuse a file missing required columns; return the columns that will be ignored."""
    present = set(source.columns)
    missing = [column for column in spec.required if column not in present]
    if missing:
        names = ", ".join(missing)
        hint = (
            f'; map the file\'s own names with --map "FILE COLUMN={missing[0]}" or '
            f"[import.{spec.name}] columns in the config"
        )
        if len(source.header) == 1 and (separator := _other_separator(source.header[0])):
            hint = f"; the header is one column holding {separator}: save the file as CSV"
        raise ImportRejected(
            source.path,
            1,
            f"missing required column(s) {names}; {spec.name} files have the columns "
            f"{', '.join(spec.known)}{hint}",
        )
    if spec.extra_columns_are_attributes:
        return []
    return [
        original
        for original, column in zip(source.header, source.columns, strict=True)
        if column not in spec.known and column not in RESERVED_COLUMNS
    ]


def _other_separator(header: str) -> str | None:
    """The separator a one-column header holds, if it is another than the comma."""
    for separator, name in (("\t", "tabs"), (";", "semicolons")):
        if separator in header:
            return name
    return None
