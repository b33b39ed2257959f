"""Schema versions: applying Alembic migrations and refusing an outdated store.

Any command that needs the store calls `open_store`, which stops with a message naming
`appreciate db upgrade` when the database is behind this version of appreciate (or has no schema
yet), and with a different message when it is ahead (migrated by a newer appreciate). It also
builds any index an interrupted bulk import left out (`scheduler.store.indexes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from scheduler.errors import SchemaOutdated, SchemaTooNew
from scheduler.store.db import create_store_engine, display_url
from scheduler.store.indexes import restore_missing_indexes

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None when empty) and the one appreciate needs."""

    current: str | None
    head: str
    known: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration this version of appreciate ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migrations found")
    return head


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's revision without changing anything."""
    scripts = ScriptDirectory.from_config(_alembic_config())
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    known = current is None or any(s.revision == current for s in scripts.walk_revisions())
    return SchemaState(current=current, head=head_revision(), known=known)


def upgrade(engine: Engine) -> SchemaState:
    """Apply every pending migration in one transaction; return the state before them.

    A database migrated by a newer appreciate is refused rather than touched.
    """
    before = schema_state(engine)
    if not before.known and before.current is not None:
        raise SchemaTooNew(display_url(str(engine.url)), before.current)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before


def ensure_current(engine: Engine) -> None:
    """Raise SchemaOutdated (or SchemaTooNew) unless the schema is exactly this version's."""
    state = schema_state(engine)
    url = display_url(str(engine.url))
    if state.up_to_date:
        return
    if not state.known and state.current is not None:
        raise SchemaTooNew(url, state.current)
    raise SchemaOutdated(url, state.current, state.head)


def open_store(url: str) -> Engine:
    """An engine on an up-to-date store, with every declared index; the caller disposes of it."""
    engine = create_store_engine(url)
    try:
        ensure_current(engine)
        restore_missing_indexes(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
