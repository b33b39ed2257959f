"""`appreciate demo`: the whole product on sample data, in a workspace of its own.

In order: a fresh workspace (config, starter templates, store); sample exports written for
today (`scheduler.cli.demo_data`) and imported, bad rows and all; lifetime values computed; a local
SMTP sink started in-process; one full cycle (detect, then write and send what is due, most
valuable customers first within the day's budget); the sent-log and where the delivered .eml
files are. Nothing outside the workspace is written and no network beyond loopback is used.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from sqlalchemy import Connection, Engine, and_, func, select

from scheduler.cli.demo_data import SAMPLE_KINDS, write_samples
from scheduler.cli.workspace import create_workspace
from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.config.settings import Settings
from scheduler.delivery.sent_log import LogFilter, log_rows
from scheduler.detection.detect import detect_on
from scheduler.errors import AppreciateError
from scheduler.importer import import_csv
from scheduler.occasions.timing import local_moment
from scheduler.output import table
from scheduler.service.cycle import CycleReport, open_service, run_cycle
from scheduler.service.sink import ReceivedNote, running_sink
from scheduler.service.valuation import refresh_values
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.models import metadata
from scheduler.store.outbox import OPEN, touches
from scheduler.vocabulary import OCCASION_KINDS

customers = metadata.tables["customers"]

IMPORTED_BEFORE = timedelta(minutes=5)
"""The sample exports are imported this long before the cycle runs, as they would be in real
life: so a referral recorded at 23:59:30 local time is due before the cycle, not after it."""
SEND_WINDOW = "00:00-23:59"
OWNER = "appreciate-demo"
MAILDIR = "mail"
LOG_COLUMNS = ("id", "customer", "kind", "status", "subject")
DEMO_CONFIG: dict[str, dict[str, str | int]] = {
    "business": {
        "name": "Hearth & Kiln Pottery",
        "sender_name": "Ada Lovell",
        "sender_email": "ada@example.com",
        "timezone": "Europe/London",
        "review_url": "https://example.com/review",
        "unsubscribe_url": "https://example.com/unsubscribe/{token}",
    },
    "schedule": {"send_window": SEND_WINDOW},
}


class DemoFolderInUse(AppreciateError):
    """`--dir` names a folder that already holds files."""

    exit_code = 2


def run_demo(console: Console, directory: Path | None, now: datetime) -> Path:
    """Build the demo workspace, run one cycle in it, print what happened; the folder."""
    folder = _demo_folder(directory).resolve()
    workspace = create_workspace(folder)
    config_path = workspace.config_path
    edit_config(config_path, DEMO_CONFIG)
    settings = load_config(config_path).settings
    zone = ZoneInfo(settings.business.timezone)
    console.print(f"Demo workspace: {folder}", markup=False)
    console.print(
        f"It is {now.astimezone(zone):%A %Y-%m-%d %H:%M} in {settings.business.timezone}, the "
        f"business's time zone ({now:%H:%M} UTC). Everything the demo writes is in the "
        "workspace; the only network it uses is loopback.\n",
        markup=False,
    )
    engine = create_store_engine(workspace.database_url)
    try:
        _import_samples(console, engine, folder, now, zone)
        refreshed = refresh_values(engine, settings, now)
        due = notes_due_today(engine, settings, now)
    finally:
        engine.dispose()
    console.print(
        f"Lifetime values computed for {len(refreshed.values.customer_id)} customers "
        f"({refreshed.values.model} model).",
        markup=False,
    )
    budget = max(due - 1, 1)
    received: list[ReceivedNote] = []
    with running_sink(folder / MAILDIR, on_message=received.append) as server:
        edit_config(
            config_path,
            {
                "smtp": {
                    "host": server.host,
                    "port": server.port,
                    "security": "none",
                    "username": "",
                    "password_env": "",
                    "password_file": "",
                },
                "schedule": {"daily_budget": budget},
            },
        )
        console.print(
            f"Config {config_path.name}: send_window = {SEND_WINDOW!r} (so today's notes are due "
            f"whatever time it is), daily_budget = {budget} (one less than the {due} notes due "
            f"today, so one must wait), mail to a local SMTP sink at {server.address} that "
            "keeps every message as a file and relays nothing.\n",
            markup=False,
        )
        service = open_service(config_path)
        try:
            report = asyncio.run(run_cycle(service, FixedClock(now), OWNER))
            with service.engine.connect() as connection:
                rows = _log_table(connection)
        finally:
            service.close()
    _print_cycle(console, report, rows, settings, now)
    _print_mail(console, folder, received, rows)
    _print_next_steps(console, config_path, rows)
    return folder


def _demo_folder(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="appreciate-demo-"))
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DemoFolderInUse(
            f"{directory} is not an empty folder; the demo needs a new or empty one"
        )
    return directory


def edit_config(path: Path, changes: Mapping[str, Mapping[str, str | int]]) -> None:
    """Set keys already written in the TOML file `path` (as the example config writes them),
    keeping every comment and every other line as it is."""
    wanted = {section: dict(keys) for section, keys in changes.items()}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    section = ""
    for number, line in enumerate(lines):
        header = re.fullmatch(r"\s*\[([^\]]+)\]\s*", line)
        if header:
            section = header[1].strip()
            continue
        assignment = re.match(r"(\s*)(\w+)\s*=", line)
        if assignment and assignment[2] in wanted.get(section, {}):
            value = wanted[section].pop(assignment[2])
            lines[number] = f"{assignment[1]}{assignment[2]} = {json.dumps(value)}\n"
    missing = [f"{section}.{key}" for section, keys in wanted.items() for key in keys]
    if missing:
        raise RuntimeError(f"the example config has no {', '.join(missing)}")
    path.write_text("".join(lines), encoding="utf-8")


def _import_samples(
    console: Console, engine: Engine, folder: Path, now: datetime, zone: ZoneInfo
) -> None:
    imported_at = now - IMPORTED_BEFORE
    samples = write_samples(folder / "samples", imported_at, zone)
    console.print(
        f"Sample exports for today, written to {folder / 'samples'} and imported (a few rows "
        "are bad on purpose):",
        markup=False,
    )
    for kind in SAMPLE_KINDS:
        report = import_csv(
            engine,
            kind,
            samples[kind],
            now=imported_at,
            business_zone=zone,
            rejects_path=folder / "samples" / f"{kind}.rejects.csv",
        )
        console.print(
            f"  {kind:<10} {report.rows:>3} rows: {report.inserted} imported, "
            f"{report.rejected_count} rejected",
            markup=False,
        )
        for rejection in report.rejected:
            console.print(f"               line {rejection.line}: {rejection.reason}", markup=False)
    console.print(
        f"  Rejected rows are in {folder / 'samples'}/*.rejects.csv, with a reason column.\n",
        markup=False,
    )


def notes_due_today(engine: Engine, settings: Settings, now: datetime) -> int:
    """How many notes a cycle at `now` will find due on the business's day (what the daily
    budget counts): detection runs in a transaction that is rolled back."""
    zone = ZoneInfo(settings.business.timezone)
    day = now.astimezone(zone).date()
    end = local_moment(day + timedelta(days=1), time(0), zone)
    with write_transaction(engine) as connection:
        detect_on(connection, settings, now)
        due = connection.execute(
            select(func.count())
            .select_from(touches)
            .where(and_(touches.c.status.in_(OPEN), touches.c.due_at < end))
        ).scalar_one()
        connection.rollback()
    return int(due)


@dataclass(frozen=True)
class _Customer:
    name: str
    zone: str | None
    birthday: date | None
    """This year's month and day of their birthday (the year is only a placeholder)."""


def _log_table(connection: Connection) -> list[dict[str, Any]]:
    """The sent-log, oldest note first, with each customer's name, zone and birthday."""
    people = {
        row.external_id: _Customer(
            row.name,
            row.timezone,
            date(2000, row.birth_month, row.birth_day) if row.birth_month else None,
        )
        for row in connection.execute(
            select(
                customers.c.external_id,
                customers.c.name,
                customers.c.timezone,
                customers.c.birth_month,
                customers.c.birth_day,
            )
        )
    }
    rows = sorted(log_rows(connection, LogFilter(limit=0)), key=lambda row: row["id"])
    for row in rows:
        row["person"] = person = people[row["customer_id"]]
        row["customer"] = f"{row['customer_id']} {person.name}"
    return rows


def _print_cycle(
    console: Console,
    report: CycleReport,
    rows: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
) -> None:
    added = ", ".join(
        f"{report.added[kind]} {kind}" for kind in OCCASION_KINDS if kind in report.added
    )
    statuses = Counter(row["status"] for row in rows)
    console.print(
        f"One cycle (detect, then write and send what is due): {len(rows)} occasions "
        f"noticed, {sum(report.added.values())} notes to send ({added or 'none'}). Outcome: "
        + ", ".join(f"{count} {status}" for status, count in statuses.most_common())
        + ".\n",
        markup=False,
    )
    if report.paused:
        console.print(f"SENDING PAUSED: {report.paused}", markup=False)
    console.print(table("The sent-log", rows, LOG_COLUMNS))
    greeted = [
        _greeted(row["person"], settings, now)
        for row in rows
        if row["kind"] == "birthday" and row["person"].birthday is not None
    ]
    if greeted:
        console.print(
            "Birthdays are greeted on the customer's own date: " + "; ".join(greeted) + ".",
            markup=False,
        )
    unsent = [row for row in rows if row["status"] != "sent"]
    if unsent:
        console.print("Not sent, and why:", markup=False)
    for row in unsent:
        console.print(
            f"  {row['id']}  {row['customer']}, {row['kind']}: {row['status']}: {row['reason']}",
            markup=False,
        )
    console.print()


def _greeted(person: _Customer, settings: Settings, now: datetime) -> str:
    """Whose birthday, where, on which day, and whether that day is not the business's."""
    zone = person.zone or settings.business.timezone
    theirs = now.astimezone(ZoneInfo(zone)).date()
    ours = now.astimezone(ZoneInfo(settings.business.timezone)).date()
    birthday = person.birthday
    where = ""
    if birthday is not None and (birthday.month, birthday.day) == (theirs.month, theirs.day):
        if theirs > ours:
            where = " (already tomorrow there)"
        elif theirs < ours:
            where = " (still yesterday there)"
    return f"{person.name.split()[0]} in {zone}, {birthday:%d %b}{where}"


def _print_mail(
    console: Console, folder: Path, received: list[ReceivedNote], rows: list[dict[str, Any]]
) -> None:
    sent = [row for row in rows if row["status"] == "sent"]
    console.print(
        f"The sink received {len(received)} messages for the {len(sent)} sent notes, one .eml "
        f"file each, in {folder / MAILDIR / 'new'}",
        markup=False,
    )
    birthday = next((row for row in sent if row["kind"] == "birthday"), None)
    example = next(
        (note for note in received if birthday and note.subject == birthday["subject"]),
        received[0] if received else None,
    )
    if example is not None:
        console.print(
            f"  e.g. {example.path}\n  to {', '.join(example.recipients)}: {example.subject}\n",
            markup=False,
        )


def _print_next_steps(console: Console, config_path: Path, rows: list[dict[str, Any]]) -> None:
    prefix = f"appreciate --config {config_path}"
    hints = [(f"{prefix} log", "the sent-log, newest first")]
    sent = next((row for row in rows if row["status"] == "sent"), None)
    if sent is not None:
        hints.append((f"{prefix} show {sent['id']}", "one note whole, as sent, with its history"))
    birthday = next((row for row in rows if row["kind"] == "birthday"), None)
    if birthday is not None:
        hints.append(
            (
                f"{prefix} preview birthday --customer {birthday['customer_id']}",
                "a note written from the templates",
            )
        )
    width = max(len(command) for command, _ in hints)
    console.print(
        "Look around (the workspace stays until you delete it):\n"
        + "\n".join(f"  {command:<{width}}   # {what}" for command, what in hints),
        markup=False,
    )
