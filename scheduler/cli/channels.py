"""`appreciate cards` and `appreciate calls`: the notes worth signing by hand or saying in
person ([channels] in the config)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from scheduler.cli.common import (
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_date,
    parse_now,
)
from scheduler.output import OutputFormat, counted, printable, table, to_csv, to_json
from scheduler.vocabulary import MAX_ID

if TYPE_CHECKING:
    from scheduler.config.settings import Settings

DateOption = Annotated[
    str | None,
    typer.Option(
        "--date",
        metavar="YYYY-MM-DD",
        help="The day (the business's time zone); default: today, by --now.",
    ),
]
CALL_COLUMNS = [
    "id",
    "customer",
    "customer_id",
    "phone",
    "kind",
    "occasion_key",
    "due_at",
    "script",
]


def _day(value: str | None, now: datetime, settings: Settings) -> date:
    from zoneinfo import ZoneInfo

    given = parse_date(value, "--date")
    return given or now.astimezone(ZoneInfo(settings.business.timezone)).date()


def cards(
    ctx: typer.Context,
    day: DateOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Where the PDFs go (default: this folder)."),
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Print the cards already printed that day again.")
    ] = False,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Print the day's cards to sign and post: cards-DATE.pdf (A4 sheets, each folded in four
    to an A6 card) and labels-DATE.pdf (Avery L7159: 3 x 8 address labels on A4).

    Cards due that day, and overdue ones still in time, are written from templates/card.KIND.j2
    (else card.j2) and marked printed: running it again the same day prints nothing new unless
    --again. Customers without a postal address get their card but no label (named in a
    warning), and so do those whose address has more lines than a label shows. A card whose
    template fails is left out, with the file and line, and stays due.
    """
    from scheduler.notes.card_pdf import LABEL_LINES, PdfUnavailable
    from scheduler.notes.cards import print_cards
    from scheduler.store.db import write_transaction

    moment = parse_now(now)
    config = cli_state(ctx).config()
    wanted = _day(day, moment, config.settings)
    folder = out_dir if out_dir is not None else Path.cwd()
    try:
        with opened_store(config) as engine, write_transaction(engine) as connection:
            report = print_cards(
                connection,
                config.settings,
                config.templates_dir,
                folder,
                day=wanted,
                now=moment,
                again=again,
            )
    except PdfUnavailable as error:
        err.print(f"error: {printable(str(error))}", markup=False)
        raise typer.Exit(1) from None
    for problem in report.failed:
        err.print(
            printable(f"warning: card {problem.touch_id} ({problem.customer}): {problem.problem}"),
            markup=False,
        )
    if report.without_address:
        names = ", ".join(report.without_address)
        err.print(printable(f"warning: no postal address, so no label: {names}"), markup=False)
    for name, lines in report.too_long:
        err.print(
            printable(
                f"warning: address too long for a label ({lines} lines, a label holds "
                f"{LABEL_LINES}), so no label: {name}"
            ),
            markup=False,
        )
    summary: dict[str, Any] = {
        "date": wanted,
        "printed": len(report.printed),
        "failed": len(report.failed),
        "without_address": report.without_address,
        "address_too_long": [name for name, _ in report.too_long],
        "expired": report.expired,
        "cards_pdf": str(report.cards_pdf) if report.cards_pdf else None,
        "labels_pdf": str(report.labels_pdf) if report.labels_pdf else None,
        "notes": [touch_id for touch_id, _ in report.printed],
    }
    if output_format is OutputFormat.json:
        out.file.write(to_json(summary) + "\n")
    elif output_format is OutputFormat.csv:
        rows = [{"id": touch_id, "customer": name} for touch_id, name in report.printed]
        out.file.write(to_csv(rows, ["id", "customer"]))
    else:
        rows = [{"note": touch_id, "customer": name} for touch_id, name in report.printed]
        if rows:
            title = f"Cards for {wanted.isoformat()}: {len(rows)}"
            out.print(table(title, rows, ["note", "customer"]))
        elif not report.failed:
            out.print(f"No cards to print for {wanted.isoformat()}.", markup=False)
        for label, path in (("cards", report.cards_pdf), ("labels", report.labels_pdf)):
            if path is not None:
                out.print(printable(f"{label}: {path}"), markup=False)
    if report.failed:
        raise typer.Exit(2)


class ListByDefault(TyperGroup):
    """`appreciate calls [--date D]` means `appreciate calls list ...`; `done` and `--help`
    keep their meaning."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


calls_app = typer.Typer(
    cls=ListByDefault,
    help=(
        "The owner's call list: `appreciate calls` shows the day's calls with the customer's "
        "phone and what to say; `appreciate calls done ID...` records calls made."
    ),
)


@calls_app.command("list")
def list_calls(
    ctx: typer.Context,
    day: DateOption = None,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The calls due that day (and overdue ones still in time): who, their phone, the
    occasion, and what to say (templates/call.KIND.j2, else call.j2). Calls not made in time
    expire, as other notes do."""
    from scheduler.notes.calls import due_calls
    from scheduler.store.db import write_transaction

    moment = parse_now(now)
    config = cli_state(ctx).config()
    wanted = _day(day, moment, config.settings)
    with opened_store(config) as engine, write_transaction(engine) as connection:
        found = due_calls(connection, config.settings, config.templates_dir, day=wanted, now=moment)
    rows = [call.as_dict() for call in found]
    if output_format is OutputFormat.json:
        out.file.write(to_json(rows) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, CALL_COLUMNS))
    else:
        for row in rows:
            row["phone"] = row["phone"] or "-"
            row["occasion"] = row["kind"]
        columns = ["id", "customer", "phone", "occasion", "script"]
        if rows:
            out.print(table(f"Calls for {wanted.isoformat()}: {len(rows)}", rows, columns))
        else:
            out.print(f"No calls to make for {wanted.isoformat()}.", markup=False)


@calls_app.command("done")
def calls_done(
    ctx: typer.Context,
    ids: Annotated[
        list[int],
        typer.Argument(metavar="ID...", max=MAX_ID, help="The calls made (note ids)."),
    ],
    note: Annotated[
        str | None,
        typer.Option("--note", metavar="TEXT", help="What came of it, kept in the sent-log."),
    ] = None,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Record calls as made: each becomes a sent note (channel call), shown by `log` and
    `show`, and is never listed again. Ids that are not calls waiting to be made are refused
    and nothing is marked."""
    from scheduler.notes.calls import MAX_NOTE, mark_done
    from scheduler.store.db import write_transaction

    if note is not None and (len(note) > MAX_NOTE or printable(note, newlines=False) != note):
        raise typer.BadParameter(
            f"at most {MAX_NOTE} characters on one line, without control characters",
            param_hint="--note",
        )
    moment = parse_now(now)
    config = cli_state(ctx).config()
    with opened_store(config) as engine, write_transaction(engine) as connection:
        marked = mark_done(connection, ids, note=note, now=moment)
    if output_format is OutputFormat.json:
        out.file.write(to_json({"done": marked}) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv([{"id": touch_id} for touch_id in marked], ["id"]))
    else:
        out.print(f"{counted(len(marked), 'call')} recorded as made: {', '.join(map(str, marked))}")
