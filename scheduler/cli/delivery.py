"""`appreciate send`, `log`, `show` and `retry`: deliver the due notes and review the sent-log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.common import (
    FormatOption,
    NowOption,
    cli_state,
    err,
    one_of,
    opened_store,
    out,
    parse_date,
    parse_now,
    quick_store,
    short_time,
)
from scheduler.clock import FixedClock, SystemClock
from scheduler.output import OutputFormat, counted, printable, table, to_csv, to_json
from scheduler.vocabulary import MAX_ID, OCCASION_KINDS, RETRYABLE, STATUSES

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scheduler.config.file import Config
    from scheduler.delivery.deliver import SendReport
    from scheduler.delivery.smtp_client import ServerSettings
    from scheduler.notes.dkim_signing import DkimSigner


# The filters `log` and `retry` share.
KindOption = Annotated[
    str | None,
    typer.Option("--kind", callback=one_of(OCCASION_KINDS), help="Only this occasion kind."),
]
CustomerOption = Annotated[
    str | None, typer.Option("--customer", metavar="ID", help="Only this customer.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="Due on or after.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", metavar="YYYY-MM-DD", help="Due on or before.")
]


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
    from scheduler.delivery.claims import resume
    from scheduler.store.db import write_transaction

    config = cli_state(ctx).config()
    sending = _sending(config)
    with opened_store(config) as engine:
        if resume_sending:
            with write_transaction(engine) as connection:
                reason = resume(connection)
            if reason:
                err.print(f"Sending resumed (it was paused: {reason}).", markup=False)
        report = _deliver(config, engine, now, sending)
    rows = [{"status": status, "notes": count} for status, count in sorted(report.counts.items())]
    if output_format is OutputFormat.json:
        out.file.write(to_json({"outcomes": dict(report.counts), "paused": report.paused}) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["status", "notes"]))
    else:
        out.print(table("Delivery", rows, ["status", "notes"]))
    _exit_if_paused(report)


def _sending(config: Config) -> tuple[ServerSettings, DkimSigner | None]:
    """The server with its password, and the DKIM signer with its key: read before anything
    changes, so a password or key that cannot be used stops the command first."""
    from scheduler.delivery.deliver import server_settings
    from scheduler.notes.dkim_signing import DkimSigner

    return server_settings(config), DkimSigner.configured(config)


def _deliver(
    config: Config,
    engine: Engine,
    now: str | None,
    sending: tuple[ServerSettings, DkimSigner | None],
    only: Sequence[int] | None = None,
) -> SendReport:
    """One delivery run (of the notes `only` names, when given), stopped as the service stops on
    Ctrl-C or SIGTERM: then the notes held are given back and the command exits 130 (143)."""
    import asyncio
    import logging

    from scheduler.delivery.deliver import Sender
    from scheduler.notes.render import NoteRenderer
    from scheduler.service.cycle import instance_name
    from scheduler.service.interruption import Interruption, release_held, stopped_line
    from scheduler.store.opt_out_spool import OptOutSpool

    clock = FixedClock(parse_now(now)) if now else SystemClock()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    owner = instance_name()
    server, signer = sending
    sender = Sender(
        engine,
        config.settings,
        server,
        NoteRenderer.configured(config.templates_dir, config.settings),
        clock,
        owner=owner,
        only=only,
        signer=signer,
        spool=OptOutSpool.of(config),
    )
    interruption = Interruption(config.settings.schedule.stop_within)
    report = asyncio.run(interruption.run(interruption.watch(sender).run()))
    if interruption.received is not None:
        released = release_held(engine, owner, clock)
        err.print(stopped_line(interruption.received, *released), markup=False)
        raise typer.Exit(interruption.exit_code)
    if report is None:  # pragma: no cover - only an interruption cancels the run
        raise typer.Exit(1)
    return report


def _exit_if_paused(report: SendReport) -> None:
    """Say loudly when the server slowed sending down, and exit 1 when sending is paused."""
    if report.throttled is not None:
        err.print(f"SENDING SLOWED DOWN: {printable(report.throttled.line())}", markup=False)
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
            "--status", callback=one_of(STATUSES), help=f"Only notes in this status: {STATUSES}."
        ),
    ] = None,
    kind: KindOption = None,
    customer: CustomerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, max=MAX_ID, help="At most this many (0: all).")
    ] = 50,
    replied: Annotated[
        bool, typer.Option("--replied", help="Only notes a customer answered (a person's reply).")
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The sent-log: every note with its status and why, the latest activity first.

    The table shows when each note last changed (UTC) and fits a narrow terminal; json and csv
    have every column."""
    from scheduler.delivery.log_filter import LOG_COLUMNS, LogFilter

    wanted = LogFilter(
        status,
        kind,
        customer,
        parse_date(since, "--since", any_year=True),
        parse_date(until, "--until", any_year=True),
        limit,
        replied=replied,
    )
    with quick_store(ctx) as quick:
        if quick is not None:
            from scheduler.service.sqlite_reads import log_rows as quick_log_rows

            rows = quick_log_rows(quick, wanted)
    if quick is None:
        from scheduler.delivery.sent_log import log_rows

        with opened_store(cli_state(ctx).config()) as engine, engine.connect() as connection:
            rows = log_rows(connection, wanted)
    if output_format is OutputFormat.json:
        out.file.write(to_json(rows) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, LOG_COLUMNS))
    else:
        for row in rows:
            row["when"] = short_time(row["updated_at"])
        columns = ["id", "when", "customer_id", "kind", "status", "subject", "reason"]
        out.print(table(f"Sent-log: {counted(len(rows), 'note')}", rows, columns))


def show(
    ctx: typer.Context,
    touch_id: Annotated[
        int, typer.Argument(metavar="ID", max=MAX_ID, help="The note's id (see `log`).")
    ],
) -> None:
    """One note whole, as sent (headers and bodies), and its history."""
    from scheduler.delivery.sent_log import LOG_COLUMNS, touch_detail

    config = cli_state(ctx).config()
    with opened_store(config) as engine, engine.connect() as connection:
        detail = touch_detail(connection, touch_id)
    row = detail.row
    for key in LOG_COLUMNS:
        if row[key] is not None:
            value = row[key].isoformat() if isinstance(row[key], datetime) else row[key]
            out.print(printable(f"{key}: {value}"), markup=False)
    if detail.headers:
        out.print("\n" + printable(detail.headers.replace("\r\n", "\n")), markup=False)
    if detail.body_text:
        out.print("\n" + printable(detail.body_text), markup=False)
    if detail.body_html:
        out.print("\n--- html ---\n" + printable(detail.body_html), markup=False)
    out.print("\nHistory:", markup=False)
    for event in detail.history:
        reason = f": {event['reason']}" if event["reason"] else ""
        line = f"  {event['at']:%Y-%m-%d %H:%M:%S} UTC  {event['status']}{reason}"
        out.print(printable(line), markup=False)
    if detail.came_back:
        out.print("\nWhat came back:", markup=False)
    for message in detail.came_back:
        said = (message["detail"] or "").replace("\n", "\n" + " " * 30)
        line = f"  {message['received_at']:%Y-%m-%d %H:%M:%S} UTC  {message['kind']}: {said}"
        out.print(printable(line), markup=False)


def retry(
    ctx: typer.Context,
    touch_ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID", max=MAX_ID, help="The notes' ids (see `log`).", show_default=False
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            callback=one_of(RETRYABLE),
            help=f"Every note in this status: {', '.join(RETRYABLE)}.",
        ),
    ] = None,
    kind: KindOption = None,
    customer: CustomerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    queue_only: Annotated[
        bool,
        typer.Option("--queue", help="Only queue them again; the next delivery sends them."),
    ] = False,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Send failed, unknown or held notes again, on purpose, at once (with the same Message-ID).

    Name the notes by id (`appreciate retry 12 15`), or pick them as `log` does
    (`appreciate retry --status failed --since 2027-06-01`; --status is needed then). They go
    now, whatever their lateness and outside the daily budget, each with a fresh set of
    attempts; the table shows what became of each.
    """
    from scheduler.delivery.sent_log import LogFilter, log_rows, requeue, retryable
    from scheduler.store.db import write_transaction

    config: Config = cli_state(ctx).config()
    ids = list(touch_ids or [])
    filters = (kind, customer, since, until)
    if ids and (status or any(filters)):
        raise typer.BadParameter("give note ids, or --status with filters, not both")
    if not ids and status is None:
        raise typer.BadParameter("name the notes: their ids, or --status (with filters)")
    wanted = LogFilter(
        status,
        kind,
        customer,
        parse_date(since, "--since", any_year=True),
        parse_date(until, "--until", any_year=True),
        0,
    )
    moment = parse_now(now)
    sending = None if queue_only else _sending(config)
    with opened_store(config) as engine:
        with write_transaction(engine) as connection:
            ids = ids or retryable(connection, wanted)
            was = requeue(connection, ids, moment) if ids else {}
        if not was:
            out.print("No note matches: nothing to send again.")
            return
        if sending is None:
            out.print(
                f"{counted(len(was), 'note')} {'is' if len(was) == 1 else 'are'} queued again; "
                "the next delivery sends them."
            )
            return
        report = _deliver(config, engine, now, sending, only=list(was))
        with engine.connect() as connection:
            rows = log_rows(connection, LogFilter(limit=0, touch_ids=tuple(was)))
    for row in rows:
        row["was"] = was[row["id"]]
    columns = ["id", "customer_id", "kind", "was", "status", "reason"]
    rows.sort(key=lambda row: row["id"])
    if output_format is OutputFormat.json:
        out.file.write(to_json([{c: row[c] for c in columns} for row in rows]) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, columns))
    else:
        counts = ", ".join(
            f"{n} {s}" for s, n in sorted(Counter(r["status"] for r in rows).items())
        )
        out.print(table(f"Sent again: {counts}", rows, columns))
    _exit_if_paused(report)
