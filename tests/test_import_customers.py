"""Importing customers: every column, every kind of bad cell, file quirks and opt-out rules."""

from __future__ import annotations

import csv
import gc
import io
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from scheduler.errors import ImportRejected
from scheduler.importer import ImportReport, import_csv
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import NOW

LONDON = ZoneInfo("Europe/London")
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
opt_outs = metadata.tables["opt_outs"]
HEADER = ["id", "name", "email", "birthday", "timezone", "first_met_on", "customer_since"]
GOOD = ["ann@example.com", "1990-05-17", "Europe/Paris", "2019-03-02", "2020-01-15"]


def csv_text(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write(tmp_path: Path, content: str | bytes, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def run(engine: Engine, path: Path, *, now: datetime = NOW, **options: Any) -> ImportReport:
    return import_csv(engine, "customers", path, now=now, business_zone=LONDON, **options)


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(customers)).all()
    return {row.external_id: dict(row._mapping) for row in rows}


def rejected(report: ImportReport) -> list[tuple[int, str]]:
    return [(rejection.line, rejection.reason) for rejection in report.rejected]


def test_a_valid_row_lands_with_every_column(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id,name,email,birthday,timezone,first_met_on,customer_since,Pet Name\n"
        "C-1, Ann Smith ,Ann.Smith@Example.COM,1990-05-17,Asia/Tokyo,2019-03-02,2020-01-15,Rex\n",
    )
    report = run(engine, path)
    assert (report.rows, report.inserted, report.updated, report.unchanged) == (1, 1, 0, 0)
    assert report.rejected == []
    assert report.ignored_columns == []
    row = stored(engine)["C-1"]
    assert row["name"] == "Ann Smith"
    assert row["email"] == "Ann.Smith@example.com"
    assert (row["birth_year"], row["birth_month"], row["birth_day"]) == (1990, 5, 17)
    assert row["timezone"] == "Asia/Tokyo"
    assert row["first_met_on"] == date(2019, 3, 2)
    assert row["customer_since"] == date(2020, 1, 15)
    assert row["opted_out_at"] is None
    assert row["attributes"] == {"pet_name": "Rex"}
    assert row["created_at"] == NOW
    assert row["updated_at"] == NOW


def test_every_birthday_form_is_stored(engine: Engine, tmp_path: Path) -> None:
    forms = {
        "B-1": ("1990-05-17", (1990, 5, 17)),
        "B-2": ("--12-25", (None, 12, 25)),
        "B-3": ("12-25", (None, 12, 25)),
        "B-4": ("--02-29", (None, 2, 29)),
        "B-5": ("02-29", (None, 2, 29)),
        "B-6": ("2000-02-29", (2000, 2, 29)),
        "B-7": ("2026-11-23", (2026, 11, 23)),  # today is not in the future
    }
    rows = [[key, "Ann", text] for key, (text, _) in forms.items()]
    report = run(engine, write(tmp_path, csv_text(["id", "name", "birthday"], *rows)))
    assert report.rejected == []
    found = {
        key: (row["birth_year"], row["birth_month"], row["birth_day"])
        for key, row in stored(engine).items()
    }
    assert found == {key: expected for key, (_, expected) in forms.items()}


BAD_CELLS = [
    ("birthday", "2001-02-30", 'birthday: "2001-02-30" is not a real calendar date'),
    ("birthday", "2023-02-29", 'birthday: "2023-02-29" is not a real calendar date'),
    ("birthday", "13-01", 'birthday: "13-01" is not a real calendar date'),
    ("birthday", "2026-11-24", 'birthday: "2026-11-24" is in the future'),
    ("birthday", "1899-12-31", 'birthday: "1899-12-31" is outside the years 1900 to 2200'),
    ("birthday", "17/05/1990", 'birthday: "17/05/1990" is not a birthday (use YYYY-MM-DD, '
     "--MM-DD or MM-DD)"),
    ("timezone", "Europe/Londn", 'timezone: unknown time zone "Europe/Londn" '
     '(expected an IANA name like "Europe/Paris")'),
    ("first_met_on", "2026-13-01", 'first_met_on: "2026-13-01" is not a date (use YYYY-MM-DD)'),
    ("customer_since", "01/03/2020", 'customer_since: "01/03/2020" is not a date '
     "(use YYYY-MM-DD)"),
    ("id", "", "id: is empty"),
    ("name", "", "name: is empty"),
]  # fmt: skip


def _bad_row(column: str, value: str) -> list[str]:
    row = ["C-2", "Bob", *GOOD]
    row[HEADER.index(column)] = value
    return row


@pytest.mark.parametrize(("column", "value", "reason"), BAD_CELLS)
def test_a_bad_cell_rejects_its_row_only(
    engine: Engine, tmp_path: Path, column: str, value: str, reason: str
) -> None:
    text = csv_text(HEADER, ["C-1", "Ann", *GOOD], _bad_row(column, value), ["C-3", "Cat", *GOOD])
    report = run(engine, write(tmp_path, text))
    assert rejected(report) == [(3, reason)]
    assert (report.rows, report.inserted) == (3, 2)
    assert sorted(stored(engine)) == ["C-1", "C-3"]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("not-an-email", "must have an @-sign"),
        ("a@x.com, b@y.com", "invalid characters"),
        ("Ann <ann@example.com>", "display name"),
    ],
)
def test_a_bad_email_keeps_the_customer_without_it_and_warns(
    engine: Engine, tmp_path: Path, value: str, detail: str
) -> None:
    text = csv_text(HEADER, ["C-1", "Ann", *GOOD], _bad_row("email", value), ["C-3", "Cat", *GOOD])
    report = run(engine, write(tmp_path, text))
    assert rejected(report) == []
    assert report.ok
    [warning] = report.warnings
    assert (warning.line, report.warning_count) == (3, 1)
    assert warning.reason.startswith(f'email: "{value}" is not a single valid email address: ')
    assert detail in warning.reason
    found = stored(engine)
    assert sorted(found) == ["C-1", "C-2", "C-3"]
    assert found["C-2"]["email"] is None
    assert (found["C-2"]["name"], found["C-2"]["birth_year"]) == ("Bob", 1990)


def test_every_bad_cell_of_a_row_is_reported_at_once(engine: Engine, tmp_path: Path) -> None:
    row = ["C-2", "", "bob-at-example", "2001-02-30", "Mars/Base", "yesterday", "2020-01-15"]
    report = run(engine, write(tmp_path, csv_text(HEADER, row)))
    [(line, reason)] = rejected(report)
    assert line == 2
    parts = reason.split("; ")
    assert [part.split(":")[0] for part in parts] == [
        "name",
        "email",
        "birthday",
        "timezone",
        "first_met_on",
    ]
    assert parts[2] == 'birthday: "2001-02-30" is not a real calendar date'
    assert parts[4] == 'first_met_on: "yesterday" is not a date (use YYYY-MM-DD)'
    assert stored(engine) == {}


def test_a_byte_order_mark_does_not_hide_the_first_column(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfid,name,email\r\nC-1,Ann,ann@example.com\r\n")
    report = run(engine, path)
    assert report.rejected == []
    row = stored(engine)["C-1"]
    assert (row["name"], row["email"], row["attributes"]) == ("Ann", "ann@example.com", {})


def test_a_row_that_is_not_utf8_is_rejected_and_kept_byte_for_byte(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, b"id,name,Pet Name\nC-1,Ann,Rex\nC-2,Ren\xe9e,Tom\nC-3,Bob,Fido\n")
    rejects = tmp_path / "rejects.csv"
    report = run(engine, path, rejects_path=rejects)
    reason = "contains bytes that are not UTF-8 text (save the file as UTF-8)"
    assert rejected(report) == [(3, reason)]
    assert sorted(stored(engine)) == ["C-1", "C-3"]
    assert rejects.read_bytes() == (
        b"id,name,Pet Name,reason\r\nC-2,Ren\xe9e,Tom,line 3: " + reason.encode() + b"\r\n"
    )


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_line_numbers_count_blank_lines_and_multi_line_cells(
    engine: Engine, tmp_path: Path, newline: str
) -> None:
    lines = [
        "id,name,birthday",  # 1
        "C-1,Ann,1990-01-01",  # 2
        "",  # 3
        "C-2,Bob,2001-02-30",  # 4
        "",  # 5
        "   ",  # 6
        'C-3,"Cat',  # 7
        'Smith",1990-01-01',  # 8
        "C-4,Dan,13-01",  # 9
        "C-5,Eve,1990-01-01",  # 10
    ]
    report = run(engine, write(tmp_path, newline.join(lines) + newline))
    assert [line for line, _ in rejected(report)] == [4, 9]
    assert report.rows == 5
    rows = stored(engine)
    assert sorted(rows) == ["C-1", "C-3", "C-5"]
    assert rows["C-3"]["name"] == "Cat Smith"  # the line break reads as one space


def test_rows_with_too_many_or_too_few_fields_are_rejected(engine: Engine, tmp_path: Path) -> None:
    text = "id,name,email\nC-1,Ann,a@example.com\nC-2,Bob,b@example.com,extra\nC-3,Cat\nC-4,Dan,\n"
    report = run(engine, write(tmp_path, text))
    assert rejected(report) == [
        (3, "has 4 fields, the header has 3"),
        (4, "has 2 fields, the header has 3"),
    ]
    assert sorted(stored(engine)) == ["C-1", "C-4"]


def refuse(engine: Engine, path: Path, **options: Any) -> tuple[int, str, list[str]]:
    """Run an import that must be refused: (line, message, files it left open).

    The exception is dropped before returning so that a file it kept open is closed here, in
    this test, where the ResourceWarning is recorded instead of failing some later test.
    """
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        try:
            run(engine, path, **options)
        except ImportRejected as error:
            line, message = error.line, error.message
        else:
            pytest.fail("the import was not refused")
        gc.collect()
    return line, message, [str(w.message) for w in seen if w.category is ResourceWarning]


def test_a_missing_required_column_refuses_the_file(engine: Engine, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    path = write(tmp_path, "id,email\nC-1,ann@example.com\n")
    line, message, _ = refuse(engine, path, rejects_path=rejects)
    assert line == 1
    assert message.startswith("missing required column(s) name; customers files have the columns")
    assert stored(engine) == {}
    assert not rejects.exists()


UNREADABLE = [
    pytest.param(
        "id,name,Email,email\nC-1,Ann,a@example.com,b@example.com\n",
        'the columns "Email" and "email" are the same column',
        id="same-column",
    ),
    pytest.param(
        "id,name,Pet Name,pet-name\nC-1,Ann,Rex,Tom\n",
        'the columns "Pet Name" and "pet-name" are the same column',
        id="same-attribute",
    ),
    pytest.param("", "the file is empty (expected a header line)", id="empty"),
    pytest.param("\ufeff", "the file is empty (expected a header line)", id="only-bom"),
    pytest.param(b"id,n\xe4me\nC-1,Ann\n", "the header is not UTF-8 text", id="latin-1-header"),
]


@pytest.mark.parametrize(("content", "message"), UNREADABLE)
def test_a_file_that_cannot_be_read_is_refused(
    engine: Engine, tmp_path: Path, content: str | bytes, message: str
) -> None:
    line, refused, _ = refuse(engine, write(tmp_path, content))
    assert (line, refused) == (1, message)
    assert stored(engine) == {}


def test_a_refused_file_is_closed(tmp_path: Path) -> None:
    """Refusing a file must not leave it open (the refusal happens before any database use)."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'unused.db'}")
    left_open: dict[str, list[str]] = {}
    try:
        for case in UNREADABLE:
            content, message = case.values
            assert isinstance(content, str | bytes)
            _, refused, leaks = refuse(engine, write(tmp_path, content))
            assert refused == message
            left_open[str(case.id)] = [leak.split(" name=")[0] for leak in leaks]
    finally:
        engine.dispose()
    assert left_open == {str(case.id): [] for case in UNREADABLE}


def opt_out(engine: Engine, tmp_path: Path, cells: dict[str, str], **options: Any) -> Any:
    """Import one customer C-1 with these cells; return the stored opted_out_at."""
    header = ["id", "name", *cells]
    report = run(
        engine, write(tmp_path, csv_text(header, ["C-1", "Ann", *cells.values()])), **options
    )
    assert report.rejected == []
    return stored(engine)["C-1"]["opted_out_at"]


@pytest.mark.parametrize("answer", ["yes", "Y", "TRUE", "1"])
def test_opting_out_with_yes_means_now(engine: Engine, tmp_path: Path, answer: str) -> None:
    assert opt_out(engine, tmp_path, {"opted_out": answer}) == NOW


@pytest.mark.parametrize(
    ("cell", "moment"),
    [
        ("2026-06-01T09:30:00+02:00", datetime(2026, 6, 1, 7, 30, tzinfo=UTC)),
        ("2026-06-01T09:30Z", datetime(2026, 6, 1, 9, 30, tzinfo=UTC)),
        ("2026-06-01T09:30", datetime(2026, 6, 1, 8, 30, tzinfo=UTC)),  # London summer time
        ("2026-01-10T09:30", datetime(2026, 1, 10, 9, 30, tzinfo=UTC)),  # London winter time
        ("2026-06-01", datetime(2026, 5, 31, 23, 0, tzinfo=UTC)),  # midnight in London
    ],
)
def test_opting_out_at_a_given_moment(
    engine: Engine, tmp_path: Path, cell: str, moment: datetime
) -> None:
    assert opt_out(engine, tmp_path, {"opted_out": cell}) == moment


def test_a_naive_opt_out_time_is_read_in_the_customers_time_zone(
    engine: Engine, tmp_path: Path
) -> None:
    text = csv_text(
        ["id", "name", "timezone", "opted_out"],
        ["C-1", "Ann", "Asia/Tokyo", "2026-06-01T09:30"],
        ["C-2", "Bob", "America/New_York", "2026-06-01"],
    )
    run(engine, write(tmp_path, text))
    rows = stored(engine)
    assert rows["C-1"]["opted_out_at"] == datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
    assert rows["C-2"]["opted_out_at"] == datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    # the customer's zone already in the store counts too
    text = csv_text(["id", "name", "opted_out"], ["C-1", "Ann", "2026-07-01T09:30"])
    run(engine, write(tmp_path, text))
    assert stored(engine)["C-1"]["opted_out_at"] == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("cell", ["", "no", "false", "0"])
def test_an_import_never_opts_a_customer_back_in(engine: Engine, tmp_path: Path, cell: str) -> None:
    assert opt_out(engine, tmp_path, {"opted_out": "yes"}) == NOW
    later = NOW + timedelta(days=30)
    assert opt_out(engine, tmp_path, {"opted_out": cell}, now=later) == NOW
    assert opt_out(engine, tmp_path, {"opted_out": "yes"}, now=later) == NOW
    assert stored(engine)["C-1"]["updated_at"] == NOW


def test_absent_columns_keep_their_values_and_empty_cells_clear_them(
    engine: Engine, tmp_path: Path
) -> None:
    full = csv_text(
        [*HEADER, "opted_out", "Pet Name"], ["C-1", "Ann", *GOOD, "2026-06-01T09:30Z", "Rex"]
    )
    run(engine, write(tmp_path, full))
    before = stored(engine)["C-1"]

    report = run(engine, write(tmp_path, csv_text(["id", "name"], ["C-1", "Ann Smith"])))
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 0)
    after = stored(engine)["C-1"]
    assert after == {**before, "name": "Ann Smith"}

    report = run(
        engine, write(tmp_path, csv_text(HEADER, ["C-1", "Ann Smith", "", "", "", "", ""]))
    )
    assert report.updated == 1
    cleared = stored(engine)["C-1"]
    emptied = ["email", "birth_year", "birth_month", "birth_day", "timezone", "first_met_on"]
    emptied.append("customer_since")
    assert {column: cleared[column] for column in emptied} == dict.fromkeys(emptied)
    assert cleared["opted_out_at"] == datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    assert cleared["attributes"] == {"pet_name": "Rex"}


def test_attributes_merge_across_imports(engine: Engine, tmp_path: Path) -> None:
    run(engine, write(tmp_path, "id,name,Pet Name\nC-1,Ann,Rex\n"))
    run(engine, write(tmp_path, "id,name,Favourite Cake\nC-1,Ann,Lemon drizzle\n"))
    assert stored(engine)["C-1"]["attributes"] == {
        "pet_name": "Rex",
        "favourite_cake": "Lemon drizzle",
    }
    report = run(engine, write(tmp_path, "id,name,PET NAME\nC-1,Ann,Tom\n"))
    assert report.updated == 1
    assert stored(engine)["C-1"]["attributes"] == {
        "pet_name": "Tom",
        "favourite_cake": "Lemon drizzle",
    }


def test_an_opt_out_the_file_would_undo_is_kept_and_the_report_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    assert opt_out(engine, tmp_path, {"opted_out": "yes"}) == NOW
    report = run(
        engine, write(tmp_path, csv_text(["id", "name", "opted_out"], ["C-1", "Ann", "no"]))
    )
    assert stored(engine)["C-1"]["opted_out_at"] == NOW
    [warning] = report.warnings
    assert warning.line == 2
    assert warning.reason == (
        "opted_out: kept the opt-out of 2026-11-23; an import never opts a customer back in "
        "(they can, from their unsubscribe page)"
    )
    quiet = run(engine, write(tmp_path, csv_text(["id", "name", "opted_out"], ["C-1", "Ann", ""])))
    assert quiet.warnings == []
    never_out = run(
        engine, write(tmp_path, csv_text(["id", "name", "opted_out"], ["C-2", "Bo", "no"]))
    )
    assert never_out.warnings == []


def test_an_import_that_opts_a_customer_out_records_it_and_stops_their_open_notes(
    engine: Engine, tmp_path: Path
) -> None:
    header = ["id", "name", "email", "opted_out"]
    run(engine, write(tmp_path, csv_text(header, ["C-1", "Ann", "ann@example.com", ""])))
    customer_id = stored(engine)["C-1"]["id"]
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind="birthday",
                occasion_key="birthday:2026",
                status="pending",
                due_at=NOW + timedelta(hours=1),
            )
        )
    later = NOW + timedelta(minutes=5)
    opted = csv_text(header, ["C-1", "Ann", "ann@example.com", "yes"], ["C-2", "Bo", "", "yes"])
    run(engine, write(tmp_path, opted, name="opt-outs.csv"), now=later)
    with engine.connect() as connection:
        note = connection.execute(select(touches.c.status, touches.c.reason)).one()
        audit = connection.execute(
            select(opt_outs.c.customer_id, opt_outs.c.source, opt_outs.c.detail, opt_outs.c.at)
        ).all()
    assert tuple(note) == ("suppressed", "opted out on 2026-11-23 (import)")
    c2 = stored(engine)["C-2"]["id"]
    assert sorted(audit) == sorted(
        [(customer_id, "import", "opt-outs.csv", later), (c2, "import", "opt-outs.csv", later)]
    )
    run(engine, write(tmp_path, opted, name="opt-outs.csv"), now=later + timedelta(days=1))
    with engine.connect() as connection:  # the same file again: nothing new to record
        assert len(connection.execute(select(opt_outs.c.id)).all()) == 2
