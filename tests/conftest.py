"""Shared fixtures: the same store tests run on a real SQLite file and on real PostgreSQL.

PostgreSQL comes from APPRECIATE_TEST_POSTGRES_URL (CI sets it); each test gets a schema of its
own, dropped afterwards, and the test fails if it left a connection open. Without the variable
the PostgreSQL variants skip, saying why.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from scheduler.cli.app import app
from scheduler.config.settings import BusinessSettings
from scheduler.store.db import create_store_engine
from scheduler.store.schema import upgrade


def adas_bakery(**changes: str) -> BusinessSettings:
    """The business most tests send for, with `changes` (validated like a config file)."""
    base = {
        "name": "Ada's Bakery",
        "sender_name": "Ada",
        "sender_email": "ada@example.com",
        "timezone": "Europe/London",
    }
    return BusinessSettings.model_validate(base | changes)


POSTGRES_ENV = "APPRECIATE_TEST_POSTGRES_URL"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _postgres_base_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return None
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def appreciate_logging_as_it_was() -> Iterator[None]:
    """`appreciate run` in-process (`run_cli`) points the `appreciate` and `apscheduler`
    loggers at the runner's stderr, which closes when the command ends: put them back after
    each test, so later tests' logs reach pytest (caplog) instead of a closed stream."""
    loggers = [logging.getLogger(name) for name in ("appreciate", "apscheduler")]
    kept = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, kept, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = _postgres_base_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set, so the PostgreSQL variant cannot run")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict(
            {"options": f"-csearch_path={schema}", "application_name": schema}
        )
        yield url.render_as_string(hide_password=False)
        left_open = _connections_still_open(admin, schema)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        assert left_open == 0, f"the test left {left_open} PostgreSQL connection(s) open"
    finally:
        admin.dispose()


def _connections_still_open(admin: Engine, application_name: str) -> int:
    """How many connections the test left open. A backend leaves pg_stat_activity shortly
    after its client disconnects, so this waits (at most 5 s) for closed ones to go."""
    deadline = time.monotonic() + 5
    while True:
        with admin.connect() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            ).scalar_one()
        if count == 0 or time.monotonic() > deadline:
            return int(count)
        time.sleep(0.05)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on an up-to-date, empty store."""
    store = create_store_engine(database_url)
    upgrade(store)
    yield store
    store.dispose()


@dataclass
class Workspace:
    """A config file in a temporary folder, pointing at the test's database."""

    path: Path
    database_url: str

    @property
    def folder(self) -> Path:
        return self.path.parent


CONFIG_TEMPLATE = """
[database]
url = "{url}"

[business]
name = "Ada's Bakery"
sender_name = "Ada"
sender_email = "ada@example.com"
timezone = "Europe/London"
"""


@pytest.fixture
def workspace(tmp_path: Path, database_url: str) -> Workspace:
    """A config for the parametrised database, not yet migrated."""
    path = tmp_path / "appreciate.toml"
    path.write_text(CONFIG_TEMPLATE.format(url=database_url), encoding="utf-8")
    return Workspace(path=path, database_url=database_url)


@pytest.fixture
def migrated_workspace(workspace: Workspace) -> Workspace:
    store = create_store_engine(workspace.database_url)
    upgrade(store)
    store.dispose()
    return workspace


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | Path, env: dict[str, str | None] | None = None, input: str | None = None
) -> CliResult:
    """Run `appreciate ARGS` in-process, with stdout and stderr kept apart (`env`: variables to
    set, or with None to unset; `input`: what is typed at its prompts)."""
    runner = CliRunner()
    result = runner.invoke(
        app,
        [str(arg) for arg in args],
        input=input,
        env=env,
        catch_exceptions=False,
        prog_name="appreciate",
    )
    return CliResult(result.exit_code, result.stdout, result.stderr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the browser tests saved their screenshots (tests/browser_site.py), if they ran."""
    browser_site = sys.modules.get("tests.browser_site")
    shots: list[Path] = getattr(browser_site, "SCREENSHOTS", [])
    if shots:
        folders = ", ".join(sorted({str(path.parent) for path in shots}))
        terminalreporter.write_sep("-", "browser screenshots")
        count = len(set(shots))
        terminalreporter.write_line(f"{count} page{'s' * (count != 1)} saved as PNG in {folders}")
