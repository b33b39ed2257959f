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
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept as surrogates
_NOT_WORD = re.compile(r"[^0-9a-z]+")
# Python's csv module refuses fields over 128 KiB by default; a notes column can be long.
csv.field_size_limit(16 * 1024 * 1024)


def column_name(header: str) -> str:
    """A header as a column name: lower case, runs of other characters as one underscore.

    `"Pet Name"` -> `pet_name`, `"E-mail"` -> `e_mail`; templates can use it as an attribute.
    """
    return _NOT_WORD.sub("_", header.strip().lower()).strip("_")


@dataclass(slots=True)
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
        try:
            self.header: list[str] = self._read_header()
            self.columns: list[str] = [column_name(name) for name in self.header]
            self._check_columns()
        except BaseException:
            self.close()
            raise

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
            if _UNDECODABLE.search(original):
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
        reader = self._reader
        keep = [name for name in self.columns if name not in RESERVED_COLUMNS]
        reserved = [i for i, name in enumerate(self.columns) if name in RESERVED_COLUMNS]
        strip = str.strip
        line = reader.line_num + 1
        while True:
            try:
                for raw in reader:
                    start, line = line, reader.line_num + 1
                    if len(raw) == width and _is_clean_text("".join(raw)):
                        values = (
                            [value for i, value in enumerate(raw) if i not in reserved]
                            if reserved
                            else raw
                        )
                        yield SourceRow(
                            start, dict(zip(keep, map(strip, values), strict=True)), raw
                        )
                    elif raw and (len(raw) > 1 or raw[0].strip()):  # else a blank line
                        yield SourceRow(start, {}, raw, _problem(raw, width))
                return
            except csv.Error as error:
                yield SourceRow(line, {}, [], f"the line cannot be read as CSV: {error}")
                line = reader.line_num + 1


def _is_clean_text(joined: str) -> bool:
    """No undecodable bytes and no NUL (ASCII text, the common case, is checked at C speed)."""
    if "\x00" in joined:
        return False
    return joined.isascii() or _UNDECODABLE.search(joined) is None


def _problem(raw: list[str], width: int) -> str:
    """Why a record that is not a clean row of this file cannot be read."""
    if len(raw) != width:
        count = "1 field" if len(raw) == 1 else f"{len(raw)} fields"
        return f"has {count}, the header has {width}"
    if "\x00" in "".join(raw):
        return "contains a NUL character, which no text may hold"
    return "contains bytes that are not UTF-8 text (save the file as UTF-8)"
