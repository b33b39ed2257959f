"""Alembic environment: runs on the connection handed over by scheduler.store.schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from scheduler.store.models import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through `appreciate db upgrade`, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
