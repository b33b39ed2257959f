"""The last cycle's report, kept in `app_state` (`last_cycle`) by whichever instance ran it,
for `appreciate status`. Small on purpose: reading it loads neither the sender nor the
templates."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, select

from scheduler.service.queue_report import LAST_CYCLE, cycle_from_json
from scheduler.store.db import conflict_insert, write_transaction
from scheduler.store.models import metadata

app_state = metadata.tables["app_state"]


class CycleSummary(Protocol):
    """What is kept of a cycle (`scheduler.service.cycle.CycleReport`)."""

    @property
    def at(self) -> datetime: ...

    def as_dict(self) -> dict[str, Any]: ...


def save_cycle(engine: Engine, report: CycleSummary) -> None:
    """Keep `report` as the last cycle (whichever instance ran it)."""
    insert = conflict_insert(engine.dialect.name)
    statement = insert(app_state).values(
        name=LAST_CYCLE, value=json.dumps(report.as_dict()), updated_at=report.at
    )
    with write_transaction(engine) as connection:
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "value": statement.excluded.value,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )


def last_cycle(connection: Connection) -> dict[str, Any] | None:
    """The last cycle saved by any instance (see `cycle_from_json`), or None."""
    value = connection.execute(
        select(app_state.c.value).where(app_state.c.name == LAST_CYCLE)
    ).scalar()
    return cycle_from_json(value)
