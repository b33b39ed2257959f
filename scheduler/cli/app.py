"""The `appreciate` command line: parse, call the library, print. Nothing else lives here.

Errors the library raises on purpose (`AppreciateError`) become a clean message on stderr and
a non-zero exit: 1 when some input was rejected, 2 for a config or file that cannot be used.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scheduler import __version__
from scheduler.cli.channels import calls_app, cards
from scheduler.cli.common import (
    AppreciateGroup,
    CliState,
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_date,
    parse_now,
    short_time,
    widen_when_piped,
)
from scheduler.cli.daemon import run, status
from scheduler.cli.delivery import log, retry, send, show
from scheduler.cli.inbound import inbound_app
from scheduler.cli.ltv import ltv_app
from scheduler.cli.notes import preview, templates_app
from scheduler.cli.one_command import only_command
from scheduler.cli.sink import sink
from scheduler.cli.web import web_app
from scheduler.output import OutputFormat, counted, printable, table, to_csv, to_json

if TYPE_CHECKING:
    from scheduler.config.dkim_key import DkimKey
    from scheduler.config.file import Config
    from scheduler.importer import ImportReport, MappedColumn
    from scheduler.importer.batch import Rejection
    from scheduler.service.planning import Plan

# Each command imports what it uses when it runs: `--help` and the quick commands then start
# without loading the store, the importer or the scheduler (bench/cli.py).

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
app.add_typer(web_app, name="web")
app.add_typer(inbound_app, name="inbound")
app.add_typer(calls_app, name="calls")


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
    from scheduler.cli.workspace import create_workspace
    from scheduler.store.db import display_url

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
    out.print(
        f"  3. {prefix}import customers customers.csv   (then orders, referrals, meetings, reviews)"
    )


@config_app.command("check")
def config_check(ctx: typer.Context) -> None:
    """Validate the config file and print every problem in it, with file, line and key.

    With DKIM signing set up ([smtp] dkim_key_file), the key is read and a sample message
    signed and verified with it, as `run` does at start (a key that cannot sign is an error; a
    file that cannot be read here, a warning); its type and size are shown, and the DNS record
    to publish. Then warns about what works but should not stay so: the example's sender
    address, a login sent in the clear, a password file, key or store other users can read, a
    small DKIM key or one whose domain is not the sender's, and what the config needs from the
    environment and cannot find. A database.url that is no URL, or names a database other than
    SQLite or PostgreSQL, is an error."""
    from scheduler.config.advice import config_warnings
    from scheduler.notes.dkim_signing import DkimSigner
    from scheduler.store.db import display_url

    config = cli_state(ctx).config()
    if not config.settings.database.url_env:
        config.database_url()  # a URL written in the file (not one in the environment) or none
    signer = DkimSigner.configured(config, unreadable_ok=True)
    settings = config.settings
    out.print(f"{config.path}: ok")
    out.print(
        f"  business  {settings.business.name} <{settings.business.sender_email}>, "
        f"time zone {settings.business.timezone}"
    )
    smtp = settings.smtp
    out.print(f"  smtp      {smtp.host}:{smtp.effective_port} ({smtp.security})")
    if not smtp.signs:
        out.print("  dkim      off (notes go unsigned; fine when your mail provider signs them)")
    elif signer is None:
        out.print(
            f"  dkim      signed as {smtp.dkim_domain}, selector {smtp.dkim_selector}: the key "
            f"in {config.base_dir / smtp.dkim_key_file} cannot be read here (see below)",
            markup=False,
        )
    else:
        out.print(
            f"  dkim      signed as {signer.domain}, selector {signer.selector}: "
            f"RSA {signer.key.bits}-bit key in {signer.key.path}",
            markup=False,
        )
    out.print(f"  templates {config.templates_dir}")
    problems = config.environment_problems()
    if not problems:
        out.print(f"  database  {display_url(config.database_url())}")
    if signer is not None:
        _print_dkim_record(signer.key, signer.selector, signer.domain)
    for warning in config_warnings(config):
        err.print(f"warning: {warning}", markup=False)


def _print_dkim_record(key: DkimKey, selector: str, domain: str) -> None:
    out.print(
        "\nPublish this DNS record, so receivers can verify the signatures (a DNS host's form "
        "takes the name before TXT, and the value without its quotes):",
        markup=False,
    )
    out.print(f"  {key.dns_record(selector, domain)}", markup=False)


def _dkim_name(name: str) -> Callable[[str], str]:
    """A callback checking a selector (`name` "selector") or domain as the config does."""

    def parse(value: str) -> str:
        from scheduler.config import settings

        check = settings.check_dkim_selector if name == "selector" else settings.check_dkim_domain
        try:
            return check(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return parse


@config_app.command("dkim-key")
def config_dkim_key(
    selector: Annotated[
        str,
        typer.Option(
            "--selector",
            metavar="NAME",
            callback=_dkim_name("selector"),
            help="A name for this key in DNS, e.g. mail2026 (a new one when you change keys).",
        ),
    ],
    domain: Annotated[
        str,
        typer.Option(
            "--domain",
            metavar="DOMAIN",
            callback=_dkim_name("domain"),
            help="The domain that signs: your sender address's domain.",
        ),
    ],
    key_file: Annotated[
        Path,
        typer.Option(
            "--out", metavar="FILE", help="Where to write the private key (never over a file)."
        ),
    ],
    bits: Annotated[
        int,
        typer.Option(
            "--bits",
            metavar="BITS",
            callback=_one_size,
            help="RSA key size: 2048 (the norm), 3072 or 4096.",
        ),
    ] = 2048,
) -> None:
    """Make a DKIM key: the private key in FILE (readable only by you), the DNS record printed.

    Publish the record at your DNS host, give the key file to the service's user only, and set
    dkim_key_file, dkim_selector and dkim_domain in [smtp]. Not needed when your mail provider
    signs your mail already. No config file is read."""
    from scheduler.config.dkim_key import make_dkim_key

    key = make_dkim_key(key_file.absolute(), bits)
    out.print(
        f"Wrote a {key.bits}-bit RSA private key to {key.path} (mode 600: only you read it).",
        markup=False,
    )
    _print_dkim_record(key, selector, domain)
    out.print(
        "\nThen set in [smtp] of your appreciate.toml, and run `appreciate config check`:",
        markup=False,
    )
    out.print(
        f'  dkim_key_file = "{key.path}"\n  dkim_selector = "{selector}"\n'
        f'  dkim_domain = "{domain}"',
        markup=False,
    )


def _one_size(bits: int) -> int:
    if bits not in (2048, 3072, 4096):
        raise typer.BadParameter(f"{bits} is not one of 2048, 3072, 4096")
    return bits


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations this version of appreciate needs (safe to run again)."""
    from scheduler.store.db import create_store_engine, display_url
    from scheduler.store.schema import schema_state, upgrade

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
    from scheduler.store.db import create_store_engine, display_url
    from scheduler.store.schema import schema_state

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


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    destination: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="The new file to write (an existing one is never replaced)."
        ),
    ],
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Copy the SQLite store to a new file, safely while the service runs.

    The copy holds every committed change (also those a plain `cp` of the file would miss), is
    checked, and is readable by you alone. To restore it, see "Backing up" in the README.
    PostgreSQL stores are backed up with `pg_dump` instead.
    """
    from scheduler.store.backup import back_up

    config = cli_state(ctx).config()
    done = back_up(config.database_url(), destination)
    row = {
        "path": str(done.path),
        "bytes": done.size,
        "customers": done.customers,
        "notes": done.notes,
    }
    if output_format is OutputFormat.json:
        out.file.write(to_json(row) + "\n")
        return
    if output_format is OutputFormat.csv:
        out.file.write(to_csv([row], list(row)))
        return
    out.print(
        f"Backed up the store to {printable(str(done.path))}: {counted(done.customers, 'customer')}"
        f", {counted(done.notes, 'note')}, {done.size / 1_000_000:,.1f} MB.",
        markup=False,
    )


class ImportKind(StrEnum):
    customers = "customers"
    orders = "orders"
    referrals = "referrals"
    meetings = "meetings"
    reviews = "reviews"


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
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar='"FILE COLUMN=COLUMN"',
            help='Read a column of the file as one appreciate knows, e.g. "Patient ID=id" '
            "(repeatable; adds to and overrides [import.KIND] columns in the config).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check every row and report, without writing to the store."),
    ] = False,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Import customers, orders, referrals, meetings or reviews from a CSV file.

    Rows are matched by id (referrals by the referred customer, meetings by customer and
    time, reviews without an id by customer, time and where), so importing a file again
    changes nothing and a corrected file updates rows.
    Bad rows are reported with their line and reason, and the exit code is 1; rows imported
    with a warning (an invalid email left out) are reported too, and the exit code stays 0.
    """
    from zoneinfo import ZoneInfo

    from scheduler.importer import (
        ColumnMapping,
        amount_format,
        import_csv,
        parse_map_option,
    )
    from scheduler.importer.rejects import check_rejects_path
    from scheduler.progress import file_progress

    moment = parse_now(now)
    config = cli_state(ctx).config()
    mapping = ColumnMapping.merged(
        kind.value,
        _configured_mapping(config, kind.value),
        [parse_map_option(text) for text in column_map or []],
    )
    protected = _protected_files(config)
    if rejects is not None:  # before the store is opened or the file read
        check_rejects_path(rejects, {"the file being imported": file, **protected})
    business = config.settings.business
    with opened_store(config) as engine:
        try:
            with file_progress(err, f"Importing {kind.value}") as progress:
                report = import_csv(
                    engine,
                    kind.value,
                    file,
                    now=moment,
                    business_zone=ZoneInfo(business.timezone),
                    rejects_path=rejects,
                    dry_run=dry_run,
                    progress=progress,
                    mapping=mapping,
                    amounts=amount_format(business.locale, business.currency),
                    protected=protected,
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


def _configured_mapping(config: Config, kind: str) -> list[MappedColumn]:
    """The config's `[import.KIND] columns`, each naming the file, line and key it is from."""
    from scheduler.importer import MappedColumn

    columns = config.settings.imports.columns(kind)
    if not columns:
        return []
    key = ("import", kind, "columns")
    line = config.line_of(key)
    origin = f"{config.path}:{line}" if line else str(config.path)
    return [
        MappedColumn(source, target, f"{origin}: {'.'.join(key)}")
        for source, target in columns.items()
    ]


def _protected_files(config: Config) -> dict[str, Path]:
    """Files a rejects file must never replace: the config, and a SQLite store's files."""
    from scheduler.store.db import sqlite_path

    protected = {"the config file": config.path}
    store = sqlite_path(config.database_url())
    if store is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            protected[f"the store ({store.name}{suffix})"] = Path(f"{store}{suffix}")
    return protected


def _print_report(report: ImportReport, rejects: Path | None, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        out.file.write(to_json(report_dict(report)) + "\n")
        return
    if output_format is OutputFormat.csv:
        err.print("--format csv is not offered for import reports; showing a table", markup=False)
    verb = "Checked" if report.dry_run else "Imported"
    new = "would be new" if report.dry_run else "new"
    path = printable(str(report.path))
    warned = f", {report.warning_count} with warnings" if report.warning_count else ""
    out.print(
        f"{verb} {report.kind} from {path}: {report.rows} rows: {report.inserted} {new}, "
        f"{report.updated} updated, {report.unchanged} unchanged, "
        f"{report.rejected_count} rejected{warned}.",
        markup=False,
    )
    if report.encoding != "UTF-8":
        out.print(f"Read as {report.encoding} text.", markup=False)
    if report.mapping:
        out.print(
            "Columns mapped: " + ", ".join(printable(str(entry)) for entry in report.mapping),
            markup=False,
        )
    if report.ignored_columns:
        out.print(
            f"Ignored columns (not used for {report.kind}): "
            + ", ".join(printable(name, newlines=False) for name in report.ignored_columns),
            markup=False,
        )
    where = f" (all written to {printable(str(rejects))})" if rejects else ""
    _print_rows(f"Rejected rows{where}:", report.rejected, report.rejected_count, path)
    _print_rows(f"Imported with warnings{where}:", report.warnings, report.warning_count, path)


def _print_rows(heading: str, rows: list[Rejection], count: int, path: str) -> None:
    """Rejected or warned rows under their heading, at most MAX_REJECTS_SHOWN of them."""
    if not rows:
        return
    err.print(heading, markup=False)
    for row in rows[:MAX_REJECTS_SHOWN]:
        err.print(f"  {path}:{row.line}: {printable(row.reason, newlines=False)}", markup=False)
    hidden = count - min(len(rows), MAX_REJECTS_SHOWN)
    if hidden > 0:
        err.print(f"  ... and {hidden} more; use --rejects FILE to get them all.", markup=False)


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
        "warning_count": report.warning_count,
        "warnings": [{"line": w.line, "reason": w.reason} for w in report.warnings],
        "ignored_columns": report.ignored_columns,
        "mapping": [
            {"column": entry.source, "read_as": entry.target_name, "from": entry.origin}
            for entry in report.mapping
        ],
        "encoding": report.encoding,
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
    from scheduler.cli.demo import run_demo

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
    from scheduler.detection.detect import detect as run_detection
    from scheduler.vocabulary import OCCASION_KINDS

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
            "same_day_reviews": report.same_day_reviews,
            "by_hand_expired": report.by_hand_expired,
            "skipped": [str(row) for row in report.skipped],
        }
        out.file.write(to_json(summary) + "\n")
        return
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["kind", "added", "suppressed", "expired"]))
        return
    if report.now <= report.since:
        out.print(
            f"Nothing to detect: the last run reached {report.since:%Y-%m-%d %H:%M} UTC, "
            f"which is not before {report.now:%Y-%m-%d %H:%M} UTC.",
            markup=False,
        )
        return
    title = f"Detected from {report.since:%Y-%m-%d %H:%M} to {report.now:%Y-%m-%d %H:%M} UTC"
    out.print(table(title, rows, ["kind", "added", "suppressed", "expired"]))
    if report.history or report.superseded:
        out.print(
            f"{report.history} events arrived too late for a note; {report.superseded} order "
            "thanks gave way to a later order's.",
            markup=False,
        )
    if report.by_hand_expired:
        from scheduler.store.by_hand import missed

        expired = ", ".join(
            missed(channel, count) for channel, count in report.by_hand_expired.items()
        )
        out.print(f"Expired: {expired}.", markup=False)
    if report.same_day_reviews:
        out.print(
            f"{counted(report.same_day_reviews, 'review')} "
            f"{'was' if report.same_day_reviews == 1 else 'were'} not thanked: "
            "their customer's first review "
            "that day is (the same review from two sources, or two sites the same day).",
            markup=False,
        )
    if report.skipped:
        out.print(
            f"{counted(len(report.skipped), 'row')} {'was' if len(report.skipped) == 1 else 'were'}"
            " skipped (a date outside 1900-2200, an amount that "
            "is none, or an occasion that cannot be computed): see the warnings.",
            markup=False,
        )


PLAN_ROWS_SHOWN = 25


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
    show_all: Annotated[
        bool, typer.Option("--all", help="List every note (the table shows the first ones).")
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show what the service will send on a day, to whom and when, and what not and why.

    Runs what `appreciate run` runs (detection, the frequency cap, the daily budget and the
    checks before sending) as if the service ran until the end of each day from today to that
    day, in a transaction it rolls back: it writes nothing. The day is the business's (its
    time zone); times are UTC. The table shows a summary and the first notes (--all: every
    one); json and csv always list every note. The cards and calls waiting for your own hand
    that day are counted beside them.
    """
    from zoneinfo import ZoneInfo

    from scheduler.service.planning import PlanTooFar, plan_day

    config = cli_state(ctx).config()
    zone = ZoneInfo(config.settings.business.timezone)
    moment = parse_now(now)
    wanted = parse_date(day, "--date") or moment.astimezone(zone).date()
    with opened_store(config) as engine:
        try:
            result = plan_day(engine, config.settings, wanted, moment)
        except PlanTooFar as error:
            raise typer.BadParameter(str(error), param_hint="--date") from None
    columns = ["due_at", "send_at", "customer", "name", "kind", "occasion", "status", "reason"]
    rows = [{column: getattr(line, column) for column in columns} for line in result.lines]
    budget = result.budget
    if output_format is OutputFormat.json:
        limit = {
            "daily_budget": budget.budget or None,
            "already_taken": budget.taken,
            "deferred": budget.deferred,
            "expired": budget.expired,
        }
        summary = {"date": wanted, "budget": limit, "by_hand": result.by_hand, "notes": rows}
        out.file.write(to_json(summary) + "\n")
        return
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, columns))
        return
    _print_plan(result, rows, show_all)


def _print_plan(result: Plan, rows: list[dict[str, Any]], show_all: bool) -> None:
    counts = Counter(line.status for line in result.lines)
    parts = [f"{counts[status]} {label}" for status, label in PLAN_SUMMARY if counts[status]]
    title = f"Plan for {result.day}: {counts['pending']} to send"
    out.print(f"{title}" + (f" ({', '.join(parts)})" if parts else ""), markup=False)
    shown = rows if show_all else rows[:PLAN_ROWS_SHOWN]
    for row in shown:
        row["when"] = short_time(row["send_at"] or row["due_at"])
    if shown:
        out.print(table(None, shown, ["when", "customer", "name", "kind", "status", "reason"]))
    if len(shown) < len(rows):
        out.print(
            f"... and {len(rows) - len(shown)} more: --all lists every note "
            "(--format csv or json for a file).",
            markup=False,
        )
    budget = result.budget
    if budget.deferred or budget.expired:
        out.print(
            f"The daily budget of {budget.budget} notes moves {budget.deferred} to later days "
            f"and lets {budget.expired} expire: the notes that send the most value in time go.",
            markup=False,
        )
    if result.by_hand:
        from scheduler.service.queue_report import by_hand_line

        out.print(f"{by_hand_line(result.by_hand)}.", markup=False)


PLAN_SUMMARY = (
    ("sent", "already sent"),
    ("deferred", "deferred"),
    ("expired", "expired"),
    ("suppressed", "suppressed"),
    ("skipped", "skipped"),
    ("failed", "failing"),
)


app.command("preview")(preview)
app.command("send")(send)
app.command("log")(log)
app.command("show")(show)
app.command("retry")(retry)
app.command("run")(run)
app.command("status")(status)
app.command("sink")(sink)
app.command("cards")(cards)

PIPED_WIDTH = 160


def main() -> None:
    """Entry point of the `appreciate` command."""
    widen_when_piped(PIPED_WIDTH)  # a file or a pipe: do not squeeze tables into 80 columns
    only_command(app, sys.argv[1:])(prog_name="appreciate")
