"""CSV that people open in spreadsheets: nothing in it runs as a formula, nothing in it moves
the terminal."""

from __future__ import annotations

import csv
import io

import pytest

from scheduler.output import spreadsheet_safe, to_csv


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        (
            '=HYPERLINK("http://evil.example","Click")',
            '\'=HYPERLINK("http://evil.example","Click")',
        ),
        ("+1 555 0100", "'+1 555 0100"),
        ("-20% off", "'-20% off"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("Happy birthday, Ann!", "Happy birthday, Ann!"),
        ("", ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_escaped(cell: str, shown: str) -> None:
    assert spreadsheet_safe(cell) == shown


def test_every_text_cell_of_an_export_is_safe_and_numbers_stay_numbers() -> None:
    rows = [{"id": 7, "subject": "=1+2", "reason": "ok\x1b[31m"}]
    [header, row] = list(csv.reader(io.StringIO(to_csv(rows, ["id", "subject", "reason"]))))
    assert header == ["id", "subject", "reason"]
    assert row[0] == "7"
    assert row[1] == "'=1+2"
    assert "\x1b" not in row[2]
