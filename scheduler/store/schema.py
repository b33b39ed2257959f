"""Schema versions: applying Alembic migrations and refusing an outdated store.

Any command that needs the store calls `open_store`, which stops with a message naming
`appreciate db upgrade` when the database is behind this version of appreciate (or has no schema
yet), and with a different message when it is ahead (migrated by a newer appreciate). It also
builds any index an interrupted bulk import left out (`scheduler.store.indexes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from scheduler.errors import SchemaOutdated, SchemaTooNew
from scheduler.store.db import create_store_engine, display_url
from scheduler.store.indexes import restore_missing_indexes

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None when empty) and the one appreciate needs."""

    current: str | None
    head: str
    known: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config() -> AlembicConfig:
    """Alembic's configuration for appreciate's migrations (loads Alembic)."""
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 - only to migrate

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def revisions() -> tuple[str, ...]:
    """Every migration this version of appreciate ships, oldest first: the files in
    migrations/versions are named after their revision (`0005_planned_at.py` is 0005), so
    opening the store needs no Alembic (tests/test_store.py checks Alembic agrees)."""
    names = (path.name for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    return tuple(sorted(name.split("_", 1)[0] for name in names))


def head_revision() -> str:
    """The newest migration this version of appreciate ships."""
    return revisions()[-1]


def current_revision(engine: Engine) -> str | None:
    """The database's revision, read from Alembic's table; None when it has no schema yet."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, VERSION_TABLE):
            return None
        try:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:  # pragma: no cover - the table went between the two statements
            return None
    return str(found) if found is not None else None


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's revision without changing anything."""
    current = current_revision(engine)
    known = current is None or current in revisions()
    return SchemaState(current=current, head=head_revision(), known=known)


def upgrade(engine: Engine) -> SchemaState:
    """Apply every pending migration in one transaction; return the state before them.

    A database migrated by a newer appreciate is refused rather than touched.
    """
    before = schema_state(engine)
    if not before.known and before.current is not None:
        raise SchemaTooNew(display_url(str(engine.url)), before.current)
    from alembic import command  # noqa: PLC0415 - only to migrate

    config = alembic_config()
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
