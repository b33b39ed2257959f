"""Files and cells at the edges: UTF-16, the calendar's ends, zone names that are not zones,
invalid emails of stored customers, control characters, huge cells, a header alone; and the
store's file modes."""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from scheduler.errors import ImportRejected
from scheduler.importer import ImportReport, import_csv
from scheduler.importer.batch import Pending, WriteContext, write_batch
from scheduler.importer.fields import LocalTime
from scheduler.importer.kinds import Candidate
from scheduler.importer.source import MAX_LINE
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from tests.conftest import NOW, Workspace, run_cli

LONDON = ZoneInfo("Europe/London")


def csv_text(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write(tmp_path: Path, content: str | bytes, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def run(engine: Engine, path: Path, kind: str = "customers", **options: Any) -> ImportReport:
    return import_csv(engine, kind, path, now=NOW, business_zone=LONDON, **options)


def stored(engine: Engine, table: str = "customers") -> dict[Any, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(metadata.tables[table])).all()
    return {row.external_id: dict(row._mapping) for row in rows}


def rejected(report: ImportReport) -> list[tuple[int, str]]:
    return [(rejection.line, rejection.reason) for rejection in report.rejected]


NAMES = "id,name,email\r\nC-1,Zoë Ørsted,zoe@example.com\r\nC-2,Łukasz 李,l@example.com\r\n"
UTF16 = [
    pytest.param(codecs.BOM_UTF16_LE + NAMES.encode("utf-16-le"), "little", id="le-bom"),
    pytest.param(codecs.BOM_UTF16_BE + NAMES.encode("utf-16-be"), "big", id="be-bom"),
    pytest.param(NAMES.encode("utf-16-le"), "little", id="le"),
    pytest.param(NAMES.encode("utf-16-be"), "big", id="be"),
]


@pytest.mark.parametrize(("content", "endian"), UTF16)
def test_utf16_with_or_without_a_byte_order_mark_is_read(
    engine: Engine, tmp_path: Path, content: bytes, endian: str
) -> None:
    rejects = tmp_path / "rejects.csv"
    report = run(engine, write(tmp_path, content), rejects_path=rejects)
    assert (report.rows, report.inserted, report.rejected) == (2, 2, [])
    assert report.encoding == f"UTF-16 ({endian}-endian)"
    found = stored(engine)
    assert (found["C-1"]["name"], found["C-2"]["name"]) == ("Zoë Ørsted", "Łukasz 李")


def test_a_utf16_row_that_does_not_decode_is_rejected_naming_utf16(
    engine: Engine, tmp_path: Path
) -> None:
    lone_surrogate = b"\x00\xd8"  # a high surrogate, in UTF-16-LE, with no low one after it
    content = (
        "id,name\r\nC-1,Ann\r\nC-2,B".encode("utf-16-le")
        + lone_surrogate
        + "ob\r\nC-3,Cat\r\n".encode("utf-16-le")
    )
    report = run(engine, write(tmp_path, content))
    assert rejected(report) == [
        (3, "contains bytes that are not UTF-16 (little-endian) text (save the file as UTF-8)")
    ]
    assert sorted(stored(engine)) == ["C-1", "C-3"]


@pytest.mark.parametrize(
    "content",
    [
        codecs.BOM_UTF32_LE + NAMES.encode("utf-32-le"),
        codecs.BOM_UTF32_BE + NAMES.encode("utf-32-be"),
    ],
)
def test_utf32_is_refused_by_name(engine: Engine, tmp_path: Path, content: bytes) -> None:
    with pytest.raises(ImportRejected) as caught:
        run(engine, write(tmp_path, content))
    assert caught.value.message == "the file is UTF-32 text; save it as UTF-8 (or UTF-16)"


def test_a_file_with_no_line_end_is_refused_without_reading_it_whole(
    engine: Engine, tmp_path: Path
) -> None:
    """`import customers /dev/zero` grew past 4 GB in seconds: the csv reader asked for the
    whole first line. Now its first MAX_LINE characters are enough to refuse it."""
    path = write(tmp_path, b"\x00" * (MAX_LINE + 1000))
    with pytest.raises(ImportRejected) as caught:
        run(engine, path)
    assert caught.value.line == 1
    assert caught.value.message == (
        "cannot read the header: the line is longer than 33,554,432 characters "
        "(is this a CSV file?)"
    )


def test_an_overlong_line_rejects_its_row_and_the_next_lines_keep_their_numbers(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("scheduler.importer.source.MAX_LINE", 100)
    lines = [
        "id,name,email",
        "C-1,Ann,ann@example.com",
        "C-2," + "B" * 350 + ",b@example.com",  # several pieces of MAX_LINE, then its end
        "C-3,Cy,cy@example.com",
        "C-4,Dee,not-an-address",
        '"C-5","Eve\nEvans",eve@example.com',  # a quoted field over two lines
        "C-6,Fay,fay@example.com",
    ]
    report = run(engine, write(tmp_path, "\n".join(lines) + "\n"))
    assert rejected(report)[0] == (
        3,
        "the line cannot be read as CSV: the line is longer than 100 characters "
        "(is this a CSV file?)",
    )
    assert [warning.line for warning in report.warnings] == [5]  # the bad address keeps its line
    assert sorted(stored(engine)) == ["C-1", "C-3", "C-4", "C-5", "C-6"]


def test_a_latin1_file_still_names_utf8(engine: Engine, tmp_path: Path) -> None:
    report = run(engine, write(tmp_path, "id,name\nC-1,Zo\xeb\n".encode("latin-1")))
    assert rejected(report) == [
        (2, "contains bytes that are not UTF-8 text (save the file as UTF-8)")
    ]


@pytest.mark.parametrize(
    "name", ["localtime", "Factory", "posixrules", "posix/Europe/Paris", "right/UTC"]
)
def test_zone_names_that_are_not_zones_are_rejected(
    engine: Engine, tmp_path: Path, name: str
) -> None:
    report = run(
        engine, write(tmp_path, csv_text(["id", "name", "timezone"], ["C-1", "Ann", name]))
    )
    assert rejected(report) == [
        (2, f'timezone: unknown time zone "{name}" (expected an IANA name like "Europe/Paris")')
    ]


def _customers(engine: Engine, tmp_path: Path) -> None:
    text = csv_text(
        ["id", "name", "timezone"], ["C-1", "Ann", "Pacific/Pago_Pago"], ["C-2", "Bob", ""]
    )
    assert run(engine, write(tmp_path, text, "people.csv")).inserted == 2


EDGE = "outside the years 1900 to 2200"


def test_placeholder_times_reject_their_rows_and_keep_the_batch(
    engine: Engine, tmp_path: Path
) -> None:
    _customers(engine, tmp_path)
    orders = csv_text(
        ["id", "customer_id", "placed_at", "amount"],
        ["A-1", "C-1", "2026-03-01T10:00", "5"],
        ["A-2", "C-1", "9999-12-31T23:00:00-05:00", "5"],
        ["A-3", "C-2", "0001-01-01T00:30:00+01:00", "5"],
        ["A-4", "C-1", "9999-12-31T23:00:00", "5"],
        ["A-5", "C-2", "2026-03-01T10:00Z", "5"],
    )
    report = run(engine, write(tmp_path, orders, "orders.csv"), "orders")
    assert rejected(report) == [
        (3, f'placed_at: "9999-12-31T23:00:00-05:00" is {EDGE}'),
        (4, f'placed_at: "0001-01-01T00:30:00+01:00" is {EDGE}'),
        (5, f'placed_at: "9999-12-31T23:00:00" is {EDGE}'),
    ]
    assert sorted(stored(engine, "orders")) == ["A-1", "A-5"]


def test_placeholder_dates_reject_their_rows_in_every_kind(engine: Engine, tmp_path: Path) -> None:
    _customers(engine, tmp_path)
    people = csv_text(
        ["id", "name", "first_met_on", "customer_since", "opted_out", "birthday"],
        ["C-3", "Cat", "9999-12-31", "0001-01-01", "9999-12-31T23:00:00-05:00", "0001-01-01"],
    )
    report = run(engine, write(tmp_path, people))
    [(_, reason)] = rejected(report)
    assert reason.split("; ") == [
        f'first_met_on: "9999-12-31" is {EDGE}',
        f'customer_since: "0001-01-01" is {EDGE}',
        f'opted_out: "9999-12-31T23:00:00-05:00" is {EDGE}',
        f'birthday: "0001-01-01" is {EDGE}',
    ]
    referrals = csv_text(
        ["referrer_id", "referred_id", "referred_on"], ["C-1", "C-2", "0001-01-01"]
    )
    meetings = csv_text(["customer_id", "met_at"], ["C-1", "9999-12-31"], ["C-2", "2026-01-01"])
    assert rejected(run(engine, write(tmp_path, referrals, "r.csv"), "referrals")) == [
        (2, f'referred_on: "0001-01-01" is {EDGE}')
    ]
    report = run(engine, write(tmp_path, meetings, "m.csv"), "meetings")
    assert (rejected(report), report.inserted) == ([(2, f'met_at: "9999-12-31" is {EDGE}')], 1)


def test_a_local_time_that_cannot_be_placed_rejects_its_row_not_the_batch(
    engine: Engine, tmp_path: Path
) -> None:
    """batch.py never raises for one row, even for a LocalTime no parser would make."""
    _customers(engine, tmp_path)

    def order(line: int, external_id: str, customer: str, wall: datetime) -> Pending:
        values = {"external_id": external_id, "placed_at": LocalTime(wall), "amount": 5}
        values |= {"margin": None, "description": None}
        return Pending(line, [external_id], Candidate(values, refs={"customer_id": customer}))

    rows = [
        order(2, "A-1", "C-1", datetime(2026, 3, 1, 10)),  # noqa: DTZ001
        order(3, "A-2", "C-1", datetime(9999, 12, 31, 23)),  # noqa: DTZ001 - Pago Pago: UTC-11
        order(4, "A-3", "C-2", datetime(2026, 3, 1, 10)),  # noqa: DTZ001
    ]
    with write_transaction(engine) as connection:
        outcome = write_batch(connection, "orders", rows, WriteContext(NOW, LONDON))
    assert [(r.line, r.reason.split(" is ")[1]) for r in outcome.rejected] == [
        (3, "outside the calendar in Pacific/Pago_Pago")
    ]
    assert outcome.inserted == 2
    assert stored(engine, "orders")["A-3"]["placed_at"] == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_an_invalid_email_leaves_a_stored_customers_address_alone(
    engine: Engine, tmp_path: Path
) -> None:
    header = ["id", "name", "email", "Pet"]
    run(engine, write(tmp_path, csv_text(header, ["C-1", "Ann", "ann@example.com", "Rex"])))
    report = run(engine, write(tmp_path, csv_text(header, ["C-1", "Ann", "ann@exmaple", "Max"])))
    assert (report.updated, report.rejected_count, report.warning_count) == (1, 0, 1)
    found = stored(engine)["C-1"]
    assert (found["email"], found["attributes"]) == ("ann@example.com", {"pet": "Max"})


def test_a_row_rejected_for_another_cell_lists_its_bad_email_too(
    engine: Engine, tmp_path: Path
) -> None:
    report = run(engine, write(tmp_path, csv_text(["id", "name", "email"], ["C-1", "", "x"])))
    [(_, reason)] = rejected(report)
    assert [part.split(":")[0] for part in reason.split("; ")] == ["name", "email"]
    assert report.warnings == []


def test_a_file_with_only_a_header_imports_nothing_and_says_so(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = write(tmp_path, "id,name\n")
    rejects = tmp_path / "rejects.csv"
    result = run_cli(
        "--config", migrated_workspace.path, "import", "customers", source, "--rejects", rejects
    )
    assert result.exit_code == 0, result.stderr
    assert "0 rows: 0 new, 0 updated, 0 unchanged, 0 rejected." in result.stdout
    assert rejects.read_bytes() == b"id,name,reason\r\n"


def test_a_huge_cell_is_quoted_short_in_reasons(engine: Engine, tmp_path: Path) -> None:
    huge = "9" * 1_000_000
    text = csv_text(["id", "name", "email", "birthday"], ["C-1", "Ann", huge + "@x", huge])
    report = run(engine, write(tmp_path, text), rejects_path=tmp_path / "rejects.csv")
    [(_, reason)] = rejected(report)
    assert len(reason) < 1000
    assert reason.count("characters)") == 2


def test_control_characters_in_reasons_are_printed_escaped(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    text = csv_text(
        ["id", "name", "email", "timezone"], ["C-1", "Ann", "a\x1b[2J@x", "\x1b]0;pwn\x07"]
    )
    result = run_cli(
        "--config", migrated_workspace.path, "import", "customers", write(tmp_path, text)
    )
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert '"\\x1b]0;pwn\\x07"' in result.stderr
    assert "a\\x1b[2J@x" in result.stderr


def test_a_new_sqlite_store_and_its_wal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    previous = os.umask(0o022)
    try:
        engine = create_store_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
            with engine.connect() as connection:  # the WAL and shared-memory files exist now
                connection.execute(select(metadata.tables["customers"])).all()
                modes = {
                    name: stat.S_IMODE((tmp_path / name).stat().st_mode)
                    for name in ("store.db", "store.db-wal", "store.db-shm")
                }
        finally:
            engine.dispose()
    finally:
        os.umask(previous)
    assert modes == {"store.db": 0o600, "store.db-wal": 0o600, "store.db-shm": 0o600}


def test_appreciate_init_creates_a_private_store(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert run_cli("init", tmp_path / "shop").exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shop" / "appreciate.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shop" / "appreciate.toml").stat().st_mode) != 0


def test_an_existing_store_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    engine = create_store_engine(f"sqlite:///{path}")
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_name_with_a_line_break_is_one_line_and_control_characters_are_refused(
    engine: Engine, tmp_path: Path
) -> None:
    """A spreadsheet cell's Alt+Enter or a tab becomes one space (the card, the subject and
    the tables show one line); an escape or a bidi override, which would act on a terminal or
    reorder a card's text, rejects the row naming the character; so does a name too long for
    a subject line."""
    content = csv_text(
        ["id", "name", "email"],
        ["C-1", "Ann\n  Lee", "ann@example.com"],
        ["C-2", "Bo\tKim\r\nJr", "bo@example.com"],
        ["C-3", "Cy\x1b[2J", "cy@example.com"],
        ["C-4", "\u202eeeL nnA", "di@example.com"],
        ["C-5", "E" * 201, "e@example.com"],
        ["C-6", "F" * 200, "f@example.com"],
    )
    report = run(engine, write(tmp_path, content))
    found = stored(engine)
    assert {key: row["name"] for key, row in found.items()} == {
        "C-1": "Ann Lee",
        "C-2": "Bo Kim Jr",
        "C-6": "F" * 200,
    }
    assert rejected(report) == [
        (6, "name: holds a control character (U+001B) at character 3"),
        (7, "name: holds a control character (U+202E) at character 1"),
        (8, "name: is longer than 200 characters"),
    ]
