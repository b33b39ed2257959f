"""What a whole import does: re-runs, corrections, the rejects file, dry runs, interruptions."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from scheduler.importer import ImportReport, import_csv
from scheduler.store.models import metadata
from tests.conftest import NOW

LONDON = ZoneInfo("Europe/London")
LATER = NOW + timedelta(days=1)
customers = metadata.tables["customers"]
KINDS = ("customers", "orders", "referrals", "meetings")


def csv_text(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write(tmp_path: Path, text: str, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def run(
    engine: Engine, path: Path, kind: str = "customers", *, now: datetime = NOW, **options: Any
) -> ImportReport:
    return import_csv(engine, kind, path, now=now, business_zone=LONDON, **options)


def counts(report: ImportReport) -> tuple[int, int, int, int, list[int]]:
    """rows, inserted, updated, unchanged, and the rejected lines."""
    lines = [rejection.line for rejection in report.rejected]
    return report.rows, report.inserted, report.updated, report.unchanged, lines


def snapshot(engine: Engine, *tables: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of `tables`, every column (timestamps included)."""
    with engine.connect() as connection:
        return {
            name: [
                dict(row._mapping)
                for row in connection.execute(
                    select(metadata.tables[name]).order_by(metadata.tables[name].c.id)
                )
            ]
            for name in tables
        }


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    return {row["external_id"]: row for row in snapshot(engine, "customers")["customers"]}


FILES = {
    "customers": csv_text(
        ["id", "name", "email", "birthday", "timezone", "opted_out", "Pet Name"],
        ["C-1", "Ann", "Ann@Example.com", "1990-05-17", "Asia/Tokyo", "", "Rex"],
        ["C-2", "Bob", "bob@example.com", "--02-29", "", "yes", ""],
        ["C-3", "Cat", "", "", "Europe/Paris", "2026-06-01T10:00", "Tibbles"],
    ),
    "orders": csv_text(
        ["id", "customer_id", "placed_at", "amount", "margin", "description"],
        ["A-1", "C-1", "2026-03-01T10:00", "12.50", "-1.00", "Cake"],
        ["A-2", "C-2", "2026-07-01", "0.10", "", ""],
        ["A-3", "C-3", "2026-07-01T10:00:00+02:00", "1200", "300.5", "Party"],
    ),
    "referrals": csv_text(
        ["referrer_id", "referred_id", "referred_on"],
        ["C-1", "C-2", "2026-02-01"],
        ["C-1", "C-3", "2026-02-02"],
    ),
    "meetings": csv_text(
        ["customer_id", "met_at", "note"],
        ["C-1", "2026-05-01T10:00", "Coffee"],
        ["C-1", "2026-05-08T10:00", ""],
        ["C-3", "2026-05-01", "Tea"],
    ),
}


def test_importing_the_same_files_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    paths = {kind: write(tmp_path, text, f"{kind}.csv") for kind, text in FILES.items()}
    for kind in KINDS:
        report = run(engine, paths[kind], kind)
        assert report.rejected == []
        assert report.inserted == report.rows
    before = snapshot(engine, *KINDS)
    for kind in KINDS:
        report = run(engine, paths[kind], kind, now=LATER)
        assert counts(report) == (report.rows, 0, 0, report.rows, []), kind
    assert snapshot(engine, *KINDS) == before


def test_a_corrected_file_updates_only_the_changed_rows(engine: Engine, tmp_path: Path) -> None:
    header = ["id", "name", "email", "Pet Name"]
    rows = [[f"C-{n}", f"Name {n}", f"c{n}@example.com", f"Pet {n}"] for n in range(1, 6)]
    run(engine, write(tmp_path, csv_text(header, *rows)))
    rows[1][2] = "new.c2@example.com"
    rows[3][3] = "New pet"
    report = run(engine, write(tmp_path, csv_text(header, *rows)), now=LATER)
    assert counts(report) == (5, 0, 2, 3, [])
    found = stored(engine)
    assert {key: row["updated_at"] for key, row in found.items()} == {
        "C-1": NOW,
        "C-2": LATER,
        "C-3": NOW,
        "C-4": LATER,
        "C-5": NOW,
    }
    assert found["C-2"]["email"] == "new.c2@example.com"
    assert found["C-4"]["attributes"] == {"pet_name": "New pet"}
    assert {row["created_at"] for row in found.values()} == {NOW}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_the_rejects_file_can_be_corrected_and_imported(engine: Engine, tmp_path: Path) -> None:
    text = (
        "id,name,email,Pet Name\n"
        "C-1,Ann,ann@example.com,Rex\n"
        "C-2,Bob,bob-at-example.com,Tom\n"
        "\n"
        "C-3,,cat@example.com,Tibbles\n"
        "C-4,Dan,dan@example.com,Fido,extra\n"
        "C-5,Eve,eve@example.com,Nemo\n"
    )
    rejects = tmp_path / "rejects.csv"
    report = run(engine, write(tmp_path, text), rejects_path=rejects)
    assert counts(report) == (5, 3, 0, 0, [5, 6])
    assert [warning.line for warning in report.warnings] == [3]
    header, *rows = read_csv(rejects)
    assert header == ["id", "name", "email", "Pet Name", "reason"]
    assert [row[:4] for row in rows] == [
        ["C-2", "Bob", "bob-at-example.com", "Tom"],
        ["C-3", "", "cat@example.com", "Tibbles"],
        ["C-4", "Dan", "dan@example.com", "Fido"],
    ]
    reasons = [row[4] for row in rows]
    assert reasons[0].startswith(
        'warning: line 3: email: "bob-at-example.com" is not a single valid email address: '
    )
    assert reasons[0].endswith(
        "; the rest of the row was imported (correct the cell and import this file again to "
        "complete it)"
    )
    assert reasons[1:] == [
        "line 5: name: is empty",
        "line 6: has 5 fields, the header has 4 (extra cells: extra)",
    ]
    assert stored(engine)["C-2"]["email"] is None

    rows[0][2] = "bob@example.com"
    rows[1][1] = "Cat"
    corrected = write(tmp_path, csv_text(header, *rows), "corrected.csv")
    again = run(engine, corrected, rejects_path=tmp_path / "rejects-2.csv", now=LATER)
    assert counts(again) == (3, 2, 1, 0, [])
    assert again.warnings == []
    assert read_csv(tmp_path / "rejects-2.csv") == [header]
    found = stored(engine)
    assert sorted(found) == ["C-1", "C-2", "C-3", "C-4", "C-5"]
    assert found["C-2"]["email"] == "bob@example.com"
    assert {key: row["attributes"] for key, row in found.items()} == {
        "C-1": {"pet_name": "Rex"},
        "C-2": {"pet_name": "Tom"},
        "C-3": {"pet_name": "Tibbles"},
        "C-4": {"pet_name": "Fido"},
        "C-5": {"pet_name": "Nemo"},
    }


def test_an_orders_rejects_file_imports_once_the_customer_exists(
    engine: Engine, tmp_path: Path
) -> None:
    run(engine, write(tmp_path, "id,name\nC-1,Ann\n"))
    orders = write(
        tmp_path,
        "id,customer_id,placed_at,amount\n"
        "A-1,C-1,2026-03-01T10:00Z,5\n"
        "A-2,C-2,2026-03-01T11:00Z,6\n"
        "A-3,C-1,2026-03-01T12:00Z,-7\n",
        "orders.csv",
    )
    rejects = tmp_path / "orders-rejects.csv"
    report = run(engine, orders, "orders", rejects_path=rejects)
    assert counts(report) == (3, 1, 0, 0, [3, 4])
    header, *rows = read_csv(rejects)
    assert header == ["id", "customer_id", "placed_at", "amount", "reason"]
    assert sorted(rows) == [
        ["A-2", "C-2", "2026-03-01T11:00Z", "6", 'line 3: customer_id: no customer with id "C-2" '
         "(import customers first)"],
        ["A-3", "C-1", "2026-03-01T12:00Z", "'-7", 'line 4: amount: "-7" is negative'],
    ]  # fmt: skip

    run(engine, write(tmp_path, "id,name\nC-2,Bob\n"))
    again = run(engine, rejects, "orders")
    assert again.ignored_columns == []
    assert (again.rows, again.inserted, again.updated, again.unchanged) == (2, 1, 0, 0)
    assert [rejection.reason for rejection in again.rejected] == ['amount: "-7" is negative']


def test_a_dry_run_writes_nothing_and_counts_like_a_real_run(
    engine: Engine, tmp_path: Path
) -> None:
    header = ["id", "name", "email"]
    run(
        engine,
        write(tmp_path, csv_text(header, ["C-1", "Ann", "a@example.com"], ["C-2", "Bob", ""])),
    )
    before = snapshot(engine, "customers")
    path = write(
        tmp_path,
        csv_text(
            header,
            ["C-1", "Ann", "a@example.com"],  # unchanged
            ["C-2", "Bob", "b@example.com"],  # updated
            ["C-3", "Cat", "c@example.com"],  # inserted
            ["C-4", "", "d@example.com"],  # rejected
            ["C-3", "Cat", "cat@example.com"],  # updated (the later row wins)
            ["C-5", "Eve", "e@example"],  # inserted, with a warning
        ),
        "next.csv",
    )
    dry = run(engine, path, now=LATER, dry_run=True, rejects_path=tmp_path / "dry.csv")
    assert dry.dry_run
    assert snapshot(engine, "customers") == before
    real = run(engine, path, now=LATER, rejects_path=tmp_path / "real.csv")
    assert counts(dry) == counts(real) == (6, 2, 2, 1, [5])
    assert [w.line for w in dry.warnings] == [w.line for w in real.warnings] == [7]
    assert read_csv(tmp_path / "dry.csv") == read_csv(tmp_path / "real.csv")
    assert stored(engine)["C-3"]["email"] == "cat@example.com"


def test_a_dry_run_counts_like_a_real_run_when_an_id_repeats_across_batches(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path, csv_text(["id", "name"], ["C-1", "Ann"], ["C-2", "Bob"], ["C-1", "Anna"])
    )
    dry = run(engine, path, dry_run=True, batch_size=2)
    real = run(engine, path, batch_size=2)
    assert counts(real) == (3, 2, 1, 0, [])
    assert counts(dry) == counts(real)


@pytest.mark.parametrize("batch_size", [1, 2, 5000])
def test_the_later_of_two_rows_with_the_same_id_wins(
    engine: Engine, tmp_path: Path, batch_size: int
) -> None:
    text = csv_text(
        ["id", "name", "email"],
        ["C-1", "Ann", "ann@example.com"],
        ["C-2", "Bob", "bob@example.com"],
        ["C-1", "Anna", ""],
    )
    report = run(engine, write(tmp_path, text), batch_size=batch_size)
    assert counts(report) == (3, 2, 1, 0, [])
    found = stored(engine)
    assert (found["C-1"]["name"], found["C-1"]["email"]) == ("Anna", None)
    assert len(found) == 2


@pytest.mark.parametrize("batch_size", [1, 5000])
def test_a_repeated_identical_row_counts_as_unchanged_whatever_the_batch_size(
    engine: Engine, tmp_path: Path, batch_size: int
) -> None:
    text = csv_text(["id", "name"], ["C-1", "Ann"], ["C-1", "Ann"])
    report = run(engine, write(tmp_path, text), batch_size=batch_size)
    assert counts(report) == (2, 1, 0, 1, [])


def test_a_nul_byte_rejects_its_row_and_never_aborts_the_import(
    engine: Engine, tmp_path: Path
) -> None:
    """NUL is valid UTF-8 but no database text (PostgreSQL refuses it): the row must go."""
    path = tmp_path / "customers.csv"
    path.write_bytes(b"id,name\nC-1,Ann\nC-2,B\x00ob\nC-3,Cat\n")
    report = run(engine, path)
    assert [rejection.line for rejection in report.rejected] == [3]
    assert (report.rows, report.inserted) == (3, 2)
    assert sorted(stored(engine)) == ["C-1", "C-3"]


class StopOnCall:
    """A progress callback that presses Ctrl-C on its n-th call."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        if len(self.calls) == self.n:
            raise KeyboardInterrupt


def test_an_interrupted_import_keeps_whole_batches_and_resumes(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [[f"C-{n:03}", f"Customer {n}", f"c{n}@example.com"] for n in range(1, 36)]
    path = write(tmp_path, csv_text(["id", "name", "email"], *rows))
    stop = StopOnCall(2)
    with pytest.raises(KeyboardInterrupt):
        run(engine, path, progress=stop, batch_size=10)
    assert len(stop.calls) == 2
    assert sorted(stored(engine)) == [f"C-{n:03}" for n in range(1, 21)]

    progress = StopOnCall(0)
    report = run(engine, path, progress=progress, batch_size=10, now=LATER)
    assert counts(report) == (35, 15, 0, 20, [])
    found = stored(engine)
    assert sorted(found) == [f"C-{n:03}" for n in range(1, 36)]
    assert [found[f"C-{n:03}"]["created_at"] for n in (1, 20, 21, 35)] == [NOW, NOW, LATER, LATER]
    size = path.stat().st_size
    assert len(progress.calls) == 4
    assert progress.calls[-1] == (size, size)
