"""Importing referrals (one per referred customer) and meetings (one per customer and moment)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from scheduler.importer import ImportReport, import_csv
from scheduler.store.models import metadata
from tests.conftest import NOW

LONDON = ZoneInfo("Europe/London")
customers = metadata.tables["customers"]
referrals = metadata.tables["referrals"]
meetings = metadata.tables["meetings"]


def run(engine: Engine, kind: str, tmp_path: Path, *lines: str) -> ImportReport:
    path = tmp_path / f"{kind}.csv"
    path.write_bytes("".join(f"{line}\n" for line in lines).encode("utf-8"))
    return import_csv(engine, kind, path, now=NOW, business_zone=LONDON)


def add_customers(engine: Engine, tmp_path: Path) -> dict[str, int]:
    """Ann, Bob and Cat in London (the business zone); Kenji in Tokyo."""
    report = run(
        engine,
        "customers",
        tmp_path,
        "id,name,timezone",
        "C-1,Ann,",
        "C-2,Bob,",
        "C-3,Cat,",
        "C-4,Kenji,Asia/Tokyo",
    )
    assert report.inserted == 4
    with engine.connect() as connection:
        rows = connection.execute(select(customers.c.external_id, customers.c.id)).all()
    return {row.external_id: row.id for row in rows}


def stored_referrals(engine: Engine) -> list[tuple[int, int, date]]:
    with engine.connect() as connection:
        query = select(referrals.c.referrer_id, referrals.c.referred_id, referrals.c.referred_on)
        rows = connection.execute(query.order_by(referrals.c.referred_id)).all()
    return [(row.referrer_id, row.referred_id, row.referred_on) for row in rows]


def stored_meetings(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(meetings).order_by(meetings.c.met_at)).all()
    return [dict(row._mapping) for row in rows]


def rejected(report: ImportReport) -> list[tuple[int, str]]:
    return [(rejection.line, rejection.reason) for rejection in report.rejected]


def test_referrals_link_customers_by_external_id(engine: Engine, tmp_path: Path) -> None:
    ids = add_customers(engine, tmp_path)
    report = run(
        engine,
        "referrals",
        tmp_path,
        "referrer_id,referred_id,referred_on",
        "C-1,C-2,2026-02-01",
        "C-1,C-3,2026-11-23",  # today (in the business zone) is not in the future
    )
    assert (report.rows, report.inserted, report.rejected) == (2, 2, [])
    assert stored_referrals(engine) == [
        (ids["C-1"], ids["C-2"], date(2026, 2, 1)),
        (ids["C-1"], ids["C-3"], date(2026, 11, 23)),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("C-2,C-2,2026-02-01", "referred_id: a customer cannot refer themselves"),
        ("C-9,C-2,2026-02-01", 'referrer_id: no customer with id "C-9" (import customers first)'),
        ("C-2,C-9,2026-02-01", 'referred_id: no customer with id "C-9" (import customers first)'),
        (
            "C-8,C-9,2026-02-01",
            'referrer_id: no customer with id "C-8" (import customers first); '
            'referred_id: no customer with id "C-9" (import customers first)',
        ),
        ("C-2,C-3,2026-11-24", 'referred_on: "2026-11-24" is in the future'),
        ("C-2,C-3,", "referred_on: is empty"),
        ("C-2,C-3,1st of May", 'referred_on: "1st of May" is not a date (use YYYY-MM-DD)'),
        (",C-3,2026-02-01", "referrer_id: is empty"),
    ],
)
def test_a_bad_referral_rejects_its_row_only(
    engine: Engine, tmp_path: Path, row: str, reason: str
) -> None:
    ids = add_customers(engine, tmp_path)
    report = run(
        engine,
        "referrals",
        tmp_path,
        "referrer_id,referred_id,referred_on",
        "C-1,C-4,2026-01-01",
        row,
        "C-1,C-1,2026-01-01",  # a second bad row, after the one under test
    )
    assert rejected(report) == [(3, reason), (4, "referred_id: a customer cannot refer themselves")]
    assert stored_referrals(engine) == [(ids["C-1"], ids["C-4"], date(2026, 1, 1))]


def test_a_new_referrer_for_the_same_customer_updates_the_referral(
    engine: Engine, tmp_path: Path
) -> None:
    ids = add_customers(engine, tmp_path)
    header = "referrer_id,referred_id,referred_on"
    first = run(engine, "referrals", tmp_path, header, "C-1,C-2,2026-02-01", "C-1,C-3,2026-02-01")
    assert first.inserted == 2
    second = run(engine, "referrals", tmp_path, header, "C-4,C-2,2026-02-03", "C-1,C-3,2026-02-01")
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    assert stored_referrals(engine) == [
        (ids["C-4"], ids["C-2"], date(2026, 2, 3)),
        (ids["C-1"], ids["C-3"], date(2026, 2, 1)),
    ]


MEETINGS = (
    "customer_id,met_at,note",
    "C-1,2026-05-01T10:00,Coffee",  # London summer time: 09:00 UTC
    "C-1,2026-05-08T10:00,Lunch",
    "C-4,2026-05-01T10:00,Tea",  # Tokyo: 01:00 UTC
)


def test_one_customer_at_two_times_is_two_meetings_in_their_zone(
    engine: Engine, tmp_path: Path
) -> None:
    ids = add_customers(engine, tmp_path)
    report = run(engine, "meetings", tmp_path, *MEETINGS)
    assert (report.rows, report.inserted, report.rejected) == (3, 3, [])
    assert [(m["customer_id"], m["met_at"], m["note"]) for m in stored_meetings(engine)] == [
        (ids["C-4"], datetime(2026, 5, 1, 1, 0, tzinfo=UTC), "Tea"),
        (ids["C-1"], datetime(2026, 5, 1, 9, 0, tzinfo=UTC), "Coffee"),
        (ids["C-1"], datetime(2026, 5, 8, 9, 0, tzinfo=UTC), "Lunch"),
    ]


def test_the_same_meetings_twice_change_nothing(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    run(engine, "meetings", tmp_path, *MEETINGS)
    before = stored_meetings(engine)
    report = run(engine, "meetings", tmp_path, *MEETINGS)
    assert (report.rows, report.inserted, report.updated, report.unchanged) == (3, 0, 0, 3)
    assert stored_meetings(engine) == before


def test_the_same_moment_written_another_way_is_the_same_meeting(
    engine: Engine, tmp_path: Path
) -> None:
    add_customers(engine, tmp_path)
    run(engine, "meetings", tmp_path, *MEETINGS)
    report = run(
        engine,
        "meetings",
        tmp_path,
        "customer_id,met_at,note",
        "C-1,2026-05-01T09:00:00Z,Coffee",
        "C-1,2026-05-08T11:00+02:00,Lunch",
        "C-4,2026-05-01T10:00:00+09:00,Tea",
    )
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 3)
    assert len(stored_meetings(engine)) == 3


def test_a_changed_note_updates_its_meeting(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    run(engine, "meetings", tmp_path, *MEETINGS)
    changed = [*MEETINGS[:2], "C-1,2026-05-08T10:00,Long lunch", MEETINGS[3]]
    report = run(engine, "meetings", tmp_path, *changed)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 2)
    assert [m["note"] for m in stored_meetings(engine)] == ["Tea", "Coffee", "Long lunch"]
    # a file without the note column leaves the notes alone
    report = run(engine, "meetings", tmp_path, "customer_id,met_at", "C-1,2026-05-08T10:00")
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 1)
    assert [m["note"] for m in stored_meetings(engine)] == ["Tea", "Coffee", "Long lunch"]


def test_a_bad_meeting_rejects_its_row_only(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    report = run(
        engine,
        "meetings",
        tmp_path,
        "customer_id,met_at,note",
        "C-1,2026-05-01T10:00,Coffee",
        "C-9,2026-05-01T10:00,Ghost",
        "C-2,,Nothing",
        "C-2,next Tuesday,Soon",
        "C-3,2026-05-01,All day",
    )
    assert rejected(report) == [
        (3, 'customer_id: no customer with id "C-9" (import customers first)'),
        (4, "met_at: is empty"),
        (
            5,
            'met_at: "next Tuesday" is not a date and time (use ISO 8601, e.g. 2027-03-01T14:30)',
        ),
    ]
    assert [(m["note"], m["met_at"]) for m in stored_meetings(engine)] == [
        ("All day", datetime(2026, 4, 30, 23, 0, tzinfo=UTC)),
        ("Coffee", datetime(2026, 5, 1, 9, 0, tzinfo=UTC)),
    ]
