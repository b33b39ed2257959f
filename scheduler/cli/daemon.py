"""`appreciate run` (the service, or one cycle with --once) and `appreciate status`."""

from __future__ import annotations

import os
import signal
from functools import partial
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
    quick_store,
)
from scheduler.clock import FixedClock, SystemClock
from scheduler.output import OutputFormat, printable, table, to_csv, to_json

if TYPE_CHECKING:
    from scheduler.notes.template_failures import TemplateFailures
    from scheduler.service.cycle import CycleReport


def run(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option("--once", help="One full cycle (detect, prioritise, write, send), then exit."),
    ] = False,
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Run appreciate as a service: notice occasions, write and send the notes, around the clock.

    Checks the config, the store and the SMTP password first, and exits with the errors if any
    is wrong; template problems are logged (ERROR, with file and line) but only fail the notes
    they write. Then runs until SIGTERM or Ctrl-C (the sends under way finish);
    SIGHUP reloads the config and templates. Under systemd it reports READY, STATUS and the
    watchdog (see deploy/appreciate.service). With --once it runs one cycle and exits, for cron
    and backfills (--now sets the moment); Ctrl-C or SIGTERM stops it as they stop the service,
    with exit code 130 (143).
    """
    import asyncio

    from scheduler.config.file import find_config
    from scheduler.service.cycle import (
        instance_name,
        log_template_findings,
        open_service,
        run_cycle,
    )
    from scheduler.service.daemon import Daemon
    from scheduler.service.interruption import Interruption, release_held, stopped_line
    from scheduler.service.systemd_notify import Notifier
    from scheduler.web.serve import start_embedded

    state = cli_state(ctx)
    config_path = find_config(state.config_option, os.environ, Path.cwd())
    if now is not None and not once:
        raise typer.BadParameter("--now goes with --once (the service runs on the real clock)")
    clock = FixedClock(parse_now(now)) if now else SystemClock()  # refused before the store opens
    hangups: list[int] = []
    if not once:  # SIGHUP during start-up: reloaded once running (its default action kills)
        signal.signal(signal.SIGHUP, lambda number, _frame: hangups.append(number))
    password_hash = None if once else _web_password_hash(config_path)
    from scheduler.cli.service_logging import setup_logging

    setup_logging()
    service = open_service(config_path)
    if once:
        log_template_findings(service, "at start")
        owner = instance_name()
        interruption = Interruption(service.config.settings.schedule.stop_within)
        try:
            report = asyncio.run(
                interruption.run(run_cycle(service, clock, owner, interruption.watch))
            )
            if interruption.received is not None:
                released = release_held(service.engine, owner, clock)
                err.print(stopped_line(interruption.received, *released), markup=False)
        finally:
            service.close()
        if report is not None:
            _print_cycle(report, output_format)
            if report.throttled is not None:
                slowed = printable(report.throttled.line())
                err.print(f"SENDING SLOWED DOWN: {slowed}", markup=False)
        if interruption.received is not None:
            raise typer.Exit(interruption.exit_code)
        if report is not None and report.paused:
            err.print(f"SENDING IS PAUSED: {report.paused}", markup=False)
            raise typer.Exit(1)
        return
    with Notifier.from_environ(os.environ) as notifier:
        companion = partial(
            start_embedded,
            password_hash=password_hash,
            templates_dir=service.config.templates_dir,
            spool=service.spool,
        )
        daemon = Daemon(config_path, service, SystemClock(), notifier, instance_name(), companion)
        code = asyncio.run(daemon.serve(hangups))
    raise typer.Exit(code)


def _web_password_hash(config_path: Path) -> str | None:
    """The owner's password hash for the web the service serves; exits when `[web] enabled`
    would serve beyond this machine without one (before the store is opened)."""
    from scheduler.config.file import load_config
    from scheduler.web.login import needs_password

    config = load_config(config_path)
    password_hash = config.web_password_hash()
    web = config.settings.web
    if web.enabled and password_hash is None and needs_password(web.host):
        err.print(
            f"Refusing to serve the web on {web.host}, beyond this machine, without an owner "
            "password: make one with `appreciate web hash-password` and name it as [web] "
            'password_hash_file (or password_hash_env), or set [web] host = "127.0.0.1".',
            markup=False,
        )
        raise typer.Exit(1)
    return password_hash


def _print_cycle(report: CycleReport, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        out.file.write(to_json(report.as_dict()) + "\n")
        return
    rows = [{"what": f"added {kind}", "notes": n} for kind, n in sorted(report.added.items())]
    rows += [{"what": status, "notes": n} for status, n in sorted(report.outcomes.items())]
    rows += [
        {"what": f"came back: {kind}", "notes": n} for kind, n in sorted(report.came_back.items())
    ]
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["what", "notes"]))
    else:
        out.print(table(f"Cycle at {report.at:%Y-%m-%d %H:%M} UTC", rows, ["what", "notes"]))


def _print_template_failures(failures: list[TemplateFailures]) -> None:
    """Loud: notes keep failing until the template is fixed."""
    notes = sum(failure.notes for failure in failures)
    out.print(
        f"TEMPLATE PROBLEMS: {notes} {'note' if notes == 1 else 'notes'} failed on a template "
        "and are still failed:",
        style="bold red",
        markup=False,
    )
    for failure in failures:
        out.print(
            printable(
                f"  {failure.notes} {'note' if failure.notes == 1 else 'notes'}: "
                f"{failure.problem} (last {failure.last_failed_at:%Y-%m-%d %H:%M} UTC)"
            ),
            style="red",
            markup=False,
        )
    out.print(
        "Fix the template (`appreciate templates check`, `appreciate preview`), then "
        "`appreciate retry ID` for each note still worth sending "
        "(`appreciate log --status failed`).",
        markup=False,
    )


def status(ctx: typer.Context, output_format: FormatOption = OutputFormat.table) -> None:
    """How the service is doing: the last cycle, the queue, what needs you, and any pause."""
    from scheduler.service.queue_report import ATTENTION, by_hand_line

    with quick_store(ctx) as quick:
        if quick is not None:
            from scheduler.service.sqlite_reads import queue_status as quick_status

            found = quick_status(quick)
    if quick is None:
        from scheduler.service.queue_status import queue_status

        with opened_store(cli_state(ctx).config()) as engine, engine.connect() as connection:
            found = queue_status(connection)
    if output_format is OutputFormat.json:
        payload = {
            "last_cycle": found.last_cycle,
            "queue": found.by_status,
            "oldest_due": found.oldest_due,
            "needs_attention": found.attention,
            "paused": found.paused,
            "template_failures": [failures.as_dict() for failures in found.template_failures],
            "throttled": found.throttled.as_dict() if found.throttled else None,
            "replies": found.replies,
            "by_hand": found.by_hand,
        }
        out.file.write(to_json(payload) + "\n")
        return
    rows = [{"status": s, "notes": n} for s, n in found.by_status.items()]
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, ["status", "notes"]))
        return
    cycle = found.last_cycle
    if cycle is None:
        out.print("Last cycle: none yet (is `appreciate run` running?)")
    else:
        outcomes = ", ".join(f"{n} {s}" for s, n in sorted(cycle["outcomes"].items())) or "none"
        added = sum(cycle["added"].values())
        out.print(f"Last cycle: {cycle['at']}: {added} notes added; sent: {outcomes}", markup=False)
    oldest = f"{found.oldest_due:%Y-%m-%d %H:%M} UTC" if found.oldest_due else "nothing waiting"
    out.print(f"Oldest note waiting: {oldest}", markup=False)
    if found.template_failures:
        _print_template_failures(found.template_failures)
    out.print(table("Queue", rows, ["status", "notes"]))
    if found.by_hand:
        out.print(by_hand_line(found.by_hand), markup=False)
    if found.replies:
        answered = ", ".join(f"{n} {kind}" for kind, n in found.replies.items())
        out.print(f"Notes customers answered: {answered}", markup=False)
    if found.attention:
        out.print(
            f"{found.attention} notes need you ({', '.join(ATTENTION)}): see "
            "`appreciate log --status failed` and `appreciate retry ID`.",
            markup=False,
        )
    if found.paused:
        err.print(
            f"SENDING IS PAUSED: {found.paused}\nFix the cause, then `appreciate send --resume`.",
            markup=False,
        )
    if found.throttled:
        err.print(f"SENDING SLOWED DOWN: {printable(found.throttled.line())}", markup=False)
