"""`appreciate cards`: the day's card notes printed as one PDF of folded cards and one PDF of
address labels, then marked `printed`.

Rules:
- The cards of local day D (the business's zone) are the card notes due before D ends that are
  still open (pending or deferred) and not past their `expires_at` at `now`: the day's own and
  overdue ones still within their occasion's `max_lateness`. Open card notes already past it
  become `expired` first, with a reason. With `again`, the cards printed on D are printed again.
- Each card is written from `card.KIND.j2`, else `card.j2`, in the notes' sandbox and limits,
  with the same context as the note's email (`occasion.due_date` is the occasion's own day,
  not the card's earlier due day). A template problem fails that card alone (it stays open, and
  the problem names the file and line); the others print. A template that ran out of time
  (`render_timeout`) on MAX_LATE cards of a run is not tried for the rest (they fail at once,
  saying so): three hundred cards would each wait out the limit.
- Customers without a postal address (no first line, or neither city nor postal code) still
  get their card; the label sheet leaves them out and the run names them. So too an address
  of more lines than a label shows (LABEL_LINES): cut, it would lose its town or postcode.
- Printed cards become `printed` with `printed_at` = `now`, and a history event. Nothing is
  marked when no PDF could be written (`PdfNotWritten`, naming `--out`), and a PDF written
  before the failure is removed.
- A run never writes over a PDF: the PDFs are `cards-D.pdf` and `labels-D.pdf`, or with the
  first of `-2`, `-3`... that neither file has yet (a second run the same day, `--again`).
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import Connection, and_, bindparam, or_, select, update

from scheduler.config.settings import Settings
from scheduler.notes.card_pdf import (
    LABEL_LINES,
    CardPage,
    PdfNotWritten,
    cards_html,
    labels_html,
    write_pdf,
)
from scheduler.notes.note_context import TouchRef, build_contexts
from scheduler.notes.postal_address import PostalAddress, home_country, label_lines
from scheduler.notes.render import NoteRenderer, TemplateProblem
from scheduler.occasions.channels import CARD_PREFIX, DATED
from scheduler.occasions.timing import local_moment
from scheduler.store.by_hand import expire_overdue, set_status
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc, aware_utc_or_none

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
OPEN = ("pending", "deferred")
MAX_LATE = 3
"""Cards a template may run out of time on in one run before the rest are not tried."""
ADDRESS_COLUMNS = ("address_line1", "address_line2", "city", "postal_code", "region", "country")


@dataclass(frozen=True)
class CardProblem:
    touch_id: int
    customer: str
    problem: str


@dataclass
class CardsReport:
    """What one run printed (touch ids and customer names), failed and left off the labels."""

    day: date
    printed: list[tuple[int, str]] = field(default_factory=list)
    failed: list[CardProblem] = field(default_factory=list)
    without_address: list[str] = field(default_factory=list)
    too_long: list[tuple[str, int]] = field(default_factory=list)
    """Customers whose address has more lines than a label shows, with its count of lines."""
    expired: int = 0
    cards_pdf: Path | None = None
    labels_pdf: Path | None = None


def day_span(day: date, settings: Settings) -> tuple[datetime, datetime]:
    """The start and end of local `day` in the business's zone, in UTC."""
    zone = ZoneInfo(settings.business.timezone)
    return local_moment(day, time(0), zone), local_moment(day + timedelta(days=1), time(0), zone)


def print_cards(
    connection: Connection,
    settings: Settings,
    templates: Path,
    out: Path,
    *,
    day: date,
    now: datetime,
    again: bool = False,
) -> CardsReport:
    """Print day `day`'s cards into `out` (see the module's rules), inside the caller's
    transaction. The PDFs are `cards-D.pdf` and `labels-D.pdf`."""
    report = CardsReport(day)
    home = home_country(settings.business.locale)
    report.expired = expire_overdue(connection, "card", now)
    start, end = day_span(day, settings)
    rows = connection.execute(_due_query(start, end, now, again)).all()
    if not rows:
        return report
    renderer = NoteRenderer.configured(templates, settings)
    refs = [_ref(row, settings) for row in rows]
    contexts = build_contexts(connection, refs, settings, now=now, create_tokens=False)
    pages: list[CardPage] = []
    labels: list[list[str]] = []
    late: Counter[str] = Counter()
    for row in rows:
        context = contexts.get(row.id)
        if context is None:
            continue
        name = card_template(templates, row.kind)
        if late[name] >= MAX_LATE:
            report.failed.append(CardProblem(row.id, row.name, _given_up(name)))
            continue
        try:
            pages.append(_card(renderer, templates, row, context, settings))
        except TemplateProblem as problem:
            late[name] += problem.timed_out
            report.failed.append(CardProblem(row.id, row.name, str(problem)))
            continue
        report.printed.append((row.id, row.name))
        address = address_lines(row, home)
        if len(address) > LABEL_LINES:
            report.too_long.append((row.name, len(address)))
        elif address:
            labels.append(address)
        else:
            report.without_address.append(row.name)
    if not pages:
        return report
    report.cards_pdf, report.labels_pdf = _write(out, day, pages, labels)
    ids = [touch_id for touch_id, _ in report.printed]
    set_status(connection, ids, "printed", f"card printed for {day.isoformat()}", now)
    connection.execute(
        update(touches).where(touches.c.id == bindparam("touch_id")).values(printed_at=now),
        [{"touch_id": touch_id} for touch_id in ids],
    )
    return report


def _write(
    out: Path, day: date, pages: list[CardPage], labels: list[list[str]]
) -> tuple[Path, Path | None]:
    """Write the cards' PDF and, when there are labels, the labels' one into `out` under
    names no file has (see the module's rules); on failure neither is left."""
    if out.exists() and not out.is_dir():
        raise PdfNotWritten(out, "it is a file, not a folder")
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        cards_pdf, labels_pdf = _free_names(out, day)
        write_pdf(cards_html(pages), cards_pdf)
        written.append(cards_pdf)
        if labels:
            write_pdf(labels_html(labels), labels_pdf)
            written.append(labels_pdf)
    except OSError as error:
        for path in written:
            path.unlink(missing_ok=True)
        raise PdfNotWritten(out, error.strerror or str(error)) from None
    return cards_pdf, labels_pdf if labels else None


def _free_names(out: Path, day: date) -> tuple[Path, Path]:
    """`cards-D.pdf` and `labels-D.pdf` in `out`, or the first `-N` pair neither exists for."""
    for number in range(1, 10_000):
        suffix = f"-{number}" if number > 1 else ""
        names = (out / f"cards-{day}{suffix}.pdf", out / f"labels-{day}{suffix}.pdf")
        if not any(path.exists() or path.is_symlink() for path in names):
            return names
    raise FileExistsError(errno.EEXIST, f"cards-{day}-N.pdf are all taken")


def address_lines(row: Any, home: str | None) -> list[str]:
    """The label's lines for `row` (name first), or [] when its address is not enough to post
    to (see `scheduler.notes.postal_address`)."""
    address = PostalAddress(
        row.name,
        row.address_line1,
        row.address_line2,
        row.city,
        row.postal_code,
        row.region,
        row.country,
    )
    return label_lines(address, home)


def _due_query(start: datetime, end: datetime, now: datetime, again: bool) -> Any:
    wanted = and_(
        touches.c.status.in_(OPEN),
        touches.c.due_at < end,
        or_(touches.c.expires_at.is_(None), touches.c.expires_at >= now),
    )
    if again:
        wanted = or_(
            wanted,
            and_(
                touches.c.status == "printed",
                touches.c.printed_at >= start,
                touches.c.printed_at < end,
            ),
        )
    return (
        select(
            touches.c.id,
            touches.c.customer_id,
            touches.c.kind,
            touches.c.occasion_key,
            touches.c.due_at,
            touches.c.expires_at,
            customers.c.name,
            *(customers.c[column] for column in ADDRESS_COLUMNS),
        )
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(and_(touches.c.channel == "card", wanted))
        .order_by(customers.c.name, touches.c.id)
    )


def _ref(row: Any, settings: Settings) -> TouchRef:
    """The touch as its note's context sees it: the occasion's own key and day."""
    due = aware_utc(row.due_at)
    expires = aware_utc_or_none(row.expires_at)
    if row.kind in DATED and expires is not None:
        due = expires - getattr(settings.occasions, row.kind).max_lateness
    key = row.occasion_key.removeprefix(CARD_PREFIX)
    return TouchRef(row.id, row.customer_id, row.kind, key, due)


def card_template(templates: Path, kind: str) -> str:
    """`card.KIND.j2` when it exists, else `card.j2`."""
    own = f"card.{kind}.j2"
    return own if (templates / own).is_file() else "card.j2"


def _given_up(name: str) -> str:
    return (
        f"{name}: not written, as it ran out of time on {MAX_LATE} cards already "
        "(see the first of them); fix it and print again"
    )


def _card(
    renderer: NoteRenderer, templates: Path, row: Any, context: dict[str, Any], settings: Settings
) -> CardPage:
    name = card_template(templates, row.kind)
    if not (templates / name).is_file():
        raise TemplateProblem(name, None, f"no such template in {templates}")
    blocks = renderer.render_blocks(name, context, ("front", "inside"), html=True)
    inside = blocks.get("inside", "").strip()
    if not inside:
        raise TemplateProblem(name, None, "there is no {% block inside %}, or it is empty")
    front = blocks.get("front", "").strip()
    # The blocks were written by the HTML sandbox, which escaped what they print.
    return CardPage(
        Markup(front) if front else Markup("<h1>{}</h1>").format(row.name),  # noqa: S704
        Markup(inside),  # noqa: S704 - escaped by the sandbox, as above
        settings.business.name,
    )
