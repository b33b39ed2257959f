"""`appreciate db backup`: a consistent, checked, private copy of a SQLite store, taken while
another process writes to it; never over an existing file."""

from __future__ import annotations

import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

from sqlalchemy import select

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import open_store
from tests.conftest import CONFIG_TEMPLATE, run_cli
from tests.test_detection import add_customer

customers = metadata.tables["customers"]


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A config and its migrated SQLite store with two customers: (config, store)."""
    store = tmp_path / "appreciate.db"
    config = tmp_path / "appreciate.toml"
    config.write_text(CONFIG_TEMPLATE.format(url=f"sqlite:///{store}"), encoding="utf-8")
    assert run_cli("--config", config, "db", "upgrade").exit_code == 0
    engine = create_store_engine(f"sqlite:///{store}")
    add_customer(engine, "C-1")
    add_customer(engine, "C-2")
    engine.dispose()
    return config, store


def names(path: Path) -> list[str]:
    engine = open_store(f"sqlite:///{path}")  # refuses a file without the current schema
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(select(customers.c.external_id).order_by("id")).scalars()
            )
    finally:
        engine.dispose()


def test_a_backup_while_another_process_writes_holds_every_committed_change(
    tmp_path: Path,
) -> None:
    config, store = workspace(tmp_path)
    writer = sqlite3.connect(store, isolation_level=None)  # keeps its changes in the -wal
    with closing(writer):
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(
            "INSERT INTO customers (external_id, name, email, attributes, created_at, updated_at)"
            " SELECT 'C-3', name, 'c3@example.com', attributes, created_at, updated_at"
            " FROM customers WHERE external_id = 'C-1'"
        )
        writer.execute("BEGIN IMMEDIATE")  # under way: not in the copy
        writer.execute("DELETE FROM customers")
        done = run_cli("--config", config, "db", "backup", tmp_path / "copy.db")
        writer.execute("ROLLBACK")
    assert done.exit_code == 0, done.stderr
    copy = tmp_path / "copy.db"
    assert done.stdout.strip() == (
        f"Backed up the store to {copy}: 3 customers, 0 notes, "
        f"{copy.stat().st_size / 1_000_000:,.1f} MB."
    )
    assert names(copy) == ["C-1", "C-2", "C-3"]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    config, store = workspace(tmp_path)
    existing = tmp_path / "last-week.db"
    existing.write_bytes(b"last week's backup")
    for target in (existing, store):
        refused = run_cli("--config", config, "db", "backup", target)
        assert refused.exit_code == 1
        assert f"{target} already exists; name a new file (nothing was written)" in refused.stderr
    assert existing.read_bytes() == b"last week's backup"
    assert names(store) == ["C-1", "C-2"]


def test_a_backup_killed_halfway_leaves_nothing_that_blocks_the_next(tmp_path: Path) -> None:
    config, _ = workspace(tmp_path)
    (tmp_path / ".copy.db.partial").write_bytes(b"half a copy")
    done = run_cli("--config", config, "db", "backup", "--format", "json", tmp_path / "copy.db")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["customers"] == 2
    assert not (tmp_path / ".copy.db.partial").exists()
    assert names(tmp_path / "copy.db") == ["C-1", "C-2"]


def test_a_dash_is_no_file_name_here(tmp_path: Path) -> None:
    config, _ = workspace(tmp_path)
    refused = run_cli("--config", config, "db", "backup", "-")
    assert refused.exit_code == 1
    assert "a backup is never written to standard output" in refused.stderr
    assert not Path("-").exists()


def test_a_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    config, _ = workspace(tmp_path)
    refused = run_cli("--config", config, "db", "backup", tmp_path / "nope" / "copy.db")
    assert refused.exit_code == 1
    assert f"the folder {tmp_path / 'nope'} does not exist" in refused.stderr


def test_a_name_too_long_for_the_temporary_copy_is_an_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    config, _ = workspace(tmp_path)
    long = tmp_path / f"{'x' * 247}.db"  # a valid name; ".NAME.partial" is not
    refused = run_cli("--config", config, "db", "backup", long)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: cannot back up ")
    assert refused.stderr.rstrip().endswith(": File name too long")
    assert not long.exists()


def test_a_postgresql_store_is_pointed_at_pg_dump(tmp_path: Path) -> None:
    config = tmp_path / "appreciate.toml"
    url = "postgresql://nobody@127.0.0.1:1/none"
    config.write_text(CONFIG_TEMPLATE.format(url=url), encoding="utf-8")
    refused = run_cli("--config", config, "db", "backup", tmp_path / "copy.db")
    assert refused.exit_code == 1
    assert "back up PostgreSQL with its own tools, e.g. `pg_dump" in refused.stderr
    assert not (tmp_path / "copy.db").exists()


def test_paths_with_characters_special_in_sqlite_uris_are_plain_names(tmp_path: Path) -> None:
    folder = tmp_path / "shop #2"
    folder.mkdir()
    config, _ = workspace(folder)
    for name in ("copy #1.db", "copy?.db", "copy 100%.db"):
        done = run_cli("--config", config, "db", "backup", folder / name)
        assert done.exit_code == 0, done.stderr
        with closing(sqlite3.connect(folder / name)) as copy:
            held = copy.execute("SELECT external_id FROM customers ORDER BY id").fetchall()
        assert held == [("C-1",), ("C-2",)]
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith((".", "copy"))) == [
        "copy #1.db",
        "copy 100%.db",
        "copy?.db",
    ]
