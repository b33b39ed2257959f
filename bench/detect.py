"""Benchmark: one occasion-detection tick on a large SQLite store, and on a small one.

What it measures: a store of 1M customers and 5M orders (built with the real importer from the
same deterministic CSVs as `import_customers.py`), caught up with detection, then 10,000 new
orders (by the same customers in both stores). One tick at 2026-11-23T12:00Z then finds today's
birthdays and anniversaries (every zone's), the new orders' thanks and the follow-ups due, and
records them. The tick runs in a transaction that is rolled back, so each repeat does the same
work; each store's ticks run in a process of their own, whose peak RSS is reported. The same
tick on a store of 100k customers (500k orders, the same 10,000 new orders) shows how the cost
grows with the store rather than with what is new.

Targets: a tick under 1 s at 1M customers; at most 1.5x the tick at 100k; peak RSS under
200 MB. The daily check-in pass (the first tick of a day), and the first pass ever (every quiet
customer at once), are timed separately: they are not part of the targets.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).parent))

import import_customers as data

from scheduler.config import load_config
from scheduler.detection import DetectionReport, detect_on
from scheduler.importer import import_csv
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from scheduler.store.schema import open_store
from scheduler.workspace import create_workspace

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NEW_ORDERS = 10_000
TARGET_TICK_S = 1.0
TARGET_RATIO = 1.5
TARGET_RSS_MB = 200.0
SIZES = {"large": (1_000_000, 5_000_000), "small": (100_000, 500_000)}


def log(message: str) -> None:
    print(message, flush=True)


def build_store(directory: Path, customers: int, orders: int, buyers: int) -> Path:
    """A workspace whose store holds the generated customers and orders, detection caught up,
    plus NEW_ORDERS orders placed in the last two hours by customers 1..`buyers` (the same
    orders whatever the store's size). Reused when already built."""
    config = directory / "appreciate.toml"
    done = directory / "built"
    if done.exists():
        return config
    create_workspace(directory, force=True)
    rng = random.Random(data.SEED)
    files = directory / "customers.csv", directory / "orders.csv", directory / "new-orders.csv"
    data.write_csv(files[0], data.CUSTOMER_HEADER, data.customer_rows(customers, rng))
    data.write_csv(files[1], data.ORDER_HEADER, data.order_rows(orders, customers, rng))
    data.write_csv(files[2], data.ORDER_HEADER, _new_orders(buyers, orders))
    settings = load_config(config)
    engine = open_store(settings.database_url())
    zone = ZoneInfo(settings.settings.business.timezone)
    try:
        for kind, path in (("customers", files[0]), ("orders", files[1])):
            started = time.perf_counter()
            import_csv(engine, kind, path, now=NOW - timedelta(days=30), business_zone=zone)
            log(f"  imported {kind} in {time.perf_counter() - started:.1f} s")
        _mark_caught_up(engine)
        import_csv(engine, "orders", files[2], now=NOW - timedelta(minutes=1), business_zone=zone)
    finally:
        engine.dispose()
    for path in files:
        path.unlink()
    done.write_text("ok\n", encoding="utf-8")
    return config


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


def _mark_caught_up(engine: Engine) -> None:
    """Detection ran five minutes before NOW, check-ins included, and saw every order so far."""
    marks = metadata.tables["detection_marks"]
    orders = metadata.tables["orders"]
    with write_transaction(engine) as connection:
        top = connection.execute(select(func.max(orders.c.id))).scalar()
        connection.execute(
            marks.insert().values(updated_at=NOW),
            [
                {"name": "run", "moment": NOW - timedelta(minutes=5), "last_id": None},
                {"name": "orders", "moment": None, "last_id": top},
                {"name": "check_ins", "moment": NOW - timedelta(hours=2), "last_id": None},
            ],
        )


def measure_ticks(config: Path, repeat: int, check_ins: str) -> dict[str, object]:
    """In this process: `repeat` ticks at NOW, each rolled back. `check_ins`: "none" (the
    day's pass already done), "daily" (the first tick of a day: the pass for those who went
    quiet since yesterday's) or "first" (the first pass ever: every quiet customer)."""
    loaded = load_config(config)
    engine = open_store(loaded.database_url())
    marks = metadata.tables["detection_marks"]
    seconds: list[float] = []
    report: DetectionReport | None = None
    try:
        for _ in range(repeat):
            with write_transaction(engine) as connection:
                if check_ins == "first":
                    connection.execute(marks.delete().where(marks.c.name == "check_ins"))
                elif check_ins == "daily":
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


def run_child(config: Path, repeat: int, check_ins: str) -> tuple[dict[str, object], float]:
    """measure_ticks in a process of its own; its result and its peak RSS in MB."""
    command = [sys.executable, __file__, "--measure", str(config), "--repeat", str(repeat)]
    command += ["--check-ins", check_ins]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, stdout=output)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the measuring process failed: {' '.join(command)}")
        output.seek(0)
        result = json.loads(output.read())
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return result, usage.ru_maxrss / scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, help="where the stores are built and kept")
    parser.add_argument("--repeat", type=int, default=5, help="ticks per store; medians")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="store sizes times this (0.01: a quick check)"
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check-ins", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_ticks(args.measure, args.repeat, args.check_ins)))
        return 0
    base = args.dir or Path(tempfile.mkdtemp(prefix="appreciate-detect-bench-"))
    results = {}
    for name, (full_customers, full_orders) in SIZES.items():
        customers, orders = int(full_customers * args.scale), int(full_orders * args.scale)
        log(f"{name} store: {customers:,} customers, {orders:,} orders + {NEW_ORDERS:,} new")
        buyers = int(SIZES["small"][0] * args.scale)
        config = build_store(base / name, customers, orders, buyers)
        tick, rss = run_child(config, args.repeat, check_ins="none")
        results[name] = (statistics.median(tick["seconds"]), rss, tick)  # type: ignore[arg-type]
        log(f"  tick: median {results[name][0]:.3f} s, peak RSS {rss:.0f} MB, {tick['recorded']}")
    large_config = base / "large" / "appreciate.toml"
    daily, daily_rss = run_child(large_config, 1, check_ins="daily")
    first, first_rss = run_child(large_config, 1, check_ins="first")
    large, small = results["large"][0], results["small"][0]
    ratio = large / small
    big, little = (f"{int(SIZES[name][0] * args.scale):,}" for name in ("large", "small"))
    log("")
    log(f"tick at {big} customers: {large:.3f} s (target < {TARGET_TICK_S} s)")
    log(f"tick at {little} customers: {small:.3f} s; ratio {ratio:.2f} (target <= {TARGET_RATIO})")
    log(f"peak RSS ({big}): {results['large'][1]:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    daily_s = daily["seconds"][0]  # type: ignore[index]
    first_s = first["seconds"][0]  # type: ignore[index]
    log(f"first tick of a day, with its check-in pass ({big}): {daily_s:.2f} s, {daily_rss:.0f} MB")
    log(
        f"the first check-in pass ever, every quiet customer ({big}): {first_s:.1f} s, "
        f"{first_rss:.0f} MB, {first['recorded']}"
    )
    met = large < TARGET_TICK_S and ratio <= TARGET_RATIO and results["large"][1] < TARGET_RSS_MB
    log("All targets met." if met else "MISSED: see above.")
    log(f"stores kept in {base}" if args.dir else f"stores in {base} (remove when done)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
