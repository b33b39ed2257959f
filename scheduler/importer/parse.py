"""Reading and validating a CSV file into batches of rows ready for the store.

Only one batch is alive at a time, so memory stays flat however large the file.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.importer.batch import Pending, Rejection
from scheduler.importer.kinds import KINDS, RowContext, RowErrors
from scheduler.importer.mapping import NO_MAPPING, ColumnMapping
from scheduler.importer.source import CsvSource


@dataclass
class ParsedBatch:
    """Rows that parsed, rows rejected on the way, and how far into the file this reaches."""

    pending: list[Pending] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    rows: int = 0
    position: int = 0


def parsed_batches(
    path: Path,
    kind: str,
    context: RowContext,
    batch_size: int,
    mapping: ColumnMapping = NO_MAPPING,
) -> Generator[ParsedBatch, None, None]:
    """Each batch of `batch_size` good rows (the last one may be smaller or empty), with the
    rows rejected since the previous batch."""
    spec = KINDS[kind]
    with CsvSource(path, mapping) as source:
        batch = ParsedBatch()
        for row in source.rows():
            batch.rows += 1
            if row.problem is not None:
                batch.rejected.append(Rejection(row.line, row.raw, row.problem))
                continue
            try:
                candidate = spec.parse(row.cells, context)
            except RowErrors as errors:
                batch.rejected.append(Rejection(row.line, row.raw, str(errors)))
                continue
            batch.pending.append(Pending(row.line, row.raw, candidate))
            if len(batch.pending) >= batch_size:
                batch.position = source.bytes_read
                yield batch
                batch = ParsedBatch()
        batch.position = source.size
        yield batch
