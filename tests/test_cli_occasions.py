"""`appreciate detect` and `appreciate plan` as a person runs them, on both databases."""

from __future__ import annotations

import json

from sqlalchemy import insert

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.test_cli import count_rows

NOW = "2027-06-15T07:00:00Z"


def add_birthday_today(workspace: Workspace) -> None:
    engine = create_store_engine(workspace.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["customers"]).values(
                    external_id="C-1",
                    name="Ann",
                    email="ann@example.com",
                    birth_month=6,
                    birth_day=15,
                    attributes={},
                )
            )
    finally:
        engine.dispose()


def test_detect_records_each_note_once_and_says_so(migrated_workspace: Workspace) -> None:
    add_birthday_today(migrated_workspace)
    config = migrated_workspace.path
    first = run_cli("--config", config, "detect", "--now", NOW, "--format", "json")
    again = run_cli("--config", config, "detect", "--now", NOW, "--format", "json")
    assert first.exit_code == again.exit_code == 0
    added = {row["kind"]: row["added"] for row in json.loads(first.stdout)["kinds"]}
    assert added["birthday"] == 1
    assert all(row["added"] == 0 for row in json.loads(again.stdout)["kinds"])
    assert count_rows(migrated_workspace.database_url, "touches") == 1


def test_detect_prints_a_table_by_default(migrated_workspace: Workspace) -> None:
    add_birthday_today(migrated_workspace)
    result = run_cli("--config", migrated_workspace.path, "detect", "--now", NOW)
    assert result.exit_code == 0
    assert "birthday" in result.stdout
    assert "suppressed" in result.stdout


def test_detect_at_a_moment_before_the_last_run_says_there_is_nothing_to_do(
    migrated_workspace: Workspace,
) -> None:
    """It printed "Detected from 2027-06-15 07:00 to 2027-06-08 07:00 UTC" and a table of
    zeros, as if a week had been looked at backwards."""
    add_birthday_today(migrated_workspace)
    config = migrated_workspace.path
    assert run_cli("--config", config, "detect", "--now", NOW).exit_code == 0
    earlier = run_cli("--config", config, "detect", "--now", "2027-06-08T07:00:00Z")
    assert earlier.exit_code == 0, earlier.stderr
    assert earlier.stdout.strip() == (
        "Nothing to detect: the last run reached 2027-06-15 07:00 UTC, "
        "which is not before 2027-06-08 07:00 UTC."
    )
    assert count_rows(migrated_workspace.database_url, "touches") == 1


def test_plan_shows_the_day_and_writes_nothing(migrated_workspace: Workspace) -> None:
    add_birthday_today(migrated_workspace)
    config = migrated_workspace.path
    result = run_cli("--config", config, "plan", "--now", NOW, "--format", "json")
    assert result.exit_code == 0
    (note,) = json.loads(result.stdout)["notes"]
    assert (note["customer"], note["occasion"], note["status"]) == (
        "C-1",
        "birthday:2027",
        "pending",
    )
    assert note["due_at"] == "2027-06-15T08:00:00+00:00"
    assert count_rows(migrated_workspace.database_url, "touches") == 0
    table = run_cli("--config", config, "plan", "--date", "2027-06-15", "--now", NOW)
    assert "Plan for 2027-06-15: 1 to send" in table.stdout


def test_plan_refuses_a_date_it_cannot_read(migrated_workspace: Workspace) -> None:
    result = run_cli("--config", migrated_workspace.path, "plan", "--date", "15/06/2027")
    assert result.exit_code == 2
    assert '"15/06/2027" is not a date (YYYY-MM-DD)' in result.stderr
