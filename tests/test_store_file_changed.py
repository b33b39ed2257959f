"""A SQLite store file deleted, moved away or replaced (a backup copied over it) while appreciate
has it open: every transaction fails, saying so, instead of writing on into a file nobody will
see again; no empty file appears in its place; an opt-out that arrives meanwhile is kept."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from scheduler.clock import FixedClock
from scheduler.store.db import create_store_engine, store_failure, write_transaction
from scheduler.store.models import metadata
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.store.schema import upgrade
from scheduler.web.app import create_app
from scheduler.web.unsubscribe import ONE_CLICK_TEXT
from tests.test_detection import add_customer
from tests.test_unsubscribe_page import NOW, ONE_CLICK, SETTINGS, opted_out_at, token_of

customers = metadata.tables["customers"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """A migrated SQLite store with one customer, open: (engine, file)."""
    path = tmp_path / "appreciate.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    add_customer(engine, "C-1", email="dana.brooks@example.org")
    yield engine, path
    engine.dispose()


def test_a_store_replaced_by_a_backup_is_never_written_by_the_engine_that_had_it_open(
    store: tuple[Engine, Path], tmp_path: Path
) -> None:
    """Was: writes went on into the old, unlinked file, lost at the next start."""
    engine, path = store
    backup = tmp_path / "backup.db"
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    add_customer(engine, "C-2")  # after the backup
    restored = backup.read_bytes()
    os.replace(backup, path)  # the owner restores it while the service runs
    with pytest.raises(OperationalError) as raised:
        add_customer(engine, "C-3")
    assert store_failure(raised.value) == (
        f"the store {path} was replaced by another file while appreciate had it open; nothing is"
        " read or written until appreciate is restarted (then it opens the file now there)"
    )
    with pytest.raises(OperationalError), engine.connect() as connection:  # reads too
        connection.execute(select(customers.c.id)).all()
    assert path.read_bytes() == restored  # untouched


def test_a_deleted_store_is_not_recreated_empty_in_its_place(
    store: tuple[Engine, Path],
) -> None:
    engine, path = store
    path.unlink()
    engine.dispose()  # every connection is new from here: none would find the old file
    with pytest.raises(OperationalError) as raised, write_transaction(engine):
        pass
    assert "was deleted or moved away while appreciate had it open" in str(
        store_failure(raised.value)
    )
    assert not path.exists()


def test_an_opt_out_that_arrives_meanwhile_is_kept_for_the_restarted_service(
    store: tuple[Engine, Path], tmp_path: Path
) -> None:
    engine, path = store
    token = token_of(engine, 1)
    spool = OptOutSpool(tmp_path / "appreciate.db.opt-outs")
    app = create_app(engine, SETTINGS, FixedClock(NOW), spool=spool)
    moved = tmp_path / "moved.db"
    shutil.copy(path, moved)
    os.replace(moved, path)
    answer = TestClient(app).post(f"/u/{token}", data=ONE_CLICK)
    assert (answer.status_code, answer.text) == (200, ONE_CLICK_TEXT)
    assert spool.waiting() == 1
    restarted = create_store_engine(f"sqlite:///{path}")
    try:
        spool.replay(restarted, NOW)
        assert opted_out_at(restarted, 1) == NOW
    finally:
        restarted.dispose()
