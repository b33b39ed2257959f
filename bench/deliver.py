"""Benchmark: delivering 20,000 due notes to an SMTP server, three ways, in one run.

Setup: a fresh workspace (SQLite store, the starter templates) with `--n` customers, each with a
birthday note due now, and a server on loopback that accepts every message and discards it:
`--server aiosmtpd` (the default), an aiosmtpd server in a separate process (it offers no
PIPELINING), or `--server postfix`, a private Postfix instance that this script starts and
stops itself (tests/postfix_server.py: Debian's postfix package, run as root; it offers
PIPELINING, and queues each message, fsync included, before its `discard` transport drops it).
Four connections each way (`--connections`).

- appreciate: `Sender.run()`, end to end: claim (with leases), render each note from the
  templates, build its message, save it, send it over `[smtp] connections`, record each
  outcome and its history. Between repeats the notes are put back to pending.
- plain: the notes' subjects and bodies (as appreciate wrote them) sent by a plain aiosmtplib
  loop on as many connections that builds an `EmailMessage` per note (text plus an html alternative,
  From, To, Subject, Date, Message-ID) and calls `send_message`.
- ceiling: the same loop sending bytes serialised beforehand (`sendmail`), i.e. what the network
  and the server allow. aiosmtplib never pipelines (it sends MAIL, each RCPT and DATA one
  round trip at a time, PIPELINING offered or not), so against Postfix appreciate may beat it.

Each is run `--repeat` times; prints the median notes/s (and the range), the CPU a note and how
busy this process and the aiosmtpd server were (CPU time over wall time), and the ratios.
Targets (issue 13): appreciate at least 3.5x the plain loop and at least 0.7x the ceiling, in the
same run. Exits 0 either way (a measurement, not a test).

    python bench/deliver.py                    # 20,000 notes, 3 repeats: a few minutes
    python bench/deliver.py --n 2000 --repeat 1  # a quick check
    python bench/deliver.py --server postfix     # the same against a private Postfix
    python bench/deliver.py --connections 16     # 16 connections each way
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, delete, insert, select, update

from scheduler.cli.workspace import create_workspace
from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.delivery.deliver import Sender
from scheduler.delivery.smtp_client import ServerSettings
from scheduler.notes.render import NoteRenderer
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' Postfix helper

from tests.postfix_server import private_postfix

NOW = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)
CONNECTIONS = 4
TARGET_PLAIN = 3.5
TARGET_CEILING = 0.7
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
touch_events = metadata.tables["touch_events"]
FIRST = ["Ann", "Liam", "Mia", "Noah", "Olivia", "Zoë", "José", "Grace", "Søren", "Ruth"]
LAST = ["Lee", "Smith", "O'Brien", "Taylor", "Brown", "Walker", "Hughes", "Khan", "Wood"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The server ------------------------------------------------------------------------------------


def serve(port: int) -> None:
    """The discarding server (run in its own process): accept everything, keep nothing."""

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 Ok: discarded"

    controller = Controller(
        Discard(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True, data_size_limit=0
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(port: int) -> subprocess.Popen[str]:
    """The discarding aiosmtpd server in a process of its own (cycle.py uses it too); closing
    its stdin stops it."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if server.stdout is None or server.stdout.readline().strip() != "ready":
        raise SystemExit("the SMTP server did not start")
    return server


@contextmanager
def aiosmtpd_server() -> Iterator[int]:
    """`start_server` on a free port for the block; its port."""
    port = free_port()
    server = start_server(port)
    SERVER_PIDS[:] = [server.pid]
    try:
        yield port
    finally:
        SERVER_PIDS.clear()
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)


@contextmanager
def postfix_server() -> Iterator[int]:
    """A private discarding Postfix (see tests/postfix_server.py) for the block; its port."""
    with private_postfix() as postfix:
        log(f"a private Postfix on 127.0.0.1:{postfix.port}, in {postfix.folder}")
        yield postfix.port


SERVERS = {"aiosmtpd": aiosmtpd_server, "postfix": postfix_server}


# The store -------------------------------------------------------------------------------------


def build_store(folder: Path, n: int) -> Path:
    """A workspace whose store has `n` customers, each with a birthday note due at NOW."""
    workspace = create_workspace(folder, force=True)
    rng = random.Random(20271)
    engine = create_store_engine(workspace.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(customers),
                [
                    {
                        "external_id": f"C-{i}",
                        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                        "email": f"customer{i}@example.com",
                        "birth_month": 6,
                        "birth_day": 15,
                        "timezone": "Europe/London",
                        "customer_since": datetime(2020 + i % 6, 1 + i % 12, 1).date(),
                        "attributes": {},
                    }
                    for i in range(n)
                ],
            )
            ids = connection.execute(select(customers.c.id)).scalars().all()
            connection.execute(
                insert(touches),
                [
                    {
                        "customer_id": customer_id,
                        "kind": "birthday",
                        "occasion_key": "birthday:2027",
                        "status": "pending",
                        "due_at": NOW,
                        "expires_at": NOW + timedelta(days=3),
                    }
                    for customer_id in ids
                ],
            )
    finally:
        engine.dispose()
    return workspace.config_path


def reset(engine: Engine) -> None:
    """Every note back to pending, as if never sent."""
    with engine.begin() as connection:
        connection.execute(delete(touch_events))
        connection.execute(
            update(touches).values(
                status="pending",
                reason=None,
                attempts=0,
                sent_at=None,
                last_reply=None,
                lease_owner=None,
                lease_until=None,
                message_id=None,
                headers=None,
            )
        )


# The three ways --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """How long one way took: wall-clock seconds, this process's CPU seconds (every thread),
    and the server's CPU seconds (the aiosmtpd process; None for Postfix, whose work is spread
    over several processes)."""

    wall: float
    cpu: float
    server_cpu: float | None = None


SERVER_PIDS: list[int] = []
"""The aiosmtpd server's process while it runs (its CPU time is read from /proc)."""


def server_cpu() -> float | None:
    """The server's CPU seconds so far (user and system), or None when unknown."""
    if not SERVER_PIDS:
        return None
    try:
        with open(f"/proc/{SERVER_PIDS[0]}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Stopwatch:
    def __init__(self) -> None:
        self._server = server_cpu()
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def span(self) -> Span:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        server, before = server_cpu(), self._server
        return Span(wall, cpu, None if server is None or before is None else server - before)


def run_appreciate(
    config_path: Path, port: int, connections: int = CONNECTIONS
) -> tuple[Span, int]:
    config = load_config(config_path)
    smtp = config.settings.smtp.model_copy(update={"connections": connections})
    settings = config.settings.model_copy(update={"smtp": smtp})
    engine = create_store_engine(config.database_url())
    try:
        reset(engine)
        server = ServerSettings("127.0.0.1", port, "none", "", None, 30.0, None)
        sender = Sender(
            engine,
            settings,
            server,
            NoteRenderer(config.templates_dir),
            FixedClock(NOW),
            owner="bench",
            rng=random.Random(1),
        )
        watch = _Stopwatch()
        report = asyncio.run(sender.run())
        elapsed = watch.span()
    finally:
        engine.dispose()
    return elapsed, report.counts["sent"]


@dataclass(frozen=True)
class Note:
    name: str
    email: str
    subject: str
    text: str
    html: str | None


def written_notes(config_path: Path) -> list[Note]:
    """The notes as appreciate wrote them (after an appreciate run)."""
    config = load_config(config_path)
    engine = create_store_engine(config.database_url())
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    customers.c.name,
                    customers.c.email,
                    touches.c.subject,
                    touches.c.body_text,
                    touches.c.body_html,
                ).join(customers, customers.c.id == touches.c.customer_id)
            ).all()
    finally:
        engine.dispose()
    return [Note(*row) for row in rows]


def email_message(note: Note) -> EmailMessage:
    """The naive way: an EmailMessage per note."""
    message = EmailMessage()
    message["From"] = Address("Ada", addr_spec="ada@example.com")
    message["To"] = Address(note.name, addr_spec=note.email)
    message["Subject"] = note.subject
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(note.text)
    if note.html:
        message.add_alternative(note.html, subtype="html")
    return message


async def _pooled(
    port: int, items: Sequence[object], send: SendOne, connections: int = CONNECTIONS
) -> None:
    queue = list(reversed(items))

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await smtp.connect()
        while queue:
            await send(smtp, queue.pop())
        await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))


SendOne = Callable[[aiosmtplib.SMTP, object], Awaitable[object]]


async def _send_built(smtp: aiosmtplib.SMTP, note: object) -> object:
    if not isinstance(note, Note):
        raise TypeError(note)
    return await smtp.send_message(email_message(note))


async def _send_bytes(smtp: aiosmtplib.SMTP, item: object) -> object:
    if not isinstance(item, tuple):
        raise TypeError(item)
    recipient, data = item
    return await smtp.sendmail("ada@example.com", [recipient], data)


def run_plain(notes: Sequence[Note], port: int, connections: int = CONNECTIONS) -> Span:
    watch = _Stopwatch()
    asyncio.run(_pooled(port, notes, _send_built, connections))
    return watch.span()


def run_ceiling(notes: Sequence[Note], port: int, connections: int = CONNECTIONS) -> Span:
    serialised = [(note.email, email_message(note).as_bytes()) for note in notes]
    watch = _Stopwatch()
    asyncio.run(_pooled(port, serialised, _send_bytes, connections))
    return watch.span()


# Reporting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """One way's medians over its runs."""

    rate: float
    spread: str
    cpu_ms: float
    busy: float
    """This process's CPU time over the wall time (1.0: one CPU busy all the run)."""
    server_cpu_ms: float | None
    server_busy: float | None


def _rates(n: int, spans: Sequence[Span]) -> Rates:
    """The median notes/s, the range of the runs, the median CPU milliseconds a note and busy
    share, this process's and the server's."""
    rates = sorted(n / span.wall for span in spans)
    server = [span for span in spans if span.server_cpu is not None]
    return Rates(
        statistics.median(rates),
        f"{rates[0]:,.0f}-{rates[-1]:,.0f}",
        statistics.median(1000 * span.cpu / n for span in spans),
        statistics.median(span.cpu / span.wall for span in spans),
        statistics.median(1000 * (s.server_cpu or 0) / n for s in server) if server else None,
        statistics.median((s.server_cpu or 0) / s.wall for s in server) if server else None,
    )


def _measure(port: int, n: int, repeat: int, connections: int) -> dict[str, list[Span]]:
    """How long each way took, `repeat` runs of each, alternating."""
    with tempfile.TemporaryDirectory(prefix="appreciate-deliver-") as folder:
        log(f"building a store with {n:,} due notes ...")
        config_path = build_store(Path(folder), n)
        timings: dict[str, list[Span]] = {"appreciate": [], "plain": [], "ceiling": []}
        for run in range(repeat):
            elapsed, sent = run_appreciate(config_path, port, connections)
            if sent != n:
                raise SystemExit(f"appreciate sent {sent} of {n} notes")
            timings["appreciate"].append(elapsed)
            notes = written_notes(config_path)
            timings["plain"].append(run_plain(notes, port, connections))
            timings["ceiling"].append(run_ceiling(notes, port, connections))
            log(
                f"run {run + 1}: appreciate {elapsed.wall:.2f} s, plain "
                f"{timings['plain'][-1].wall:.2f} s, ceiling {timings['ceiling'][-1].wall:.2f} s"
            )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000, help="notes (default 20,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (default 3)")
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="aiosmtpd",
        help="the discarding server: aiosmtpd in a process (default) or a private Postfix",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"connections each way, appreciate's [smtp] connections too (default {CONNECTIONS})",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    with SERVERS[args.server]() as port:
        timings = _measure(port, args.n, args.repeat, args.connections)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    medians = {way: _rates(args.n, spans) for way, spans in timings.items()}
    cpus = os.cpu_count()
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(
        f"{args.n:,} notes to {args.server}, {args.connections} connections, {args.repeat} runs, "
        f"{cpus} CPUs, load average now {load}"
    )
    for way, got in medians.items():
        server = (
            f"; the server {got.server_cpu_ms:.3f} ms ({got.server_busy:.0%} busy)"
            if got.server_cpu_ms is not None and got.server_busy is not None
            else ""
        )
        print(
            f"  {way:<11} {got.rate:>8,.0f} notes/s (median; runs {got.spread}), "
            f"{got.cpu_ms:.3f} ms CPU a note in this process ({got.busy:.0%} busy){server}"
        )
    appreciate, plain, ceiling = (medians[w].rate for w in ("appreciate", "plain", "ceiling"))
    for name, ratio, target in (
        ("plain  ", appreciate / plain, TARGET_PLAIN),
        ("ceiling", appreciate / ceiling, TARGET_CEILING),
    ):
        verdict = "met" if ratio >= target else "NOT met"
        print(f"  appreciate / {name} {ratio:.2f}x (target >= {target}x: {verdict})")
    print(f"  plain / ceiling      {plain / ceiling:.2f}x")
    print(f"  peak RSS of this process: {rss_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
