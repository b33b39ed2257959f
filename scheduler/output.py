"""Printing results: a readable table by default, JSON or CSV where people script it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def plain(value: Any) -> Any:
    """A value as JSON has it: dates in ISO 8601, money as a string with its cents."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def to_json(value: Any) -> str:
    return json.dumps(plain(value), indent=2, ensure_ascii=False)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else plain(row.get(c)) for c in columns])
    return buffer.getvalue()


def table(title: str | None, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Table:
    """A rich table of `rows`; empty values show as a dash."""
    result = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        result.add_column(column.replace("_", " "))
    for row in rows:
        result.add_row(
            *("-" if row.get(c) in (None, "") else str(plain(row.get(c))) for c in columns)
        )
    return result


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
