"""Streaming a CSV export row by row, with line numbers, whatever its encoding quirks.

UTF-8 with or without a byte-order mark is read, and so is UTF-16 with a byte-order mark or
without one (recognised by the NUL bytes its ASCII characters carry); UTF-32 is refused by
name. Bytes that do not decode do not stop the file: they are kept (as surrogates: UTF-8 files
byte for byte) so the row can be rejected with a clear reason and written to the rejects file.
Blank lines are skipped. A line longer than MAX_LINE characters (a file that is no CSV, a
stream that never ends its line) is never held whole: it is the header's problem (the file is
refused) or its row's (rejected, the reading going on after it). A cell written `'=...` (a
quote before `=`, `+`, `-`, `@`, a tab or a carriage return: how the rejects file keeps
spreadsheets from running a cell as a formula) is read without its quote.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scheduler.config.import_columns import RESERVED_COLUMNS, column_name
from scheduler.errors import ImportRejected
from scheduler.importer.mapping import NO_MAPPING, ColumnMapping
from scheduler.output import FORMULA_STARTS, printable

__all__ = ["RESERVED_COLUMNS", "CsvSource", "SourceRow", "column_name", "unescape_formula"]

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that did not decode, kept as surrogates
_ESCAPED_FORMULA = tuple("'" + start for start in FORMULA_STARTS)
# Python's csv module refuses fields over 128 KiB by default; a notes column can be long.
csv.field_size_limit(16 * 1024 * 1024)
MAX_LINE = 32 * 1024 * 1024
"""Characters a physical line may have (room for two fields at the csv module's limit)."""
_SAMPLE = 4096
_UTF16_BYTES = 0.25
"""UTF-16 without a byte-order mark: at least this share of the sample's bytes at odd (little
endian) or even (big endian) positions are NUL, and almost none at the others."""


def unescape_formula(cell: str) -> str:
    """`'=SUM(A1)` -> `=SUM(A1)`: the quote the rejects file put before a formula start."""
    return cell[1:] if cell.startswith(_ESCAPED_FORMULA) else cell


@dataclass(frozen=True)
class Encoding:
    """How a file's bytes are decoded: the codec, and its name in messages."""

    codec: str
    label: str


UTF8 = Encoding("utf-8-sig", "UTF-8")


def _escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    """Like surrogateescape, for any codec: each byte that does not decode becomes a lone
    surrogate (bytes below 0x80 too, which surrogateescape refuses), so its row is rejected."""
    if not isinstance(error, UnicodeDecodeError):  # pragma: no cover - registered for decoding
        raise error
    bad = error.object[error.start : error.end]
    return "".join(chr(0xDC80 | byte) for byte in bad), error.end


_ESCAPE = "appreciate-undecodable"
codecs.register_error(_ESCAPE, _escape_undecodable)


def detect_encoding(path: Path, head: bytes) -> Encoding:
    """The encoding of a file starting with `head`: UTF-16 by its byte-order mark or its NUL
    bytes, else UTF-8. Raises ImportRejected for UTF-32."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ImportRejected(path, 1, "the file is UTF-32 text; save it as UTF-8 (or UTF-16)")
    if head.startswith(codecs.BOM_UTF16_LE):
        return Encoding("utf-16", "UTF-16 (little-endian)")
    if head.startswith(codecs.BOM_UTF16_BE):
        return Encoding("utf-16", "UTF-16 (big-endian)")
    sample = head[: len(head) // 2 * 2]
    pairs = len(sample) // 2
    if pairs:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd >= pairs * _UTF16_BYTES and even * 8 <= odd:
            return Encoding("utf-16-le", "UTF-16 (little-endian)")
        if even >= pairs * _UTF16_BYTES and odd * 8 <= even:
            return Encoding("utf-16-be", "UTF-16 (big-endian)")
    return UTF8


@dataclass(slots=True)
class SourceRow:
    """One record: its first line in the file, its cells by column, and the cells as read."""

    line: int
    cells: dict[str, str]
    raw: list[str]
    problem: str | None = None


class CsvSource:
    """An open CSV file: its header, then its rows. Use as a context manager.

    `columns` are the header's names as columns, after `mapping`.
    """

    def __init__(self, path: Path, mapping: ColumnMapping = NO_MAPPING) -> None:
        self.path = path
        try:
            self._binary = path.open("rb")
        except OSError as error:
            raise ImportRejected(path, 0, f"cannot open: {error.strerror}") from None
        try:
            self.size = path.stat().st_size
            self.encoding = detect_encoding(path, self._binary.peek(_SAMPLE)[:_SAMPLE])
        except BaseException:
            self._binary.close()
            raise
        errors = "surrogateescape" if self.encoding is UTF8 else _ESCAPE
        self._text = io.TextIOWrapper(
            self._binary, encoding=self.encoding.codec, errors=errors, newline=""
        )
        self._lines = _BoundedLines(self._text)
        self._reader = csv.reader(self._lines)
        try:
            self.header: list[str] = self._read_header()
            own = [column_name(name) for name in self.header]
            self._check_header_text(own)
            self.columns: list[str] = mapping.apply(path, self.header, own)
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

    def _check_header_text(self, names: list[str]) -> None:
        for original, name in zip(self.header, names, strict=True):
            if _UNDECODABLE.search(original) or "\x00" in original:
                raise ImportRejected(self.path, 1, f"the header is not {self.encoding.label} text")
            if not name:
                raise ImportRejected(
                    self.path, 1, f'the column "{_shown(original)}" has no usable name'
                )

    def _check_columns(self) -> None:
        seen: dict[str, str] = {}
        for original, name in zip(self.header, self.columns, strict=True):
            if name in seen:
                raise ImportRejected(
                    self.path,
                    1,
                    f'the columns "{_shown(seen[name])}" and "{_shown(original)}" are the same '
                    "column",
                )
            seen[name] = original

    def rows(self) -> Iterator[SourceRow]:
        """Each record after the header; a malformed one carries a `problem` instead."""
        width = len(self.columns)
        reader = self._reader
        keep = [name for name in self.columns if name not in RESERVED_COLUMNS]
        reserved = [i for i, name in enumerate(self.columns) if name in RESERVED_COLUMNS]
        strip = str.strip
        label = self.encoding.label
        lines = self._lines
        line = reader.line_num + lines.overlong + 1
        while True:
            try:
                for raw in reader:
                    start, line = line, reader.line_num + lines.overlong + 1
                    joined = "".join(raw)
                    if len(raw) == width and _is_clean_text(joined):
                        values = (
                            [value for i, value in enumerate(raw) if i not in reserved]
                            if reserved
                            else raw
                        )
                        if "'" in joined:
                            values = [unescape_formula(value) for value in values]
                        yield SourceRow(
                            start, dict(zip(keep, map(strip, values), strict=True)), raw
                        )
                    elif raw and (len(raw) > 1 or raw[0].strip()):  # else a blank line
                        yield SourceRow(start, {}, raw, _problem(raw, width, label))
                return
            except csv.Error as error:
                yield SourceRow(line, {}, [], f"the line cannot be read as CSV: {error}")
                line = reader.line_num + lines.overlong + 1


class _BoundedLines:
    """The text's physical lines for the csv reader, none held longer than MAX_LINE: the first
    MAX_LINE characters of a longer one raise csv.Error, and the next line asked for starts
    after its end (what is left of it is read a piece at a time and dropped). `overlong`
    counts such lines (the csv reader's line count leaves them out)."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._inside_overlong = False
        self.overlong = 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        if self._inside_overlong:
            self._skip_rest_of_line()
        line = self._text.readline(MAX_LINE)
        if not line:
            raise StopIteration
        if len(line) < MAX_LINE or line.endswith(("\n", "\r")):
            return line
        self._inside_overlong = True
        self.overlong += 1
        raise csv.Error(f"the line is longer than {MAX_LINE:,} characters (is this a CSV file?)")

    def _skip_rest_of_line(self) -> None:
        while True:
            piece = self._text.readline(MAX_LINE)
            if not piece or len(piece) < MAX_LINE or piece.endswith(("\n", "\r")):
                break
        self._inside_overlong = False


def _is_clean_text(joined: str) -> bool:
    """No undecodable bytes and no NUL (ASCII text, the common case, is checked at C speed)."""
    if "\x00" in joined:
        return False
    return joined.isascii() or _UNDECODABLE.search(joined) is None


def _problem(raw: list[str], width: int, encoding: str) -> str:
    """Why a record that is not a clean row of this file cannot be read."""
    if len(raw) != width:
        count = "1 field" if len(raw) == 1 else f"{len(raw)} fields"
        return f"has {count}, the header has {width}"
    if "\x00" in "".join(raw):
        return "contains a NUL character, which no text may hold"
    return f"contains bytes that are not {encoding} text (save the file as UTF-8)"


_SHOWN = 80


def _shown(text: str) -> str:
    """A header name fit for a message: control characters escaped, a long one cut short."""
    cut = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return printable(cut, newlines=False)
