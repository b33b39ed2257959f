"""The `appreciate` command line: parse, call the library, print. Nothing else lives here.

Errors the library raises on purpose (`AppreciateError`) become a clean message on stderr and
a non-zero exit: 1 when some input was rejected, 2 for a config or file that cannot be used.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from scheduler import __version__
from scheduler.cli_common import (
    AppreciateGroup,
    CliState,
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_now,
)
from scheduler.cli_daemon import run, status
from scheduler.cli_delivery import log, retry, send, show
from scheduler.cli_ltv import ltv_app
from scheduler.cli_notes import preview, templates_app
from scheduler.cli_sink import sink
from scheduler.demo import run_demo
from scheduler.detection import detect as run_detection
from scheduler.importer import ImportReport, import_csv
from scheduler.output import OutputFormat, table, to_csv, to_json
from scheduler.planning import plan_day
from scheduler.progress import file_progress
from scheduler.settings import OCCASION_KINDS
from scheduler.store.db import create_store_engine, display_url
from scheduler.store.schema import schema_state, upgrade
from scheduler.workspace import create_workspace

MAX_REJECTS_SHOWN = 50


app = typer.Typer(
    cls=AppreciateGroup,
    help="Automatic, personal thank-you notes for your customers, most valuable first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Check the config file.", no_args_is_help=True)
db_app = typer.Typer(help="Create and upgrade the customer store's schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(ltv_app, name="ltv")
app.add_typer(templates_app, name="templates")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"appreciate {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file. Default: $APPRECIATE_CONFIG, else ./appreciate.toml.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Automatic, personal thank-you notes for your customers, most valuable first."""
    ctx.obj = CliState(config_option=config)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for appreciate.toml, templates/ and the database.")
    ] = Path(),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing appreciate.toml with the example.")
    ] = False,
) -> None:
    """Create a workspace: appreciate.toml, starter templates and an empty, up-to-date store."""
    workspace = create_workspace(directory, force=force)
    config = workspace.config_path
    out.print(f"Created {config}")
    out.print(
        f"Templates in {workspace.templates_dir}: {len(workspace.templates_added)} added"
        + (f", {len(workspace.templates_kept)} of yours kept" if workspace.templates_kept else "")
    )
    out.print(f"Store ready at {display_url(workspace.database_url)}")
    flag = f"--config {config}" if directory != Path() else ""
    prefix = f"appreciate {flag} ".replace("  ", " ")
    out.print("\nNext:")
    out.print(f"  1. Edit {config}: your business, sender and mail server.")
    out.print(f"  2. {prefix}config check")
    out.print(f"  3. {prefix}import customers customers.csv   (then orders, referrals, meetings)")


@config_app.command("check")
def config_check(ctx: typer.Context) -> None:
    """Validate the config file and print every problem in it, with file, line and key."""
    config = cli_state(ctx).config()
    settings = config.settings
    out.print(f"{config.path}: ok")
    out.print(
        f"  business  {settings.business.name} <{settings.business.sender_email}>, "
        f"time zone {settings.business.timezone}"
    )
    smtp = settings.smtp
    out.print(f"  smtp      {smtp.host}:{smtp.effective_port} ({smtp.security})")
    out.print(f"  templates {config.templates_dir}")
    for problem in config.environment_problems():
        err.print(f"warning: {problem}", markup=False)
    if not config.environment_problems():
        out.print(f"  database  {display_url(config.database_url())}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations this version of appreciate needs (safe to run again)."""
    config = cli_state(ctx).config()
    engine = create_store_engine(config.database_url())
    try:
        before = upgrade(engine)
        after = schema_state(engine)
    finally:
        engine.dispose()
    url = display_url(config.database_url())
    if before.current == after.current:
        out.print(f"{url} is up to date (schema {after.current}).")
    else:
        out.print(f"{url} upgraded from schema {before.current or 'none'} to {after.current}.")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the store's schema revision and whether it needs `appreciate db upgrade`."""
    config = cli_state(ctx).config()
    engine = create_store_engine(config.database_url())
    try:
        state = schema_state(engine)
    finally:
        engine.dispose()
    out.print(f"database  {display_url(config.database_url())}")
    out.print(f"schema    {state.current or 'none'} (this appreciate needs {state.head})")
    if not state.up_to_date:
        out.print("Run `appreciate db upgrade` to bring it up to date.")
        raise typer.Exit(1)


class ImportKind(StrEnum):
    customers = "customers"
    orders = "orders"
    referrals = "referrals"
    meetings = "meetings"


@app.command("import")
def import_command(
    ctx: typer.Context,
    kind: Annotated[ImportKind, typer.Argument(help="What the file holds.")],
    file: Annotated[Path, typer.Argument(help="The CSV export (UTF-8, header line first).")],
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            metavar="REJECTS.csv",
            help="Write rejected rows here, with a reason column, ready to fix and re-import.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check every row and report, without writing to the store."),
    ] = False,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Import customers, orders, referrals or meetings from a CSV file.

    Rows are matched by id (referrals by the referred customer, meetings by customer and
    time), so importing a file again changes nothing and a corrected file updates rows.
    Bad rows are reported with their line and reason, and the exit code is 1.
    """
    moment = parse_now(now)
    config = cli_state(ctx).config()
    with opened_store(config) as engine:
        try:
            with file_progress(err, f"Importing {kind.value}") as progress:
                report = import_csv(
                    engine,
                    kind.value,
                    file,
                    now=moment,
                    business_zone=ZoneInfo(config.settings.business.timezone),
                    rejects_path=rejects,
                    dry_run=dry_run,
                    progress=progress,
                )
        except KeyboardInterrupt:
            err.print(
                "interrupted: the batches already written are kept and nothing else; run the "
                "same command again to finish the import.",
                markup=False,
            )
            raise typer.Exit(130) from None
    _print_report(report, rejects, output_format)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: ImportReport, rejects: Path | None, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        out.file.write(to_json(report_dict(report)) + "\n")
        return
    if output_format is OutputFormat.csv:
        err.print("--format csv is not offered for import reports; showing a table", markup=False)
    verb = "Checked" if report.dry_run else "Imported"
    new = "would be new" if report.dry_run else "new"
    out.print(
        f"{verb} {report.kind} from {report.path}: {report.rows} rows: {report.inserted} {new}, "
        f"{report.updated} updated, {report.unchanged} unchanged, "
        f"{report.rejected_count} rejected.",
        markup=False,
    )
    if report.ignored_columns:
        out.print(
            f"Ignored columns (not used for {report.kind}): " + ", ".join(report.ignored_columns),
            markup=False,
        )
    if report.rejected:
        where = f" (all written to {rejects})" if rejects else ""
        err.print(f"Rejected rows{where}:", markup=False)
        for rejection in report.rejected[:MAX_REJECTS_SHOWN]:
            err.print(f"  {report.path}:{rejection.line}: {rejection.reason}", markup=False)
        hidden = report.rejected_count - min(len(report.rejected), MAX_REJECTS_SHOWN)
        if hidden > 0:
            err.print(f"  ... and {hidden} more; use --rejects FILE to get them all.")


def report_dict(report: ImportReport) -> dict[str, Any]:
    """The import report as `--format json` prints it."""
    return {
        "kind": report.kind,
        "file": str(report.path),
        "dry_run": report.dry_run,
        "rows": report.rows,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected_count": report.rejected_count,
        "rejected": [{"line": r.line, "reason": r.reason} for r in report.rejected],
        "ignored_columns": report.ignored_columns,
    }


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="A new or empty folder for the workspace (default: a new temporary folder).",
        ),
    ] = None,
    now: NowOption = None,
) -> None:
    """Show appreciate working end to end on sample data, in a throwaway workspace.

    Creates a workspace, imports sample customers, orders, referrals and meetings whose
    occasions fall today (a few rows are bad on purpose, to show how they are reported),
    computes lifetime values, starts a local SMTP sink and runs one full cycle: then prints
    the sent-log and where the delivered .eml files are. Nothing outside the workspace is
    written and no network beyond loopback is used.
    """
    run_demo(out, directory, parse_now(now))


@app.command()
def detect(
    ctx: typer.Context,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Notice every occasion since the last run and record each note once in the outbox.

    Safe to run any number of times, and from several machines at once: an occasion already
    recorded is never recorded again. Prints how many notes were added per kind, and how many
    were suppressed (opted out, no email) or had expired (missed for too long).
    """
    config = cli_state(ctx).config()
    with opened_store(config) as engine:
        report = run_detection(engine, config.settings, parse_now(now))
    rows = [
        {
            "kind": kind,
            "added": report.count(kind, "pending"),
            "suppressed": report.count(kind, "suppressed"),
            "expired": report.count(kind, "expired"),
        }
        for kind in OCCASION_KINDS
    ]
    if output_format is OutputFormat.json:
        summary = {
            "since": report.since,
            "now": report.now,
            "kinds": rows,
            "history": report.history,
            "superseded": report.superseded,
            "skipped": [str(row) for row in report.skipped],
        }
        out.file.write(to_json(summary) + "\n")
        return
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["kind", "added", "suppressed", "expired"]))
        return
    title = f"Detected from {report.since:%Y-%m-%d %H:%M} to {report.now:%Y-%m-%d %H:%M} UTC"
    out.print(table(title, rows, ["kind", "added", "suppressed", "expired"]))
    if report.history or report.superseded:
        out.print(
            f"{report.history} events arrived too late for a note; {report.superseded} order "
            "thanks gave way to a later order's.",
            markup=False,
        )
    if report.skipped:
        out.print(
            f"{len(report.skipped)} rows were skipped (a date outside 1900-2200, or an occasion "
            "that cannot be computed): see the warnings.",
            markup=False,
        )


@app.command()
def plan(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(
            "--date", metavar="YYYY-MM-DD", help="The day to plan (default: today, locally)."
        ),
    ] = None,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show what would be sent on a day, to whom and when, and what would not and why.

    Writes nothing: detection runs as of the end of that day, the daily budget is applied
    (most valuable customers first; the rest shown deferred to the next day), and all is
    rolled back. The day is the business's (its time zone); times are shown in UTC.
    """
    config = cli_state(ctx).config()
    zone = ZoneInfo(config.settings.business.timezone)
    try:
        wanted = date.fromisoformat(day) if day else parse_now(now).astimezone(zone).date()
    except ValueError:
        raise typer.BadParameter(
            f'"{day}" is not a date (YYYY-MM-DD)', param_hint="--date"
        ) from None
    with opened_store(config) as engine:
        result = plan_day(engine, config.settings, wanted)
    columns = ["due_at", "customer", "name", "kind", "occasion", "status", "reason"]
    rows = [{column: getattr(line, column) for column in columns} for line in result.lines]
    budget = result.budget
    if output_format is OutputFormat.json:
        limit = {
            "daily_budget": budget.budget or None,
            "already_taken": budget.taken,
            "deferred": budget.deferred,
            "expired": budget.expired,
        }
        out.file.write(to_json({"date": wanted, "budget": limit, "notes": rows}) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, columns))
    else:
        sending = sum(1 for line in result.lines if line.status in ("pending", "deferred"))
        sending -= budget.deferred
        out.print(table(f"Plan for {wanted}: {sending} to send", rows, columns))
        if budget.deferred or budget.expired:
            out.print(
                f"The daily budget of {budget.budget} notes moves {budget.deferred} to the next "
                f"day and lets {budget.expired} expire: the most valuable customers go first.",
                markup=False,
            )


app.command("preview")(preview)
app.command("send")(send)
app.command("log")(log)
app.command("show")(show)
app.command("retry")(retry)
app.command("run")(run)
app.command("status")(status)
app.command("sink")(sink)

PIPED_WIDTH = 160


def main() -> None:
    """Entry point of the `appreciate` command."""
    for console in (out, err):
        if not console.is_terminal:  # a file or a pipe: do not squeeze tables into 80 columns
            console.width = PIPED_WIDTH
    app(prog_name="appreciate")
