"""`appreciate log` and `appreciate status` read a SQLite store the quick way (the standard
library's sqlite3, no SQLAlchemy: `scheduler.service.sqlite_reads`) and give exactly the answers
of the full way (`sent_log.log_rows`, `queue_status.queue_status`), for any filter, on a store
with ties, odd reasons and every status; anything the quick way cannot read (another schema
version, not a store, PostgreSQL, a URL in the environment) goes the full way."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text

from scheduler.config.locate import sqlite_store
from scheduler.delivery.log_filter import LogFilter
from scheduler.delivery.sent_log import log_rows
from scheduler.delivery.throttle import PAUSED, THROTTLED
from scheduler.notes.template_failures import TEMPLATE_FAILURE
from scheduler.service import sqlite_reads
from scheduler.service.queue_report import LAST_CYCLE
from scheduler.service.queue_status import queue_status
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import head_revision, upgrade
from scheduler.store.schema_head import SCHEMA_HEAD
from scheduler.vocabulary import OCCASION_KINDS, STATUSES
from tests.conftest import CONFIG_TEMPLATE, run_cli

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 40
CUSTOMERS = ("C-1", "C-2", "C-3", "C_4", "C%5")
ODD_REASONS = (
    None,
    "250 2.0.0 OK",
    f"{TEMPLATE_FAILURE}birthday.j2:3: 'dentist' is undefined",
    f"{TEMPLATE_FAILURE}order_thanks.j2:9: 100% _wrong_",
    "Template problem: birthday.j2:1: not ours (another case)",
    "template problem_ lookalike",
)


def _populate(engine: Engine, seed: int = 7) -> None:
    """Notes of every status, kind and channel over DAYS days, with equal `updated_at` values
    (ties in the log's order), midnight due times, replies, odd reasons and the shared state
    `status` reads."""
    rng = random.Random(seed)
    tables = metadata.tables
    with engine.begin() as connection:
        connection.execute(
            insert(tables["customers"]),
            [
                {"external_id": external, "name": f"Customer {external}", "attributes": {}}
                for external in CUSTOMERS
            ],
        )
        notes = []
        for number in range(300):
            due = START + timedelta(days=rng.randrange(DAYS), hours=rng.choice([0, 0, 9, 23]))
            updated = START + timedelta(hours=rng.randrange(DAYS * 24 // 7) * 7)  # many ties
            notes.append(
                {
                    "customer_id": rng.randrange(1, len(CUSTOMERS) + 1),
                    "kind": rng.choice(OCCASION_KINDS),
                    "occasion_key": f"k:{number}",
                    "status": rng.choice(STATUSES),
                    "channel": rng.choice(["email", "email", "card", "call"]),
                    "reason": rng.choice(ODD_REASONS),
                    "subject": rng.choice([None, "Thank you", "Happy birthday\x1b[31m"]),
                    "due_at": due,
                    "sent_at": updated if rng.random() < 0.5 else None,
                    "replied_at": updated + timedelta(hours=2) if rng.random() < 0.2 else None,
                    "attempts": rng.randrange(4),
                    "created_at": START,
                    "updated_at": updated,
                }
            )
        connection.execute(insert(tables["touches"]), notes)
        replied = [n for n in range(1, 301) if rng.random() < 0.15]
        connection.execute(
            insert(tables["inbound_messages"]),
            [
                {
                    "received_at": START,
                    "digest": f"{n:064d}",
                    "kind": rng.choice(["reply", "reply", "bounce"]),
                    "seen_as": "reply",
                    "touch_id": n,
                }
                for n in replied
            ],
        )
        at = START + timedelta(days=DAYS)
        state = [
            (LAST_CYCLE, json.dumps({"at": at.isoformat(), "added": {}, "outcomes": {}})),
            (PAUSED, "the server refused the login"),
            (
                THROTTLED,
                json.dumps({"until": at.isoformat(), "reason": "450 too much", "in_a_row": 2}),
            ),
        ]
        connection.execute(
            insert(tables["app_state"]),
            [{"name": name, "value": value, "updated_at": at} for name, value in state],
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    """One populated SQLite store for the module (the filters are what varies)."""
    path = tmp_path_factory.mktemp("quick") / "store.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    _populate(engine)
    yield engine, path
    engine.dispose()


def _both_logs(
    store: tuple[Engine, Path], wanted: LogFilter
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    engine, path = store
    with engine.connect() as connection:
        full = log_rows(connection, wanted)
    with sqlite_reads.open_quick(path) as quick:
        assert quick is not None
        return full, sqlite_reads.log_rows(quick, wanted)


days = st.dates(START.date() - timedelta(days=2), START.date() + timedelta(days=DAYS + 2))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.none() | st.sampled_from(STATUSES),
    kind=st.none() | st.sampled_from(OCCASION_KINDS),
    customer=st.none() | st.sampled_from([*CUSTOMERS, "C-9", "C%"]),
    since=st.none() | days,
    until=st.none() | days | st.just(date.max),
    limit=st.sampled_from([0, 1, 7, 50]),
    replied=st.booleans(),
    after=st.none() | st.tuples(st.integers(0, DAYS * 24), st.integers(1, 320)),
)
def test_the_quick_log_gives_the_same_notes_in_the_same_order_for_any_filter(
    store: tuple[Engine, Path],
    status: str | None,
    kind: str | None,
    customer: str | None,
    since: date | None,
    until: date | None,
    limit: int,
    replied: bool,
    after: tuple[int, int] | None,
) -> None:
    wanted = LogFilter(
        status,
        kind,
        customer,
        since,
        until,
        limit,
        replied=replied,
        after=(START + timedelta(hours=after[0]), after[1]) if after else None,
    )
    full, quick = _both_logs(store, wanted)
    assert quick == full


def test_the_quick_log_reads_every_note_and_chosen_ones(store: tuple[Engine, Path]) -> None:
    full, quick = _both_logs(store, LogFilter(limit=0))
    assert len(full) == 300
    assert quick == full
    full, quick = _both_logs(store, LogFilter(limit=0, touch_ids=(3, 5, 299, 1000)))
    assert quick == full
    assert sorted(row["id"] for row in quick) == [3, 5, 299]


def test_the_quick_status_is_the_full_status(store: tuple[Engine, Path]) -> None:
    engine, path = store
    with engine.connect() as connection:
        full = queue_status(connection)
    with sqlite_reads.open_quick(path) as quick:
        assert quick is not None
        found = sqlite_reads.queue_status(quick)
    assert found == full
    assert found.template_failures, "the store holds template failures to compare"
    assert found.by_hand, "the store holds cards and calls waiting"
    assert found.paused
    assert found.throttled
    assert found.replies
    assert found.last_cycle


def test_the_quick_status_of_an_empty_store_is_the_full_status(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        full = queue_status(connection)
    engine.dispose()
    with sqlite_reads.open_quick(path) as quick:
        assert quick is not None
        assert sqlite_reads.queue_status(quick) == full


def test_a_status_outside_the_vocabulary_is_counted_the_same(tmp_path: Path) -> None:
    """Something else wrote a status appreciate does not know: both ways count it."""
    path = tmp_path / "odd.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    _populate(engine, seed=3)
    with engine.begin() as connection:
        connection.execute(text("UPDATE touches SET status = 'archived' WHERE id % 10 = 0"))
        connection.execute(text("UPDATE touches SET status = 'aaa' WHERE id = 1"))
        full = queue_status(connection)
    engine.dispose()
    with sqlite_reads.open_quick(path) as quick:
        assert quick is not None
        found = sqlite_reads.queue_status(quick)
    assert found.by_status == full.by_status
    assert found.by_status["archived"] == 30
    assert found.by_status["aaa"] == 1


def test_the_schema_head_is_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_HEAD


def test_a_store_the_quick_way_cannot_read_is_left_to_the_full_way(tmp_path: Path) -> None:
    assert _opens(tmp_path / "missing.db") is False
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert _opens(garbage) is False
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert _opens(empty) is False  # no schema yet
    old = tmp_path / "old.db"
    engine = create_store_engine(f"sqlite:///{old}")
    upgrade(engine)
    engine.dispose()
    assert _opens(old) is True
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0007'")
    assert _opens(old) is False


def _opens(path: Path) -> bool:
    with sqlite_reads.open_quick(path) as quick:
        return quick is not None


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("", "{folder}/appreciate.db"),
        ('url = ""', "{folder}/appreciate.db"),
        ('url = "sqlite:///notes/store.db"', "{folder}/notes/store.db"),
        ('url = "sqlite:////var/lib/appreciate/store.db"', "/var/lib/appreciate/store.db"),
        ('url = "sqlite:///store.db?mode=ro"', None),
        ('url = "sqlite:///:memory:"', None),
        ('url = "postgresql://appreciate@db/appreciate"', None),
        ('url_env = "APPRECIATE_DB"', None),
        ("url = 5", None),
        ('url = "sqlite:///unclosed', None),
    ],
)
def test_the_quick_way_finds_a_plain_sqlite_store_only(
    tmp_path: Path, database: str, expected: str | None
) -> None:
    config = tmp_path / "appreciate.toml"
    config.write_text(f"[database]\n{database}\n", encoding="utf-8")
    found = sqlite_store(config)
    assert found == (Path(expected.format(folder=tmp_path)) if expected else None)


def _workspace(tmp_path: Path) -> Path:
    config = tmp_path / "appreciate.toml"
    config.write_text(CONFIG_TEMPLATE.format(url=""), encoding="utf-8")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'appreciate.db'}")
    upgrade(engine)
    _populate(engine)
    engine.dispose()
    return config


HEAVY = {"sqlalchemy", "sqlmodel", "alembic", "pydantic", "numpy"}
"""What `log` and `status` must start without (typer from 0.29 on loads pydantic for every
option: pyproject.toml keeps it below)."""


def test_log_and_status_start_without_sqlalchemy_or_pydantic(tmp_path: Path) -> None:
    """The point of the quick way: neither command loads SQLAlchemy, the models, Alembic or
    pydantic (a third of a second of every start before)."""
    config = _workspace(tmp_path)
    for command in (["log"], ["status"], ["log", "--status", "failed", "--format", "json"]):
        done = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "scheduler",
                "--config",
                str(config),
                *command,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=os.environ | {"COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
        heavy = {name for name in loaded if name.split(".")[0] in HEAVY}
        assert not heavy, (command, sorted(heavy)[:5])
        assert "scheduler.store.models" not in loaded


def test_log_and_status_say_the_same_either_way(tmp_path: Path) -> None:
    """The commands' own output, quick (a plain SQLite URL) and full (the same store named
    through url_env, which the quick way leaves alone)."""
    config = _workspace(tmp_path)
    full_config = tmp_path / "full.toml"
    full_config.write_text(
        config.read_text(encoding="utf-8").replace('url = ""', 'url_env = "STORE_URL"'),
        encoding="utf-8",
    )
    env: dict[str, str | None] = {"STORE_URL": f"sqlite:///{tmp_path / 'appreciate.db'}"}
    for command in (
        ["log", "--limit", "0", "--format", "json"],
        ["log", "--customer", "C-2", "--since", "2026-10-05", "--format", "csv"],
        ["log", "--replied"],
        ["status", "--format", "json"],
        ["status"],
    ):
        quick = run_cli("--config", config, *command)
        full = run_cli("--config", full_config, *command, env=env)
        assert quick.exit_code == full.exit_code == 0, quick.stderr + full.stderr
        assert quick.stdout == full.stdout
        assert quick.stderr == full.stderr


def test_a_store_at_an_older_schema_still_gets_the_upgrade_advice(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    with sqlite3.connect(tmp_path / "appreciate.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0007'")
    for command in ("log", "status"):
        result = run_cli("--config", config, command)
        assert result.exit_code != 0
        assert "appreciate db upgrade" in result.stderr
