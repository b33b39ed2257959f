"""Benchmark: one occasion-detection tick on a large SQLite store, and on a small one.

What it measures: a store of 1M customers and 5M orders (built with the real importer from the
same deterministic CSVs as `import_customers.py`), caught up the way the daemon leaves it (a
real detection run five minutes before 2026-11-23T12:00Z recorded today's birthdays and
anniversaries in every zone and the follow-ups due), then 10,000 new orders (by the same
customers in both stores). One tick at 12:00Z then finds today's dates again (and the few zones
whose day just began), the new orders' thanks and the follow-ups, and records what is new. Each
tick runs in a transaction that is rolled back, so each repeat does the same work; each kind of
tick runs in a process of its own, whose peak RSS is reported. The same tick on a store of 100k
customers (500k orders, the same 10,000 new orders) shows how the cost grows with the store
rather than with what is new.

Targets: a tick under 1 s at 1M customers; at most 1.5x the tick at 100k; peak RSS under
200 MB. Also timed, not part of the targets: the tick that records every zone's dates at once
(after a restart), the first tick of a day (with its check-in pass), and the first check-in
pass ever (every quiet customer at once).

    python bench/detect.py                           # builds both stores (several minutes)
    python bench/detect.py --dir /tmp/detect-bench   # keep the stores to rerun quickly
    python bench/detect.py --scale 0.01              # a quick check on small stores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

sys.path.insert(0, str(Path(__file__).parent))

import import_customers as data

from scheduler.cli.workspace import create_workspace
from scheduler.config.file import load_config
from scheduler.detection.detect import DetectionReport, detect, detect_on
from scheduler.importer import import_csv
from scheduler.store.bulk import chunked
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from scheduler.store.schema import open_store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NEW_ORDERS = 10_000
TARGET_TICK_S = 1.0
TARGET_RATIO = 1.5
TARGET_RSS_MB = 200.0
SIZES = {"large": (1_000_000, 5_000_000), "small": (100_000, 500_000)}


def log(message: str) -> None:
    print(message, flush=True)


def build_store(directory: Path, customers: int, orders: int, buyers: int) -> Path:
    """A workspace whose store holds the generated customers and orders, caught up by a real
    detection run five minutes before NOW (what it recorded stays in the outbox), plus
    NEW_ORDERS orders placed in the last two hours by customers 1..`buyers` (the same orders
    whatever the store's size). Each stage is reused when already built."""
    config = directory / "appreciate.toml"
    if not (directory / "imported").exists():
        create_workspace(directory, force=True)
        rng = random.Random(data.SEED)
        files = directory / "customers.csv", directory / "orders.csv"
        data.write_csv(files[0], data.CUSTOMER_HEADER, data.customer_rows(customers, rng))
        data.write_csv(files[1], data.ORDER_HEADER, data.order_rows(orders, customers, rng))
        settings = load_config(config)
        engine = open_store(settings.database_url())
        zone = ZoneInfo(settings.settings.business.timezone)
        try:
            for kind, path in (("customers", files[0]), ("orders", files[1])):
                started = time.perf_counter()
                import_csv(engine, kind, path, now=NOW - timedelta(days=30), business_zone=zone)
                log(f"  imported {kind} in {time.perf_counter() - started:.1f} s")
        finally:
            engine.dispose()
        for path in files:
            path.unlink()
        (directory / "imported").write_text("ok\n", encoding="utf-8")
    if not (directory / "caught-up").exists():
        _catch_up(config, orders, buyers)
        (directory / "caught-up").write_text("ok\n", encoding="utf-8")
    return config


def _catch_up(config: Path, existing: int, buyers: int) -> None:
    """Detection as the daemon leaves it: a run at NOW - 5 min after one at NOW - 10 min that
    had seen every order so far (the day's check-in pass already done), so today's dates in
    every zone and the follow-ups due are in the outbox. Then the new orders arrive."""
    settings = load_config(config)
    engine = open_store(settings.database_url())
    zone = ZoneInfo(settings.settings.business.timezone)
    orders, touches = metadata.tables["orders"], metadata.tables["touches"]
    new_ids = [data.order_id(number) for number in range(existing + 1, existing + NEW_ORDERS + 1)]
    try:
        with write_transaction(engine) as connection:
            for part in chunked(new_ids):  # from an earlier build of this stage
                connection.execute(orders.delete().where(orders.c.external_id.in_(part)))
            connection.execute(touches.delete())
            connection.execute(metadata.tables["detection_marks"].delete())
            _mark_seen(connection, NOW - timedelta(minutes=10))
        started = time.perf_counter()
        report = detect(engine, settings.settings, NOW - timedelta(minutes=5))
        recorded = dict(sorted(Counter(kind for kind, _ in report.recorded.elements()).items()))
        log(f"  caught up in {time.perf_counter() - started:.1f} s: {recorded}")
        path = config.parent / "new-orders.csv"
        data.write_csv(path, data.ORDER_HEADER, _new_orders(buyers, existing))
        import_csv(engine, "orders", path, now=NOW - timedelta(minutes=1), business_zone=zone)
        path.unlink()
    finally:
        engine.dispose()


def _new_orders(buyers: int, existing: int) -> list[tuple[str, ...]]:
    rng = random.Random(data.SEED + 1)
    rows: list[tuple[str, ...]] = []
    for number in range(existing + 1, existing + NEW_ORDERS + 1):
        placed = NOW - timedelta(seconds=rng.randrange(2 * 3600))
        rows.append(
            (
                data.order_id(number),
                data.customer_id(rng.randrange(1, buyers + 1)),
                placed.isoformat(),
                f"{rng.randrange(500, 50_000) / 100:.2f}",
                "",
                "",
            )
        )
    return rows


def _mark_seen(connection: Connection, moment: datetime) -> None:
    """Detection last ran at `moment`, had seen every order, and did the day's check-ins."""
    marks = metadata.tables["detection_marks"]
    orders = metadata.tables["orders"]
    top = connection.execute(select(func.max(orders.c.id))).scalar()
    connection.execute(
        marks.insert().values(updated_at=moment),
        [
            {"name": "run", "moment": moment, "last_id": None},
            {"name": "orders", "moment": None, "last_id": top},
            {"name": "check_ins", "moment": NOW - timedelta(hours=2), "last_id": None},
        ],
    )


TICKS = {
    "steady": "the daemon's tick: today's dates were recorded by the previous run",
    "fresh-dates": "every zone's birthdays, anniversaries and follow-ups recorded at once",
    "daily": "the first tick of a day, with its check-in pass",
    "first": "the first check-in pass ever: every quiet customer",
}
DATED_KINDS = ("birthday", "anniversary", "follow_up")


def measure_ticks(config: Path, repeat: int, tick: str) -> dict[str, object]:
    """In this process: `repeat` ticks at NOW, each rolled back (see TICKS). Only the tick
    itself is timed, not the preparation."""
    loaded = load_config(config)
    engine = open_store(loaded.database_url())
    marks = metadata.tables["detection_marks"]
    touches = metadata.tables["touches"]
    seconds: list[float] = []
    report: DetectionReport | None = None
    try:
        for _ in range(repeat):
            with write_transaction(engine) as connection:
                if tick == "fresh-dates":
                    connection.execute(touches.delete().where(touches.c.kind.in_(DATED_KINDS)))
                elif tick == "first":
                    connection.execute(marks.delete().where(marks.c.name == "check_ins"))
                elif tick == "daily":
                    connection.execute(
                        marks.update()
                        .where(marks.c.name == "check_ins")
                        .values(moment=NOW - timedelta(days=1))
                    )
                started = time.perf_counter()
                report = detect_on(connection, loaded.settings, NOW)
                seconds.append(time.perf_counter() - started)
                connection.rollback()
    finally:
        engine.dispose()
    if report is None:
        raise SystemExit("--repeat must be at least 1")
    recorded = {f"{kind} {status}": n for (kind, status), n in sorted(report.recorded.items())}
    return {"seconds": seconds, "recorded": recorded}


Measured = tuple[float, float, dict[str, object]]
"""A tick kind's median seconds, the measuring process's peak RSS in MB, and its result."""


def run_child(config: Path, repeat: int, tick: str) -> Measured:
    """measure_ticks in a process of its own."""
    command = [sys.executable, __file__, "--measure", str(config), "--repeat", str(repeat)]
    command += ["--tick", tick]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, stdout=output)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the measuring process failed: {' '.join(command)}")
        output.seek(0)
        result = json.loads(output.read())
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return statistics.median(result["seconds"]), usage.ru_maxrss / scale, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, help="where the stores are built and kept")
    parser.add_argument("--repeat", type=int, default=5, help="ticks per store; medians")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="store sizes times this (0.01: a quick check)"
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tick", choices=sorted(TICKS), default="steady", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_ticks(args.measure, args.repeat, args.tick)))
        return 0
    base = args.dir or Path(tempfile.mkdtemp(prefix="appreciate-detect-bench-"))
    steady: dict[str, Measured] = {}
    fresh: dict[str, Measured] = {}
    for name, (full_customers, full_orders) in SIZES.items():
        customers, orders = int(full_customers * args.scale), int(full_orders * args.scale)
        log(f"{name} store: {customers:,} customers, {orders:,} orders + {NEW_ORDERS:,} new")
        buyers = int(SIZES["small"][0] * args.scale)
        config = build_store(base / name, customers, orders, buyers)
        for tick, results in (("steady", steady), ("fresh-dates", fresh)):
            results[name] = run_child(config, args.repeat, tick)
            seconds, rss, result = results[name]
            log(f"  {tick} tick: median {seconds:.3f} s, peak RSS {rss:.0f} MB")
            log(f"    recorded {result['recorded']}")
    large_config = base / "large" / "appreciate.toml"
    daily = run_child(large_config, 1, "daily")
    first = run_child(large_config, 1, "first")
    big, little = (f"{int(SIZES[name][0] * args.scale):,}" for name in ("large", "small"))
    large, small, rss = steady["large"][0], steady["small"][0], steady["large"][1]
    ratio = large / small
    log("")
    log(f"{TICKS['steady']}:")
    log(f"  at {big} customers: {large:.3f} s (target < {TARGET_TICK_S} s)")
    log(f"  at {little} customers: {small:.3f} s; ratio {ratio:.2f} (target <= {TARGET_RATIO})")
    log(f"  peak RSS ({big}): {rss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    log(f"{TICKS['fresh-dates']} (after a restart; not a target):")
    fresh_ratio = fresh["large"][0] / fresh["small"][0]
    log(f"  at {big}: {fresh['large'][0]:.3f} s, {fresh['large'][1]:.0f} MB")
    log(f"  at {little}: {fresh['small'][0]:.3f} s; ratio {fresh_ratio:.2f}")
    log(f"{TICKS['daily']} ({big}): {daily[0]:.2f} s, {daily[1]:.0f} MB")
    log(f"{TICKS['first']} ({big}): {first[0]:.1f} s, {first[1]:.0f} MB, {first[2]['recorded']}")
    met = large < TARGET_TICK_S and ratio <= TARGET_RATIO and rss < TARGET_RSS_MB
    log("All targets met." if met else "MISSED: see above.")
    log(f"stores kept in {base}" if args.dir else f"stores in {base} (remove when done)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
