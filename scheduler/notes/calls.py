"""`appreciate calls`: the owner's call list, and calls marked done.

Rules:
- The list for local day D (the business's zone) holds the call notes due before D ends that
  are still open (pending or deferred) and not past their `expires_at` at `now`; open calls
  already past it become `expired` first, as other notes do when too late.
- What to say is written from `call.KIND.j2`, else `call.j2` (its `{% block script %}`), in the
  notes' sandbox and limits, with the same context as the note's email. A template problem
  shows in that call's line (with file and line); the list still comes.
- Marking a call done records it as a sent note: status `sent`, `sent_at` = `now`, the note
  given (or "called") as its reason, and a history event; so a call is never listed again, and
  the sent-log shows it. Only open call notes can be marked: any other id is refused, and
  nothing is marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from scheduler.config.settings import Settings
from scheduler.errors import AppreciateError
from scheduler.notes.cards import OPEN, day_span
from scheduler.notes.note_context import TouchRef, build_contexts
from scheduler.notes.render import NoteRenderer, TemplateProblem
from scheduler.store.by_hand import expire_overdue, set_status
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
MAX_NOTE = 2_000
"""The longest `--note` a call may carry."""


class NotOpenCalls(AppreciateError):
    """Ids that are not open call notes."""

    exit_code = 2

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)
        listed = ", ".join(str(i) for i in self.ids)
        super().__init__(f"not calls waiting to be made: {listed} (nothing was marked)")


@dataclass(frozen=True)
class Call:
    """One call to make: the note's id, who, their number, the occasion and what to say."""

    id: int
    customer: str
    customer_id: str
    phone: str | None
    kind: str
    occasion_key: str
    due_at: datetime
    script: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "customer_id": self.customer_id,
            "phone": self.phone,
            "kind": self.kind,
            "occasion_key": self.occasion_key,
            "due_at": self.due_at,
            "script": self.script,
        }


def due_calls(
    connection: Connection, settings: Settings, templates: Path, *, day: date, now: datetime
) -> list[Call]:
    """Day `day`'s calls (see the module's rules), inside the caller's transaction."""
    expire_overdue(connection, "call", now)
    _, end = day_span(day, settings)
    rows = connection.execute(
        select(
            touches.c.id,
            touches.c.customer_id,
            touches.c.kind,
            touches.c.occasion_key,
            touches.c.due_at,
            customers.c.name,
            customers.c.external_id,
            customers.c.phone,
        )
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(
            and_(
                touches.c.channel == "call",
                touches.c.status.in_(OPEN),
                touches.c.due_at < end,
                or_(touches.c.expires_at.is_(None), touches.c.expires_at >= now),
            )
        )
        .order_by(touches.c.due_at, touches.c.id)
    ).all()
    if not rows:
        return []
    refs = [
        TouchRef(row.id, row.customer_id, row.kind, row.occasion_key, aware_utc(row.due_at))
        for row in rows
    ]
    contexts = build_contexts(connection, refs, settings, now=now, create_tokens=False)
    renderer = NoteRenderer.configured(templates, settings)
    return [
        Call(
            row.id,
            row.name,
            row.external_id,
            row.phone,
            row.kind,
            row.occasion_key,
            aware_utc(row.due_at),
            _script(renderer, templates, row.kind, contexts.get(row.id)),
        )
        for row in rows
    ]


def call_template(templates: Path, kind: str) -> str:
    """`call.KIND.j2` when it exists, else `call.j2`."""
    own = f"call.{kind}.j2"
    return own if (templates / own).is_file() else "call.j2"


def _script(
    renderer: NoteRenderer, templates: Path, kind: str, context: dict[str, Any] | None
) -> str:
    name = call_template(templates, kind)
    if context is None:
        return "(the customer is gone)"
    try:
        if not (templates / name).is_file():
            raise TemplateProblem(name, None, f"no such template in {templates}")
        script = renderer.render_blocks(name, context, ("script",), html=False).get("script", "")
    except TemplateProblem as problem:
        return f"(template problem: {problem})"
    return " ".join(script.split()) or f"(nothing in {name}'s script block)"


def mark_done(
    connection: Connection, ids: Sequence[int], *, note: str | None, now: datetime
) -> list[int]:
    """Record these calls as made (see the module's rules); returns the ids marked."""
    wanted = sorted(set(ids))
    found = {
        row.id
        for row in connection.execute(
            select(touches.c.id).where(
                and_(
                    touches.c.id.in_(wanted),
                    touches.c.channel == "call",
                    touches.c.status.in_(OPEN),
                )
            )
        )
    }
    missing = [touch_id for touch_id in wanted if touch_id not in found]
    if missing:
        raise NotOpenCalls(missing)
    set_status(connection, wanted, "sent", note or "called", now)
    connection.execute(
        update(touches).where(touches.c.id == bindparam("touch_id")).values(sent_at=now),
        [{"touch_id": touch_id} for touch_id in wanted],
    )
    return wanted
