"""Streaming a CSV export row by row, with line numbers, whatever its encoding quirks.

UTF-8 with or without a byte-order mark is read. Bytes that are not UTF-8 do not stop the
file: they are kept (surrogate-escaped) so the row can be rejected with a clear reason and
written back to the rejects file byte for byte. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scheduler.errors import ImportRejected

RESERVED_COLUMNS = frozenset({"reason"})
_NOT_WORD = re.compile(r"[^0-9a-z]+")
# Python's csv module refuses fields over 128 KiB by default; a notes column can be long.
csv.field_size_limit(16 * 1024 * 1024)


def column_name(header: str) -> str:
    """A header as a column name: lower case, runs of other characters as one underscore.

    `"Pet Name"` -> `pet_name`, `"E-mail"` -> `e_mail`; templates can use it as an attribute.
    """
    return _NOT_WORD.sub("_", header.strip().lower()).strip("_")


@dataclass(frozen=True)
class SourceRow:
    """One record: its first line in the file, its cells by column, and the cells as read."""

    line: int
    cells: dict[str, str]
    raw: list[str]
    problem: str | None = None


class CsvSource:
    """An open CSV file: its header, then its rows. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._binary = path.open("rb")
        except OSError as error:
            raise ImportRejected(path, 0, f"cannot open: {error.strerror}") from None
        self.size = path.stat().st_size
        self._text = io.TextIOWrapper(
            self._binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        self._reader = csv.reader(self._text)
        self.header: list[str] = self._read_header()
        self.columns: list[str] = [column_name(name) for name in self.header]
        self._check_columns()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._text.close()

    @property
    def bytes_read(self) -> int:
        """How far into the file reading has got (for progress bars)."""
        return self._binary.tell() if not self._binary.closed else self.size

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader)
        except StopIteration:
            raise ImportRejected(
                self.path, 1, "the file is empty (expected a header line)"
            ) from None
        except csv.Error as error:
            raise ImportRejected(self.path, 1, f"cannot read the header: {error}") from None
        if not any(cell.strip() for cell in header):
            raise ImportRejected(self.path, 1, "the first line must be a header naming the columns")
        return header

    def _check_columns(self) -> None:
        seen: dict[str, str] = {}
        for original, name in zip(self.header, self.columns, strict=True):
            if _has_undecodable(original):
                raise ImportRejected(self.path, 1, "the header is not UTF-8 text")
            if not name:
                raise ImportRejected(self.path, 1, f'the column "{original}" has no usable name')
            if name in seen:
                raise ImportRejected(
                    self.path, 1, f'the columns "{seen[name]}" and "{original}" are the same column'
                )
            seen[name] = original

    def rows(self) -> Iterator[SourceRow]:
        """Each record after the header; a malformed one carries a `problem` instead."""
        width = len(self.columns)
        line = self._reader.line_num + 1
        while True:
            try:
                raw = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield SourceRow(line, {}, [], f"the line cannot be read as CSV: {error}")
                line = self._reader.line_num + 1
                continue
            start, line = line, self._reader.line_num + 1
            if not raw or (len(raw) == 1 and not raw[0].strip()):
                continue
            if len(raw) != width:
                yield SourceRow(start, {}, raw, f"has {len(raw)} fields, the header has {width}")
                continue
            if _has_undecodable("".join(raw)):
                yield SourceRow(
                    start,
                    {},
                    raw,
                    "contains bytes that are not UTF-8 text (save the file as UTF-8)",
                )
                continue
            cells = {
                name: value.strip()
                for name, value in zip(self.columns, raw, strict=True)
                if name not in RESERVED_COLUMNS
            }
            yield SourceRow(start, cells, raw)


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _has_undecodable(text: str) -> bool:
    """True when `text` holds bytes that were not UTF-8 (kept as lone surrogates)."""
    return _UNDECODABLE.search(text) is not None
