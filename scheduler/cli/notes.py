"""`appreciate preview`, `appreciate templates check` and `templates add`: see a note before it
goes, find every template problem before a customer would, and add the starters a workspace
lacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.common import (
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_now,
)
from scheduler.errors import AppreciateError, ConfigError, StoreError
from scheduler.output import OutputFormat, emit, printable, table

if TYPE_CHECKING:
    from scheduler.config.settings import Settings
    from scheduler.notes.preview import PreviewOccasion
    from scheduler.notes.render import RenderedNote


class Kind(StrEnum):
    """The occasion kinds, for the command line (the same as `OCCASION_KINDS`)."""

    birthday = "birthday"
    order_thanks = "order_thanks"
    referral_thanks = "referral_thanks"
    review_thanks = "review_thanks"
    first_meeting = "first_meeting"
    follow_up = "follow_up"
    anniversary = "anniversary"
    check_in = "check_in"


class PreviewFormat(StrEnum):
    text = "text"
    html = "html"
    eml = "eml"


@dataclass(frozen=True)
class Preview:
    """Everything a preview format may show."""

    note: RenderedNote
    occasion: PreviewOccasion
    settings: Settings


def _as_text(preview: Preview) -> str:
    return f"Subject: {preview.note.subject}\n\n{preview.note.text}"


def _as_html(preview: Preview) -> str:
    if preview.note.html is None:
        raise AppreciateError(
            f"{preview.note.template} has no html block: this note goes out as plain text only"
        )
    return preview.note.html + "\n"


def _as_eml(preview: Preview) -> str:
    """The whole message as it would go out (a new Message-ID; the moment previewed)."""
    from scheduler.notes.note_message import note_message

    message = note_message(
        preview.settings.business,
        preview.note,
        preview.occasion.context,
        message_id=None,
        date=preview.occasion.touch.due_at,
    )
    return message.data.decode("utf-8", errors="replace").replace("\r\n", "\n")


FORMATS: dict[PreviewFormat, Callable[[Preview], str]] = {
    PreviewFormat.text: _as_text,
    PreviewFormat.html: _as_html,
    PreviewFormat.eml: _as_eml,
}
"""How each --format shows a note: add a member to PreviewFormat and its function here."""


def preview(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Argument(metavar="KIND", help="The occasion the note is for.")],
    customer: Annotated[
        str, typer.Option("--customer", metavar="ID", help="The customer, by your own id.")
    ],
    order: Annotated[
        str | None,
        typer.Option(
            "--order",
            metavar="ID",
            help="For order_thanks and follow_up: the order (default: their latest).",
        ),
    ] = None,
    output_format: Annotated[
        PreviewFormat,
        typer.Option(
            "--format",
            "-f",
            help="text (subject and text), html, or eml (the whole message as it would go out).",
            case_sensitive=False,
        ),
    ] = PreviewFormat.text,
    now: NowOption = None,
) -> None:
    """Show the note a customer would get, written from your templates and their real data.

    Sends nothing and writes nothing: a customer without an unsubscribe token yet is shown
    a placeholder. For referral_thanks the note is about their latest referral; birthdays and
    anniversaries are their next ones.
    """
    from scheduler.notes.preview import preview_occasion
    from scheduler.notes.render import NoteRenderer

    config = cli_state(ctx).config()
    moment = parse_now(now)
    with opened_store(config) as engine, engine.connect() as connection:
        try:
            occasion = preview_occasion(
                connection, config.settings, kind.value, customer, order_id=order, now=moment
            )
        finally:
            connection.rollback()
    renderer = NoteRenderer.configured(config.templates_dir, config.settings)
    note = renderer.render(kind.value, occasion.tier, occasion.context)
    shown = FORMATS[output_format](Preview(note, occasion, config.settings))
    err.print(f"({note.template}, tier {occasion.tier or 'not computed yet'})", markup=False)
    out.file.write(printable(shown))


templates_app = typer.Typer(
    help="Check the note templates, and add the starters a workspace lacks.", no_args_is_help=True
)


@templates_app.command("check")
def templates_check(ctx: typer.Context) -> None:
    """Write every note template against sample data and report each problem with file and
    line: syntax, unknown names, a missing subject or text, a subject too long, and customer
    attributes that no customer in the store has (an error) or that some lack (a warning).
    Cards' and calls' templates (card.j2, card.KIND.j2, call.j2...) are written too.

    Exits 1 when any template has an error.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from scheduler.notes.template_check import check_templates
    from scheduler.store.attributes import AttributeCensus

    config = cli_state(ctx).config()
    try:
        _refuse_a_missing_sqlite_file(config.database_url())  # opening it would create it
        with opened_store(config) as engine, engine.connect() as connection:
            census = AttributeCensus.take(connection)
            findings = check_templates(config.templates_dir, config.settings, census)
    except (ConfigError, StoreError, SQLAlchemyError) as error:
        err.print(
            f"note: could not look at the store ({_one_line(error)}), so customer attributes are "
            "checked against a sample customer with pet_name only",
            markup=False,
        )
        findings = check_templates(config.templates_dir, config.settings)
    for finding in findings:
        out.print(printable(str(finding)), markup=False)
    if any(finding.level == "error" for finding in findings):
        raise typer.Exit(1)


@templates_app.command("add")
def templates_add(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these starters (review_thanks, card.j2, birthday.vip...). Default: all.",
            metavar="[NAME]...",
            show_default=False,
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Copy into your templates folder the starter templates it lacks: those of kinds added
    since your workspace was made (after an upgrade), or one you deleted. A template you have
    is never changed: edit it, or delete it first to get the starter back. Check what was added
    with `appreciate templates check`."""
    from scheduler.cli.workspace import add_starter_templates

    config = cli_state(ctx).config()
    added, kept = add_starter_templates(config.templates_dir, names)
    rows = [{"template": name, "result": "added"} for name in added]
    rows += [{"template": name, "result": "kept"} for name in kept]
    if output_format is not OutputFormat.table:
        emit(out, output_format, rows, ["template", "result"])
        return
    folder = printable(str(config.templates_dir))
    if not added:
        which = ", ".join(kept) if names else f"every starter template ({len(kept)})"
        out.print(f"Nothing to add: {folder} has {which}, kept as it is", markup=False)
        return
    out.print(table(None, rows[: len(added)], ["template"]))
    out.print(
        f"Added {len(added)} starter {'template' if len(added) == 1 else 'templates'} to "
        f"{folder}" + (f"; {len(kept)} of yours kept as they are" if kept else ""),
        markup=False,
    )


def _refuse_a_missing_sqlite_file(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    sqlite_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if sqlite_file and not Path(database).exists():
        raise StoreError(f"there is no store at {database} yet: `appreciate db upgrade` makes it")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
