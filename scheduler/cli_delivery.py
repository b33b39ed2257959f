"""`appreciate send`, `log`, `show` and `retry`: deliver the due notes and review the sent-log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from scheduler.claims import resume
from scheduler.cli_common import (
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_date,
    parse_now,
)
from scheduler.clock import FixedClock, SystemClock
from scheduler.config import Config
from scheduler.cycle import instance_name
from scheduler.deliver import Sender, server_settings
from scheduler.interruption import Interruption, release_held, stopped_line
from scheduler.output import OutputFormat, printable, table, to_csv, to_json
from scheduler.render import NoteRenderer
from scheduler.sent_log import LOG_COLUMNS, LogFilter, log_rows, requeue, touch_detail
from scheduler.settings import OCCASION_KINDS
from scheduler.store.db import write_transaction

STATUSES = (
    "pending",
    "deferred",
    "claimed",
    "sending",
    "sent",
    "failed",
    "unknown",
    "held",
    "suppressed",
    "expired",
    "skipped",
)


def _one_of(choices: tuple[str, ...]) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f'"{value}" is not one of: {", ".join(choices)}')
        return value

    return check


def send(
    ctx: typer.Context,
    now: NowOption = None,
    resume_sending: Annotated[
        bool,
        typer.Option("--resume", help="Lift a pause (after fixing the login or TLS) and send."),
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Deliver every note that is due, once, and report the outcome per status.

    Notes are written from your templates, sent over [smtp], and recorded in the sent-log. A
    refused login, a server without the required TLS or one that does not greet like a mail
    server pauses sending for every instance until you run `appreciate send --resume`. A
    server that throttles slows every instance down for a while (`appreciate status` says
    until when). Ctrl-C (or SIGTERM) stops sending, lets the sends under way finish within
    [schedule] stop_within, gives back the notes not sent and exits 130 (143).
    """
    config = cli_state(ctx).config()
    moment = parse_now(now) if now else None
    clock = FixedClock(moment) if moment else SystemClock()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with opened_store(config) as engine:
        if resume_sending:
            with write_transaction(engine) as connection:
                reason = resume(connection)
            if reason:
                err.print(f"Sending resumed (it was paused: {reason}).", markup=False)
        owner = instance_name()
        sender = Sender(
            engine,
            config.settings,
            server_settings(config),
            NoteRenderer(config.templates_dir),
            clock,
            owner=owner,
        )
        interruption = Interruption(config.settings.schedule.stop_within)
        report = asyncio.run(interruption.run(interruption.watch(sender).run()))
        if interruption.received is not None:
            released = release_held(engine, owner, clock)
            err.print(stopped_line(interruption.received, *released), markup=False)
    if report is None:  # stopped before the end
        raise typer.Exit(interruption.exit_code)
    rows = [{"status": status, "notes": count} for status, count in sorted(report.counts.items())]
    if output_format is OutputFormat.json:
        out.file.write(to_json({"outcomes": dict(report.counts), "paused": report.paused}) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["status", "notes"]))
    else:
        out.print(table("Delivery", rows, ["status", "notes"]))
    if report.throttled is not None:
        err.print(f"SENDING SLOWED DOWN: {printable(report.throttled.line())}", markup=False)
    if interruption.received is not None:
        raise typer.Exit(interruption.exit_code)
    if report.paused:
        err.print(
            f"SENDING IS PAUSED: {report.paused}\nFix the cause, then run "
            "`appreciate send --resume`.",
            markup=False,
        )
        raise typer.Exit(1)


def log(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", callback=_one_of(STATUSES), help=f"Only notes in this status: {STATUSES}."
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", callback=_one_of(OCCASION_KINDS), help="Only this occasion kind."),
    ] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", metavar="ID", help="Only this customer.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="Due on or after.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="YYYY-MM-DD", help="Due on or before.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The sent-log: every note with its status and why, newest first."""
    config = cli_state(ctx).config()
    wanted = LogFilter(
        status, kind, customer, parse_date(since, "--since"), parse_date(until, "--until"), limit
    )
    with opened_store(config) as engine, engine.connect() as connection:
        rows = log_rows(connection, wanted)
    if output_format is OutputFormat.json:
        out.file.write(to_json(rows) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, LOG_COLUMNS))
    else:
        columns = ["id", "due_at", "customer_id", "kind", "status", "subject", "reason"]
        out.print(table(f"Sent-log: {len(rows)} notes", rows, columns))


def show(
    ctx: typer.Context,
    touch_id: Annotated[int, typer.Argument(metavar="ID", help="The note's id (see `log`).")],
) -> None:
    """One note whole, as sent (headers and bodies), and its history."""
    config = cli_state(ctx).config()
    with opened_store(config) as engine, engine.connect() as connection:
        detail = touch_detail(connection, touch_id)
    row = detail.row
    for key in LOG_COLUMNS:
        if row[key] is not None:
            value = row[key].isoformat() if isinstance(row[key], datetime) else row[key]
            out.print(f"{key}: {value}", markup=False)
    if detail.headers:
        out.print("\n" + detail.headers.replace("\r\n", "\n"), markup=False)
    if detail.body_text:
        out.print("\n" + detail.body_text, markup=False)
    if detail.body_html:
        out.print("\n--- html ---\n" + detail.body_html, markup=False)
    out.print("\nHistory:", markup=False)
    for event in detail.history:
        reason = f": {event['reason']}" if event["reason"] else ""
        out.print(f"  {event['at']:%Y-%m-%d %H:%M:%S} UTC  {event['status']}{reason}", markup=False)


def retry(
    ctx: typer.Context,
    touch_id: Annotated[int, typer.Argument(metavar="ID", help="The note's id (see `log`).")],
    now: NowOption = None,
) -> None:
    """Send a failed, unknown or held note again, on purpose (with the same Message-ID)."""
    config: Config = cli_state(ctx).config()
    with opened_store(config) as engine, write_transaction(engine) as connection:
        was = requeue(connection, touch_id, parse_now(now))
    out.print(f"Note {touch_id} ({was}) is queued again; the next send delivers it.")
