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

Standard library only (the quick read path uses it); the query is `failures_query`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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


def most_first(found: list[TemplateFailures]) -> list[TemplateFailures]:
    """The problems with the most notes first, then by problem."""
    return sorted(found, key=lambda failures: (-failures.notes, failures.problem))
