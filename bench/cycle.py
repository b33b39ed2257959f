"""Benchmark: one `appreciate run --once` cycle on a store of 1M customers, to an SMTP sink.

What it measures: the store of `detect.py` (1M customers and 5M orders imported with the real
importer from the same deterministic CSVs, caught up by a real detection run at 11:55Z on
2026-11-23, then 10,000 new orders placed in the two hours before 12:00Z), caught up with
`[schedule] send_window = "00:00-23:59"` so that today's birthdays, anniversaries and follow-ups
are due from the start of each customer's day. Every other setting keeps its default
(`min_days_between = 7` spaces a customer's notes when several fall together; no daily
budget), but `[smtp]`: an aiosmtpd server on loopback, in a process of its own, that accepts
every message and discards it (`deliver.py`'s), over `connections = 4`, plaintext, no login.

One cycle at 14:00Z (a FixedClock), the steps of `appreciate run --once --now
2026-11-23T14:00:00Z` (with its logging: a line per note, to a file): open the service (config,
templates check, store), detection (it records the new orders' thanks, due two hours after each
order, and the birthdays of the zones whose day began since 11:55Z), delivery of everything due
(`Sender.run()`: claim, contexts, render, build, save, send, record) and saving the cycle's
report. Delivery is split further by timing the Sender's steps from outside (wrapping the
functions it calls, so the split follows `scheduler.delivery.deliver`'s internals; exclusive
times, so they add up to the phase). Each repeat runs on a fresh copy of the built store (copied and
flushed to disk outside the timed part) in a process of its own, whose peak RSS is reported;
medians of `--repeat` runs. The CPU time the sink and everything else on the machine used
during each cycle is printed too (Linux), as other work slows the cycle. Then the same cycle
once more through the real command (`python -m scheduler run --once`), as a check: the same
outcomes, its wall time (start-up and imports included) and its peak RSS. No targets: a
measurement; the exit code is 0 unless a run fails.

    python bench/cycle.py                            # builds the store first: several minutes
    python bench/cycle.py --dir /tmp/cycle-bench     # keep the store; a rerun skips the build
    python bench/cycle.py --scale 0.01               # a quick check on a small store
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, func, select

sys.path.insert(0, str(Path(__file__).parent))

import deliver as sink
import detect

from scheduler.cli.service_logging import setup_logging
from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.delivery import deliver as sending
from scheduler.delivery.claims import CLAIMABLE
from scheduler.delivery.deliver import Sender
from scheduler.service.cycle import (
    CycleReport,
    Service,
    add_outcomes,
    detect_once,
    instance_name,
    new_sender,
    open_service,
)
from scheduler.service.last_cycle import save_cycle
from scheduler.store.models import metadata
from scheduler.store.schema import open_store

NOW = detect.NOW + timedelta(hours=2)
"""Every new order's thanks is due: they were placed in the two hours before detect.NOW."""
NOW_TEXT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
SEND_WINDOW = "00:00-23:59"
DATABASE = "appreciate.db"
"""The store's file beside the config (`[database] url` is empty)."""
STEPS = {
    "reap + budget": "reaped leases, the day's budget",
    "claim": "claiming batches of 200",
    "contacts": "the batch's emails, opt-outs, zones",
    "contexts": "build_contexts: customers, orders, values, tokens",
    "render": "the Jinja templates",
    "build": "note_message: headers, MIME, bytes",
    "save": "save_prepared: the written notes",
    "prepare, other": "checks per note, the transactions around them",
    "mark sending": "the UPDATE to `sending`, per note",
    "record": "outcomes and events (by 8, with the marks), log lines",
    "send": "SMTP on 4 connections; the marks' transactions",
    "run, other": "the claims' transactions, closing connections",
}
"""The delivery's steps (exclusive wall time), in the order they run."""


def log(message: str) -> None:
    print(message, flush=True)


def sizes(scale: float) -> tuple[int, int, int]:
    """Customers, orders (before the new ones) and the customers who place the new orders:
    detect.py's large store."""
    customers, orders = detect.SIZES["large"]
    return int(customers * scale), int(orders * scale), int(detect.SIZES["small"][0] * scale)


# The store -------------------------------------------------------------------------------------


def set_keys(path: Path, section: str, values: dict[str, str | int]) -> None:
    """Rewrite the `key = value` lines of one `[section]` of a TOML file (each key must be
    there, as in the example config)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    current, left = "", dict(values)
    for number, line in enumerate(lines):
        text = line.strip()
        if text.startswith("["):
            current = text.strip("[]")
        elif current == section and "=" in text and not text.startswith("#"):
            key = text.split("=", 1)[0].strip()
            if key in left:
                lines[number] = f"{key} = {json.dumps(left.pop(key))}\n"
    if left:
        raise SystemExit(f"{path}: no {', '.join(left)} in [{section}]")
    path.write_text("".join(lines), encoding="utf-8")


def build_store(directory: Path, scale: float) -> dict[str, Any]:
    """detect.py's large store in `directory`, caught up again with SEND_WINDOW; returns its
    description (kept in `cycle-store.json`, with the notes due at NOW by kind). Each stage is
    reused when built."""
    customers, orders, buyers = sizes(scale)
    wanted = {"customers": customers, "orders": orders, "buyers": buyers, "window": SEND_WINDOW}
    described = directory / "cycle-store.json"
    found = json.loads(described.read_text(encoding="utf-8")) if described.exists() else None
    if found is None and (directory / "imported").exists():
        raise SystemExit(f"{directory} holds a store this benchmark did not build: use another")
    if found is not None and found["store"] != wanted:
        raise SystemExit(f"{directory} holds another store ({found['store']}): use another")
    directory.mkdir(parents=True, exist_ok=True)
    described.write_text(json.dumps({"store": wanted}), encoding="utf-8")
    config = detect.build_store(directory, customers, orders, buyers)
    if not (directory / "cycle-caught-up").exists():
        set_keys(config, "schedule", {"send_window": SEND_WINDOW})
        detect._catch_up(config, orders, buyers)  # again, with the window
        (directory / "cycle-caught-up").write_text("ok\n", encoding="utf-8")
    description = {"store": wanted, "due": _due(config)}
    described.write_text(json.dumps(description), encoding="utf-8")
    return description


def _due(config: Path) -> dict[str, int]:
    """The notes in the outbox due at NOW, by kind."""
    touches = metadata.tables["touches"]
    engine = open_store(load_config(config).database_url())
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(touches.c.kind, func.count())
                .where(and_(touches.c.status.in_(CLAIMABLE), touches.c.due_at <= NOW))
                .group_by(touches.c.kind)
            ).all()
    finally:
        engine.dispose()
    return {kind: int(count) for kind, count in rows}


def prepare_run(base: Path, port: int) -> Path:
    """The workspace the cycles run in (`base/run`): the store's config pointed at the sink,
    its templates; the store itself is copied in before each run."""
    store, run = base / "store", base / "run"
    run.mkdir(exist_ok=True)
    shutil.copytree(store / "templates", run / "templates", dirs_exist_ok=True)
    config = run / "appreciate.toml"
    shutil.copyfile(store / "appreciate.toml", config)
    smtp: dict[str, str | int] = {"host": "127.0.0.1", "port": port, "security": "none"}
    smtp["password_env"] = ""
    set_keys(config, "smtp", smtp)
    return config


def copy_store(base: Path) -> float:
    """A fresh copy of the built store into `base/run`, flushed to disk (else the cycle's first
    WAL checkpoint would pay for writing out the whole copy); seconds taken."""
    started = time.perf_counter()
    store, run = base / "store", base / "run"
    for suffix in ("", "-wal", "-shm"):
        (run / f"{DATABASE}{suffix}").unlink(missing_ok=True)
    for suffix in ("", "-wal"):
        if (store / f"{DATABASE}{suffix}").exists():
            copy = shutil.copyfile(store / f"{DATABASE}{suffix}", run / f"{DATABASE}{suffix}")
            with copy.open("rb") as written:
                os.fsync(written.fileno())
    return time.perf_counter() - started


# Timing the delivery's steps -------------------------------------------------------------------


@dataclass
class _Frame:
    step: str
    started: float
    inner: float = 0.0


@dataclass
class Split:
    """Exclusive wall time by step: the time of a step called inside another is taken off the
    caller's. The Sender's steps run one after the other (a batch's sends run side by side, but
    inside one step, `send`), so the steps add up to the whole."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _stack: list[_Frame] = field(default_factory=list)

    def enter(self, step: str) -> None:
        self._stack.append(_Frame(step, time.perf_counter()))

    def leave(self) -> None:
        frame = self._stack.pop()
        elapsed = time.perf_counter() - frame.started
        self.seconds[frame.step] = self.seconds.get(frame.step, 0.0) + elapsed - frame.inner
        self.calls[frame.step] = self.calls.get(frame.step, 0) + 1
        if self._stack:
            self._stack[-1].inner += elapsed

    def wrap(self, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` (a coroutine function too), timed as `step`."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                self.enter(step)
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.leave()

            return timed_async

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(step)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return timed


def time_steps(split: Split, sender: Sender) -> None:
    """Wrap what `sender` calls, for this process only (scheduler/ offers no hooks): the
    functions `scheduler.delivery.deliver` imported, the sender's own methods and its renderer's."""
    steps: list[tuple[object, str, str]] = [
        (sending, "reap", "reap + budget"),
        (sending, "apply_budget", "reap + budget"),
        (sending, "claim", "claim"),
        (sender, "_contacts", "contacts"),
        (sending, "build_contexts", "contexts"),
        (sender.renderer, "render", "render"),
        (sending, "note_message", "build"),
        (sending, "save_prepared", "save"),
        (sender, "_prepare", "prepare, other"),
        (sending, "mark_sending", "mark sending"),
        (sending, "record_results", "record"),
        (sender, "_record", "record"),
        (sender, "_count", "record"),
        (sender, "_deliver", "send"),
    ]
    for target, name, step in steps:
        setattr(target, name, split.wrap(step, getattr(target, name)))


# One cycle, in a process of its own ------------------------------------------------------------


def peak_rss_mb() -> float:
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def measure(config_path: Path) -> dict[str, Any]:
    """`appreciate run --once --now NOW`, step by step, timed (run_cycle's steps in its order)."""
    setup_logging()
    clock = FixedClock(NOW)
    started = time.perf_counter()
    service = open_service(config_path)
    seconds = {"open": time.perf_counter() - started}
    opened_rss = peak_rss_mb()
    try:
        result = asyncio.run(_cycle(service, clock, seconds))
        result |= {"rss": peak_rss_mb(), "opened_rss": opened_rss}
        result["outbox"] = _outbox(service)
    finally:
        service.close()
    return result


async def _cycle(service: Service, clock: FixedClock, seconds: dict[str, float]) -> dict[str, Any]:
    split = Split()
    report = CycleReport(clock.now())
    started = time.perf_counter()
    report.added = await detect_once(service, clock.now())
    detected = time.perf_counter()
    sender = new_sender(service, clock, instance_name())
    time_steps(split, sender)
    split.enter("run, other")
    try:
        sent = await sender.run()
    finally:
        split.leave()
    delivered = time.perf_counter()
    add_outcomes(report, sent)
    save_cycle(service.engine, report)
    saved = time.perf_counter()
    seconds |= {
        "detection": detected - started,
        "delivery": delivered - detected,
        "save": saved - delivered,
        "cycle": saved - started,
    }
    return {
        "seconds": seconds,
        "steps": split.seconds,
        "calls": split.calls,
        "added": dict(report.added),
        "outcomes": dict(report.outcomes),
        "paused": report.paused,
    }


def _outbox(service: Service) -> dict[str, int]:
    """Every touch after the cycle, by "kind status"."""
    touches = metadata.tables["touches"]
    with service.engine.connect() as connection:
        rows = connection.execute(
            select(touches.c.kind, touches.c.status, func.count())
            .group_by(touches.c.kind, touches.c.status)
            .order_by(touches.c.kind, touches.c.status)
        ).all()
    return {f"{kind} {status}": count for kind, status, count in rows}


# Running the processes -------------------------------------------------------------------------


def run_child(command: Sequence[str], stdout: IO[bytes] | None, stderr: IO[bytes] | None) -> Ran:
    """Run `command`; its wall time (start-up included), CPU time and peak RSS in MB."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return Ran(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / scale)


@dataclass(frozen=True)
class Ran:
    wall: float
    cpu: float
    rss: float


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy since it started (Linux; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _, _, irq, softirq, steal = (int(n) for n in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Around:
    """What else used the CPUs while a cycle ran: the sink, and everything else (other work on
    the machine, and steal time)."""

    load: float
    sink: float
    other: float


def run_measured(config: Path, log_path: Path) -> tuple[Ran, dict[str, Any]]:
    """`measure` in a process of its own; its appreciate log goes to `log_path`."""
    command = [sys.executable, __file__, "--measure", str(config)]
    with tempfile.TemporaryFile() as output, log_path.open("wb") as errors:
        ran = run_child(command, output, errors)
        output.seek(0)
        return ran, json.loads(output.read())


def run_command(config: Path, log_path: Path) -> tuple[Ran, dict[str, Any]]:
    """The real command, `python -m scheduler run --once --now NOW --format json`."""
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "run", "--once"]
    command += ["--now", NOW_TEXT, "--format", "json"]
    with tempfile.TemporaryFile() as output, log_path.open("wb") as errors:
        ran = run_child(command, output, errors)
        output.seek(0)
        return ran, json.loads(output.read())


# Reporting -------------------------------------------------------------------------------------


def _spread(values: Sequence[float], digits: int = 2) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:8.{digits}f} s"
    return f"{median:8.{digits}f} s  ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {what}" for what, n in sorted(counts.items())) or "none"


def report(
    description: dict[str, Any], runs: list[tuple[Ran, dict[str, Any]]], check: tuple[Ran, Any]
) -> None:
    store, results = description["store"], [result for _, result in runs]
    first = results[0]
    sent = first["outcomes"].get("sent", 0)
    handled = sum(first["outcomes"].values())
    log("")
    log(f"one `run --once` cycle at {NOW:%Y-%m-%d %H:%M} UTC ({os.cpu_count()} CPUs)")
    log(f"  store: {store['customers']:,} customers, {store['orders']:,} orders")
    log(f"    + {detect.NEW_ORDERS:,} new orders (by customers 1..{store['buyers']:,})")
    log(f"  due in the outbox before the cycle: {_counts(description['due'])}")
    log(f"  added by the cycle's detection: {_counts(first['added'])}")
    log(f"  notes due (delivery's outcomes): {handled:,}: {_counts(first['outcomes'])}")
    if any(result["outcomes"] != first["outcomes"] for result in results):
        log(f"  THE RUNS DIFFER: {[result['outcomes'] for result in results]}")
    log(f"medians of {len(runs)} runs (range), wall time:")

    def phase(name: str) -> list[float]:
        return [result["seconds"][name] for result in results]

    log(f"  {'open the service (config, templates, store)':<44} {_spread(phase('open'))}")
    log(f"  {'detection':<44} {_spread(phase('detection'))}")
    log(f"  {'delivery':<44} {_spread(phase('delivery'))}")
    for step, what in STEPS.items():
        values = [result["steps"].get(step, 0.0) for result in results]
        calls = first["calls"].get(step, 0)
        log(f"    {step:<15} {calls:>6,} x {_spread(values, 3)}  {what}")
    log(f"  {'save the cycle report':<44} {_spread(phase('save'), 3)}")
    log(f"  {'cycle (detection + delivery + save)':<44} {_spread(phase('cycle'))}")
    walls = [ran.wall for ran, _ in runs]
    log(f"  {'whole process (start-up, imports, exit)':<44} {_spread(walls)}")
    log(f"  {'  its CPU time (user + system)':<44} {_spread([ran.cpu for ran, _ in runs])}")
    delivery = statistics.median(r["seconds"]["delivery"] for r in results)
    cycle = statistics.median(r["seconds"]["cycle"] for r in results)
    log(f"notes/s: delivery {sent / delivery:,.0f}, cycle {sent / cycle:,.0f} ({sent:,} sent)")
    rss = [ran.rss for ran, _ in runs]
    opened = statistics.median(r["opened_rss"] for r in results)
    log(f"peak RSS: {statistics.median(rss):,.0f} MB ({min(rss):,.0f}-{max(rss):,.0f}), of which")
    log(f"  {opened:,.0f} MB by the end of opening the service")
    ran, output = check
    same = output["outcomes"] == first["outcomes"] and output["added"] == first["added"]
    log(
        f"the real command (`python -m scheduler run --once`), once: {ran.wall:.2f} s wall,"
        f" peak RSS {ran.rss:,.0f} MB; {'same' if same else 'DIFFERENT'} outcomes"
        + ("" if same else f": {output}")
    )
    log(f"outbox after the cycle: {_counts(first['outbox'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, help="where the store is built and kept")
    parser.add_argument("--repeat", type=int, default=3, help="cycles to time; medians")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="store size times this (0.01: a quick check)"
    )
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    if args.build:
        build_store(args.build, args.scale)
        return 0
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    base = args.dir or Path(tempfile.mkdtemp(prefix="appreciate-cycle-bench-"))
    customers, orders, _ = sizes(args.scale)
    log(f"store: {customers:,} customers, {orders:,} orders + {detect.NEW_ORDERS:,} new")
    built = run_child(
        [sys.executable, __file__, "--build", str(base / "store"), "--scale", str(args.scale)],
        None,
        None,
    )
    log(f"  ready in {built.wall:.1f} s")
    description = json.loads((base / "store" / "cycle-store.json").read_text(encoding="utf-8"))
    port = sink.free_port()
    server = sink.start_server(port)
    runs: list[tuple[Ran, dict[str, Any]]] = []
    arounds: list[Around] = []
    try:
        config = prepare_run(base, port)
        for number in range(1, args.repeat + 1):
            copied = copy_store(base)
            load, machine, served = os.getloadavg()[0], machine_cpu(), process_cpu(server.pid)
            ran, result = run_measured(config, base / "run" / f"cycle-{number}.log")
            served = process_cpu(server.pid) - served
            around = Around(load, served, machine_cpu() - machine - ran.cpu - served)
            runs.append((ran, result))
            arounds.append(around)
            seconds, sent = result["seconds"], result["outcomes"].get("sent", 0)
            log(
                f"run {number}: detection {seconds['detection']:.2f} s, delivery "
                f"{seconds['delivery']:.2f} s (send {result['steps']['send']:.2f} s), {sent:,} "
                f"sent; process {ran.wall:.2f} s wall, {ran.cpu:.2f} s CPU, {ran.rss:,.0f} MB;"
                f" sink {served:.1f} s CPU, other work {around.other:.1f} s CPU; load average"
                f" {load:.2f} before (store copied in {copied:.1f} s)"
            )
        copy_store(base)
        check = run_command(config, base / "run" / "command.log")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    report(description, runs, check)
    log(f"CPU seconds used during each run, besides the cycle's own ({os.cpu_count()} CPUs):")
    log(f"  by the SMTP sink{'':<28} {_spread([a.sink for a in arounds], 1)}")
    log(f"  by everything else (other work, steal){'':<6} {_spread([a.other for a in arounds], 1)}")
    log(f"  load average before each run: {', '.join(f'{a.load:.2f}' for a in arounds)}")
    log(f"load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    log(f"store kept in {base}" if args.dir else f"store in {base} (remove when done)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
