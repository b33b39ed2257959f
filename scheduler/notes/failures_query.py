"""The notes still failed on a template, as `appreciate status` shows them (the rules are in
`scheduler.notes.template_failures`), read through SQLAlchemy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from scheduler.notes.template_failures import (
    RECENT,
    TEMPLATE_FAILURE,
    TemplateFailures,
    most_first,
)
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc

touches = metadata.tables["touches"]


def template_failures(connection: Connection, until: datetime | None) -> list[TemplateFailures]:
    """The notes still failed on a template that failed in the RECENT span up to `until` (None:
    whenever), grouped by problem, the most notes first."""
    last = func.max(touches.c.updated_at)
    query = select(touches.c.reason, func.count(), last).where(
        touches.c.status == "failed",
        touches.c.reason.startswith(TEMPLATE_FAILURE, autoescape=True),
    )
    if until is not None:
        query = query.where(touches.c.updated_at >= until - RECENT)
    rows = connection.execute(query.group_by(touches.c.reason)).all()
    found = [
        TemplateFailures(reason.removeprefix(TEMPLATE_FAILURE), count, aware_utc(at))
        for reason, count, at in rows
    ]
    return most_first(found)
