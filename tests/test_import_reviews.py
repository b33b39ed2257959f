"""Importing reviews: one per review id (or per customer, time and where when the file has no
id), bad rows rejected with their line, doubtful cells left out with a warning."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CONFIG_TEMPLATE, Workspace, run_cli
from tests.test_import_referrals_meetings import add_customers, rejected, run

reviews = metadata.tables["reviews"]

GOOD = (
    "id,customer_id,reviewed_at,where,url,rating,text",
    "R-1,C-1,2026-11-20,Google,https://maps.example.com/r/1,5,Wonderful care.",
    "R-2,C-4,2026-11-21T10:00,Yelp,,4,",  # Tokyo local time: 01:00 UTC
    ",C-2,2026-11-22T09:30:00Z,  Google  ,,4/5,Kind and quick.",  # no id: one is made
)


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(reviews).order_by(reviews.c.id)).all()
    return {row.external_id: dict(row._mapping) for row in rows}


def test_reviews_are_stored_with_what_is_known_of_them(engine: Engine, tmp_path: Path) -> None:
    ids = add_customers(engine, tmp_path)
    report = run(engine, "reviews", tmp_path, *GOOD)
    assert (report.rows, report.inserted, report.rejected, report.warnings) == (3, 3, [], [])
    found = stored(engine)
    first, second = found["R-1"], found["R-2"]
    assert first["customer_id"] == ids["C-1"]
    assert first["reviewed_at"] == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # London midnight
    assert (first["site"], first["url"], first["rating"], first["text"]) == (
        "Google",
        "https://maps.example.com/r/1",
        5,
        "Wonderful care.",
    )
    assert second["reviewed_at"] == datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    assert (second["site"], second["url"], second["text"]) == ("Yelp", None, None)
    [made] = [key for key in found if key not in ("R-1", "R-2")]
    assert made.startswith("auto-")
    assert (found[made]["customer_id"], found[made]["site"], found[made]["rating"]) == (
        ids["C-2"],
        "Google",
        4,
    )


def test_the_same_file_twice_adds_no_review(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    run(engine, "reviews", tmp_path, *GOOD)
    before = stored(engine)
    again = run(engine, "reviews", tmp_path, *GOOD)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert stored(engine) == before
    # a review without an id is the same review when written again in another case or spacing
    same = run(
        engine,
        "reviews",
        tmp_path,
        "customer_id,reviewed_at,where,rating",
        "C-2,2026-11-22T09:30:00Z,google,5",
    )
    assert (same.inserted, same.updated) == (0, 1)
    assert len(stored(engine)) == 3


def test_a_corrected_review_updates_it_and_a_missing_column_leaves_it(
    engine: Engine, tmp_path: Path
) -> None:
    add_customers(engine, tmp_path)
    run(engine, "reviews", tmp_path, *GOOD)
    report = run(
        engine, "reviews", tmp_path, "id,customer_id,reviewed_at,rating", "R-1,C-1,2026-11-20,4"
    )
    assert (report.inserted, report.updated) == (0, 1)
    review = stored(engine)["R-1"]
    assert (review["rating"], review["text"], review["site"]) == (4, "Wonderful care.", "Google")


NOT_A_TIME = "is not a date and time (use ISO 8601, e.g. 2027-03-01T14:30)"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("R-9,C-9,2026-11-20,Google", 'customer_id: no customer with id "C-9" (import customers '
         "first)"),
        ("R-9,C-1,,Google", "reviewed_at: is empty"),
        ("R-9,,2026-11-20,Google", "customer_id: is empty"),
        ("R-9,C-1,20/11/2026,Google", f'reviewed_at: "20/11/2026" {NOT_A_TIME}'),
        ("R-9,C-1,9999-12-31,Google", 'reviewed_at: "9999-12-31" is outside the years 1900 to '
         "2200"),
        ("R-9,C-1,2026-11-30,Google", 'reviewed_at: "2026-11-30" is in the future'),
    ],
)  # fmt: skip
def test_a_bad_review_rejects_its_row_only(
    engine: Engine, tmp_path: Path, row: str, reason: str
) -> None:
    add_customers(engine, tmp_path)
    report = run(
        engine,
        "reviews",
        tmp_path,
        "id,customer_id,reviewed_at,where",
        "R-1,C-1,2026-11-20,Google",
        row,
        "R-3,C-1,2026-11-24,Google",  # tomorrow is not yet the future (zones ahead of ours)
    )
    assert rejected(report) == [(3, reason)]
    assert sorted(stored(engine)) == ["R-1", "R-3"]


def test_doubtful_cells_are_left_out_with_a_warning_and_the_review_kept(
    engine: Engine, tmp_path: Path
) -> None:
    add_customers(engine, tmp_path)
    long_text = "word " * 1_200
    report = run(
        engine,
        "reviews",
        tmp_path,
        "id,customer_id,reviewed_at,url,rating,text",
        "R-1,C-1,2026-11-20,javascript:alert(1),4.5,Fine.",
        "R-2,C-1,2026-11-20,https://user@evil.example/,6,",
        f"R-3,C-1,2026-11-20,ftp://example.com/r,,{long_text}",
    )
    assert report.rejected == []
    warnings = [(warning.line, warning.reason) for warning in report.warnings]
    assert warnings == [
        (
            2,
            'url: "javascript:alert(1)" is not an http:// or https:// address: left out of the '
            'review; rating: "4.5" is not whole stars from 1 to 5: left out of the review',
        ),
        (
            3,
            'url: "https://user@evil.example/" carries a user name (an address that hides where '
            'it goes): left out of the review; rating: "6" is not whole stars from 1 to 5: left '
            "out of the review",
        ),
        (
            4,
            'url: "ftp://example.com/r" is not an http:// or https:// address: left out of the '
            "review; text: is 5,999 characters long: kept the first 5,000",
        ),
    ]
    found = stored(engine)
    assert [(r["url"], r["rating"]) for r in found.values()] == [(None, None)] * 3
    assert found["R-1"]["text"] == "Fine."
    assert len(found["R-3"]["text"]) == 5_000


REVIEW_EXPORT = (
    "Review No,Patient ID,Date,Platform,Stars,Comment\n"
    "G-1,C-1,2026-11-20,Google,5,Lovely\n"
    "G-2,C-7,2026-11-21,Yelp,4,Fine\n"
)


def test_a_review_export_imports_through_the_config_and_map_and_again_changes_nothing(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    url = migrated_workspace.database_url
    engine = create_store_engine(url)
    try:
        add_customers(engine, tmp_path)
    finally:
        engine.dispose()
    migrated_workspace.path.write_text(
        CONFIG_TEMPLATE.format(url=url)
        + '\n[import.reviews]\ncolumns = { "Review No" = "id", "Patient ID" = "customer_id", '
        '"Platform" = "where", "Stars" = "rating", "Comment" = "text" }\n',
        encoding="utf-8",
    )
    source, rejects = tmp_path / "google.csv", tmp_path / "rejects.csv"
    source.write_text(REVIEW_EXPORT, encoding="utf-8")
    args = ("--config", migrated_workspace.path, "import", "reviews", source)
    result = run_cli(*args, "--map", "Date=reviewed_at", "--rejects", rejects, "--format", "json")
    assert result.exit_code == 1  # G-2 names a customer the store does not have
    report = json.loads(result.stdout)
    assert (report["inserted"], report["rejected_count"]) == (1, 1)
    assert report["rejected"][0]["line"] == 3
    assert 'no customer with id "C-7"' in report["rejected"][0]["reason"]
    with rejects.open(encoding="utf-8", newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header == ["Review No", "Patient ID", "Date", "Platform", "Stars", "Comment", "reason"]
    assert row[:2] == ["G-2", "C-7"]
    again = run_cli(*args, "--map", "Date=reviewed_at", "--format", "json")
    assert json.loads(again.stdout)["unchanged"] == 1
    engine = create_store_engine(url)
    try:
        found = stored(engine)
    finally:
        engine.dispose()
    assert list(found) == ["G-1"]
    assert (found["G-1"]["site"], found["G-1"]["rating"], found["G-1"]["text"]) == (
        "Google",
        5,
        "Lovely",
    )


def test_a_mapping_to_a_column_reviews_do_not_have_is_refused(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "google.csv"
    source.write_text(REVIEW_EXPORT, encoding="utf-8")
    result = run_cli(
        "--config", migrated_workspace.path, "import", "reviews", source, "--map", "Stars=stars"
    )
    assert result.exit_code == 2
    assert '"stars" is not a column of reviews files' in result.stderr
