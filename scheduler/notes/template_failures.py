"""Notes that failed on a template: how they are marked, and how `appreciate status` finds them.

Rules:
- When a template cannot write a note, the sender fails the note with the reason
  `template problem: FILE:LINE: MESSAGE` (TEMPLATE_FAILURE, then the problem). appreciate
  writes that prefix itself and nowhere else, so a failure is recognised by it, never by
  guessing at a server's reply or any other free text.
- `appreciate status` shows the notes that failed so and are still failed, grouped by problem,
  from the week up to the last cycle (RECENT; every one while no cycle is recorded): a template
  fixed and its notes retried leaves the list, and an old failure nobody retried drops off it
  (`appreciate log --status failed` keeps them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from scheduler.store.models import metadata
from scheduler.store.types import aware_utc

touches = metadata.tables["touches"]
TEMPLATE_FAILURE = "template problem: "
"""The start of the reason of every note that failed on a template (see the module's rules)."""
RECENT = timedelta(days=7)


def failure_reason(problem: object) -> str:
    """The reason a note failed on `problem` (a TemplateProblem: `FILE:LINE: MESSAGE`)."""
    return f"{TEMPLATE_FAILURE}{problem}"


@dataclass(frozen=True)
class TemplateFailures:
    """The notes still failed on one template problem."""

    problem: str
    """`FILE:LINE: MESSAGE`, as the note's reason says it."""
    notes: int
    last_failed_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "problem": self.problem,
            "notes": self.notes,
            "last_failed_at": self.last_failed_at.isoformat(),
        }


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
    return sorted(found, key=lambda failures: (-failures.notes, failures.problem))
