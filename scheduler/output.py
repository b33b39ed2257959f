"""Printing results: a readable table by default, JSON or CSV where people script it.

Rich is loaded only when a table is drawn: a command that prints none starts faster."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from scheduler.plain_table import PlainTable

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters a terminal acts on instead of showing (escape sequences, carriage returns, bidi
overrides that reorder what follows); tab and newline are kept."""


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` safe to print on a terminal: each control character (an escape sequence's ESC,
    a carriage return, a bidi override...) shown as a visible `\\x1b`-style escape instead of
    acted on. With `newlines=False` a line break is escaped too (one table cell, one line)."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(_escaped, text)


_CONTROL_OR_NEWLINE = re.compile(_CONTROL.pattern[:-1] + r"\n]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 call`, `2,000 calls`: the count with its thousands and the noun as many as it is
    (`plural` when adding an s will not do)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def plain(value: Any) -> Any:
    """A value as JSON has it: dates in ISO 8601, money as a string with its cents."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    decimal = sys.modules.get("decimal")  # not loaded: no value can be a Decimal
    if decimal is not None and isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def to_json(value: Any) -> str:
    """JSON, with the characters a terminal would act on written as `\\uXXXX` escapes (the
    same text to a JSON reader)."""
    import json  # noqa: PLC0415 - loaded only to write JSON (start-up)

    text = json.dumps(plain(value), indent=2, ensure_ascii=False)
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet runs as a formula at the start of a cell."""


def spreadsheet_safe(cell: str) -> str:
    """`cell` as a spreadsheet shows it but never runs it: a formula start gets a leading `'`."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A CSV of `rows`: printable cells, none of which a spreadsheet would run as a formula."""
    import csv  # noqa: PLC0415 - loaded only to write CSV (start-up)
    import io  # noqa: PLC0415

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def csv_cell(value: Any) -> Any:
    """`value` as a CSV export writes it: empty for None, text printable and never a formula."""
    if value is None:
        return ""
    shown = plain(value)
    return spreadsheet_safe(printable(shown)) if isinstance(shown, str) else shown


def table(
    title: str | None, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> PlainTable:
    """A table of `rows` to print; empty values show as a dash. Cells and the title are plain
    text: brackets and colons in customer data show as written (never read as rich markup or
    emoji codes, so `[/b]` in a name cannot break a command). Drawn as rich draws its tables
    (`scheduler.plain_table`)."""
    from scheduler.plain_table import PlainTable  # noqa: PLC0415 - rich loads only to draw

    return PlainTable(
        printable(title) if title else None,
        [column.replace("_", " ") for column in columns],
        [
            [
                "-" if row.get(c) in (None, "") else printable(str(plain(row.get(c))))
                for c in columns
            ]
            for row in rows
        ],
    )


def emit(
    console: Console,
    output_format: OutputFormat,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
) -> None:
    """Print `rows` in the chosen format to `console`."""
    if output_format is OutputFormat.json:
        console.file.write(to_json([{c: row.get(c) for c in columns} for row in rows]) + "\n")
    elif output_format is OutputFormat.csv:
        console.file.write(to_csv(rows, columns))
    else:
        console.print(table(title, rows, columns))
