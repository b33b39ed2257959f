"""Benchmark: lifetime value, from the CDNOW fits to a full refresh of 1M customers in SQLite.

1. Fits BG/NBD and Gamma-Gamma on the CDNOW calibration summary (tests/data/cdnow) `--repeat`
   times and prints the median time of each fit and of both. Target: both under 50 ms.
2. Generates 10M orders of 1M customers (seeded; BG/NBD-like: Gamma purchase rates, Beta
   dropout, first purchases over ten years, about 5% extra same-day orders, half the orders
   with a margin of their own, ids and orders shuffled) and 100k referrals, saves them, and in
   a fresh process times `summarise` and then `lifetime_values` (model "auto") on them and
   reports that process's peak RSS (ru_maxrss, the loaded arrays included). Targets:
   summarise + values under 60 s, peak RSS under 1.5 GB.
3. The real thing: a workspace whose SQLite store holds those customers, orders and referrals
   (the same generator and seed, the days shifted so that the as-of day is 2026-11-23), then
   `appreciate ltv refresh --now 2026-11-23T12:00:00Z` run as its own process
   `--refresh-repeat` times: wall time (median and range) and that process's peak RSS
   (ru_maxrss from os.wait4). Targets: refresh under 60 s, peak RSS under 1.5 GB. Building the
   store is timed and printed too, but is not part of the targets; with `--dir` the store is
   kept and reused by the next run of the same size.

    python bench/ltv.py                              # full size: about 4 minutes
    python bench/ltv.py --dir /tmp/ltv-bench         # keep the store; a rerun skips the build
    python bench/ltv.py --customers 100000 --orders 1000000   # quicker

With other sizes the time targets are scaled to the number of orders. Prints the figures and
MISSED next to a missed target; exits 0 either way (a measurement, not a test), 1 only when the
refresh fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from itertools import repeat
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.schema import CreateIndex

from scheduler.cli.workspace import create_workspace
from scheduler.config.file import load_config
from scheduler.local_days import day_number, day_of
from scheduler.ltv.bgnbd import fit_bgnbd
from scheduler.ltv.gamma_gamma import fit_gamma_gamma
from scheduler.ltv.summary import summarise
from scheduler.ltv.value import LtvSettings, lifetime_values
from scheduler.store.db import create_store_engine
from scheduler.store.indexes import INDEX_BUILD_CACHE_KIB, secondary_indexes
from scheduler.store.models import metadata
from scheduler.store.schema import open_store, upgrade

CDNOW = Path(__file__).parent.parent / "tests" / "data" / "cdnow"
TARGET_FIT_MS = 50.0
TARGET_FULL_S = 60.0
TARGET_RSS_MB = 1500.0
AS_OF_DAY = 20_000  # days since 1970-01-01 (2024-10-04)
SEED = 20_240_601

# Part 3: the store. Its days are the generator's shifted by DAY_SHIFT, so that the refresh's
# as-of day (the business's today at REFRESH_NOW, Europe/London in the example config) is the
# generator's AS_OF_DAY, and the summary is the one of part 2.
REFRESH_NOW = "2026-11-23T12:00:00Z"
DAY_SHIFT = day_number(date(2026, 11, 23)) - AS_OF_DAY
STAMP = "2026-11-23 06:00:00.000000"  # created_at and updated_at of every generated row
CLOCK_SECONDS = 4 * 3_600  # orders are placed from 12:00:00 to 15:59:59 UTC
BUILT = "ltv-store.json"  # in --dir: the size of the store built there (absent: none built)
INSERT_CHUNK = 100_000
CUSTOMERS_SQL = (
    "INSERT INTO customers (id, external_id, name, email, attributes, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, '{}', ?, ?)"
)
ORDERS_SQL = (
    "INSERT INTO orders (external_id, customer_id, placed_at, amount, margin, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
REFERRALS_SQL = (
    "INSERT INTO referrals (referrer_id, referred_id, referred_on, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?)"
)


def fit_cdnow(repeat: int) -> None:
    data = np.genfromtxt(
        CDNOW / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True
    )
    x = data["x"].astype(np.int64)
    t_x, T, zbar = data["t_x"], data["T"], data["zbar"]
    bg_ms: list[float] = []
    gg_ms: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        bg = fit_bgnbd(x, t_x, T)
        middle = time.perf_counter()
        gg = fit_gamma_gamma(x, zbar)
        end = time.perf_counter()
        bg_ms.append((middle - start) * 1000)
        gg_ms.append((end - middle) * 1000)
    both = [b + g for b, g in zip(bg_ms, gg_ms, strict=True)]
    print(f"CDNOW ({x.shape[0]:,} customers), medians of {repeat} fits:")
    print(f"  {'BG/NBD':<17}{statistics.median(bg_ms):8.2f} ms  ({bg.iterations} iterations)")
    print(f"  {'Gamma-Gamma':<17}{statistics.median(gg_ms):8.2f} ms  ({gg.iterations} iterations)")
    print(_against("both", statistics.median(both), "ms", TARGET_FIT_MS))
    print(f"  BG/NBD {bg.params.as_dict()} LL {bg.log_likelihood:.2f}")
    print(f"  Gamma-Gamma {gg.params.as_dict()}")


def synthetic_orders(customers: int, orders: int, seed: int) -> dict[str, NDArray[np.generic]]:
    """Orders of a BG/NBD-like population, exactly `orders` of them (see the module)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 3653, customers)  # days from the first purchase to the as-of day
    rate = rng.gamma(1.2, 0.0065, customers) * (orders / customers / 10.0)  # purchases per day
    dropout = rng.beta(1.0, 16.0, customers)
    arrivals = rng.poisson(rate * tenure)
    lifetime = rng.geometric(np.maximum(dropout, 1e-6))  # repeat purchases before dropping out
    repeats = np.minimum(arrivals, lifetime)
    # Arrival days: uniform order statistics over the tenure, the first `repeats` kept.
    owner = np.repeat(np.arange(customers), arrivals)
    u = rng.random(owner.shape[0])
    u += owner  # sort within each customer at once
    u.sort()
    u -= owner
    position = np.arange(owner.shape[0]) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    kept = position < repeats[owner]
    owner, offset = owner[kept], (u[kept] * tenure[owner[kept]]).astype(np.int64)
    first = AS_OF_DAY - tenure
    who = np.concatenate((np.arange(customers), owner))
    day = np.concatenate((first, first[owner] + offset + 1))
    day = np.minimum(day, AS_OF_DAY)
    if who.shape[0] > orders:  # too many: drop random repeat orders
        drop = customers + rng.choice(who.shape[0] - customers, who.shape[0] - orders, False)
        keep = np.ones(who.shape[0], dtype=bool)
        keep[drop] = False
        who, day = who[keep], day[keep]
    else:  # too few: add orders on the day of random existing ones (merged into one)
        extra = rng.integers(0, who.shape[0], orders - who.shape[0])
        who, day = np.concatenate((who, who[extra])), np.concatenate((day, day[extra]))
    shuffle = rng.permutation(orders)
    who, day = who[shuffle], day[shuffle]
    ids = rng.permutation(customers).astype(np.int64) * 3 + 1_000
    mean_amount = rng.lognormal(3.5, 0.6, customers)
    amount = np.round(mean_amount[who] * rng.lognormal(0.0, 0.4, orders), 2)
    margin = np.where(rng.random(orders) < 0.5, np.nan, np.round(amount * 0.35, 2))
    referred = rng.choice(customers, 200_000 if customers >= 400_000 else customers // 2, False)
    half = referred.shape[0] // 2
    return {
        "ids": ids,  # every customer's id, customer k's at k
        "customer_id": ids[who],
        "day": day.astype(np.int32),
        "amount": amount,
        "margin": margin,
        "referrer": ids[referred[:half]],
        "referred": ids[referred[half:]],
    }


def measure(folder: Path) -> None:
    """Child process: load the arrays, time summarise + lifetime_values, print JSON."""
    data = {name: np.load(folder / f"{name}.npy") for name in ("customer_id", "day", "amount")}
    margin = np.load(folder / "margin.npy")
    referrer, referred = np.load(folder / "referrer.npy"), np.load(folder / "referred.npy")
    start = time.perf_counter()
    summary = summarise(
        data["customer_id"],
        data["day"],
        data["amount"],
        margin,
        as_of_day=AS_OF_DAY,
        margin_rate=0.3,
    )
    middle = time.perf_counter()
    values = lifetime_values(
        summary, LtvSettings(margin_rate=0.3), referrer_ids=referrer, referred_ids=referred
    )
    end = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "summarise_s": middle - start,
        "values_s": end - middle,
        "rss_mb": rss_mb,
        "customers": len(summary),
        "repeat_buyers": int(np.count_nonzero(summary.x)),
        "reason": values.reason,
    }
    print(json.dumps(report))


def full_size(customers: int, orders: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ltv-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        # Generated in a process of its own: a child started by this one inherits its peak RSS
        # (Linux keeps ru_maxrss across exec), so this process must stay small.
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                str(folder),
                "--customers",
                str(customers),
                "--orders",
                str(orders),
            ],
            check=True,
        )
        print(
            f"\n{customers:,} customers, {orders:,} orders: generated in "
            f"{time.perf_counter() - start:.1f} s (not timed below)"
        )
        reports = []
        for _ in range(repeat):
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(folder)],
                check=True,
                capture_output=True,
                text=True,
            )
            reports.append(json.loads(child.stdout.strip().splitlines()[-1]))
    summarise_s = statistics.median(r["summarise_s"] for r in reports)
    values_s = statistics.median(r["values_s"] for r in reports)
    both_s = statistics.median(r["summarise_s"] + r["values_s"] for r in reports)
    rss = statistics.median(r["rss_mb"] for r in reports)
    scale = orders / 10_000_000
    print(f"  medians of {repeat} run(s), each in a fresh process:")
    print(f"  {'summarise':<17}{summarise_s:8.2f} s")
    print(f"  {'lifetime_values':<17}{values_s:8.2f} s")
    print(_against("both", both_s, "s", TARGET_FULL_S * scale))
    print(_against("peak RSS", rss, "MB", TARGET_RSS_MB))
    last = reports[-1]
    print(f"  {last['customers']:,} customers, {last['repeat_buyers']:,} repeat buyers")
    print(f"  {last['reason']}")


def log(message: str) -> None:
    print(message, flush=True)


@contextmanager
def _timed(label: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[label] = time.perf_counter() - start
    log(f"  {label:<26}{timings[label]:8.1f} s")


def build_store(directory: Path, customers: int, orders: int) -> None:
    """Child process: a new workspace in `directory/workspace` holding the generated customers,
    orders and referrals, written through the driver's cursor (one transaction per table, the
    orders' secondary indexes dropped meanwhile and built afterwards); then `directory/BUILT`."""
    (directory / BUILT).unlink(missing_ok=True)
    workspace = directory / "workspace"
    if workspace.exists():  # a store of another size, or an interrupted build
        shutil.rmtree(workspace)
    timings: dict[str, float] = {}
    log(f"\nBuilding the store in {workspace} (not timed by the targets):")
    with _timed("generating", timings):
        data = synthetic_orders(customers, orders, SEED)
    with _timed("creating the workspace", timings):
        create_workspace(workspace, force=True)
        engine = open_store(load_config(workspace / "appreciate.toml").database_url())
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if not isinstance(driver, sqlite3.Connection):
            raise SystemExit("the benchmark's store is SQLite")
        # The rows reference only customers inserted just before: no per-row lookups.
        driver.execute("PRAGMA foreign_keys=OFF")
        with _timed(f"{customers:,} customers", timings):
            _insert_customers(driver, data["ids"])
        order_indexes = secondary_indexes(metadata.tables["orders"])
        for index in order_indexes:
            driver.execute(f'DROP INDEX IF EXISTS "{index.name}"')
        with _timed(f"{orders:,} orders", timings):
            _insert_orders(driver, data["customer_id"], data["day"], data["amount"], data["margin"])
        with _timed(f"{len(order_indexes)} order indexes", timings):
            driver.execute(f"PRAGMA cache_size=-{INDEX_BUILD_CACHE_KIB}")
            for index in order_indexes:
                driver.execute(str(CreateIndex(index).compile(dialect=engine.dialect)))
        with _timed(f"{data['referred'].shape[0]:,} referrals", timings):
            _insert_referrals(driver, data)
        with _timed("checkpoint", timings):
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        driver.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()
        engine.dispose()
    size = sum(path.stat().st_size for path in workspace.glob("appreciate.db*"))
    log(f"  {'total':<26}{sum(timings.values()):8.1f} s  (store: {size / 2**30:.2f} GiB)")
    built = {"customers": customers, "orders": orders, "seed": SEED, "day_shift": DAY_SHIFT}
    (directory / BUILT).write_text(json.dumps(built) + "\n", encoding="utf-8")


def _in_transaction(
    driver: sqlite3.Connection, sql: str, chunks: Iterator[list[tuple[object, ...]]]
) -> None:
    """executemany of each chunk of rows, all in one transaction (the driver is in autocommit
    mode: appreciate's engine lets SQLAlchemy issue BEGIN itself)."""
    driver.execute("BEGIN IMMEDIATE")
    try:
        for rows in chunks:
            driver.executemany(sql, rows)
    except BaseException:
        driver.execute("ROLLBACK")
        raise
    driver.execute("COMMIT")


def _insert_customers(driver: sqlite3.Connection, ids: NDArray[np.generic]) -> None:
    """C-0000001, C-0000002, ... by ascending id (the generator's ids, kept)."""
    ordered = np.sort(ids).tolist()

    def chunks() -> Iterator[list[tuple[object, ...]]]:
        for start in range(0, len(ordered), INSERT_CHUNK):
            yield [
                (
                    customer_id,
                    f"C-{number:07d}",
                    f"Customer {number}",
                    f"customer{number}@example.com",
                    STAMP,
                    STAMP,
                )
                for number, customer_id in enumerate(
                    ordered[start : start + INSERT_CHUNK], start + 1
                )
            ]

    _in_transaction(driver, CUSTOMERS_SQL, chunks())


def _insert_orders(
    driver: sqlite3.Connection,
    customer_id: NDArray[np.generic],
    day: NDArray[np.generic],
    amount: NDArray[np.generic],
    margin: NDArray[np.generic],
) -> None:
    """O-00000001, ... in the generator's (shuffled) order; placed on the generated day (shifted)
    at noon UTC plus up to four hours; margin NULL where the generator has none."""
    shifted = day.astype(np.int64) + DAY_SHIFT
    first_day = int(shifted.min())
    dates = [f"{day_of(d).isoformat()} " for d in range(first_day, int(shifted.max()) + 1)]
    clock = [
        f"{12 + s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000000" for s in range(CLOCK_SECONDS)
    ]
    seconds = np.random.default_rng(SEED + 1).integers(0, CLOCK_SECONDS, (shifted.shape[0],))
    day_index = shifted - first_day

    def chunks() -> Iterator[list[tuple[object, ...]]]:
        for start in range(0, shifted.shape[0], INSERT_CHUNK):
            part = slice(start, start + INSERT_CHUNK)
            placed = [
                dates[d] + clock[s]
                for d, s in zip(day_index[part].tolist(), seconds[part].tolist(), strict=True)
            ]
            margins = [None if math.isnan(m) else m for m in margin[part].tolist()]
            yield list(
                zip(
                    [f"O-{n:08d}" for n in range(start + 1, start + len(placed) + 1)],
                    customer_id[part].tolist(),
                    placed,
                    amount[part].tolist(),
                    margins,
                    repeat(STAMP),
                    repeat(STAMP),
                )
            )

    _in_transaction(driver, ORDERS_SQL, chunks())


def _insert_referrals(driver: sqlite3.Connection, data: dict[str, NDArray[np.generic]]) -> None:
    """Each referred customer referred on the day of their first order."""
    ids = data["customer_id"].astype(np.int64)
    first = np.full(int(ids.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, ids, data["day"].astype(np.int64) + DAY_SHIFT)
    referred = data["referred"].astype(np.int64)
    on = [day_of(d).isoformat() for d in first[referred].tolist()]
    rows: list[tuple[object, ...]] = list(
        zip(data["referrer"].tolist(), referred.tolist(), on, repeat(STAMP), repeat(STAMP))
    )
    _in_transaction(driver, REFERRALS_SQL, iter([rows]))


@dataclass(frozen=True)
class Refresh:
    seconds: float
    rss_mb: float
    stdout: str


def run_refresh(config: Path) -> Refresh:
    """`appreciate ltv refresh` in a process of its own: its wall time and peak RSS."""
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "ltv", "refresh"]
    command += ["--now", REFRESH_NOW]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode()
        if child.returncode != 0:
            sys.stderr.write(stdout + err.read().decode())
            raise SystemExit(f"the refresh failed (exit code {child.returncode}): {command}")
    return Refresh(seconds, usage.ru_maxrss / 1024, stdout)


def refresh_store(directory: Path, customers: int, orders: int, repeats: int) -> None:
    """Build the store in `directory` unless it holds one of this size, then time refreshes."""
    wanted = {"customers": customers, "orders": orders, "seed": SEED, "day_shift": DAY_SHIFT}
    marker = directory / BUILT
    config = directory / "workspace" / "appreciate.toml"
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        log(f"\nReusing the store built in {directory / 'workspace'}")
    else:
        directory.mkdir(parents=True, exist_ok=True)
        # In a process of its own: a child inherits its parent's peak RSS (Linux keeps
        # ru_maxrss across exec), so this process must stay small for the refreshes below.
        command = [sys.executable, __file__, "--build", str(directory)]
        command += ["--customers", str(customers), "--orders", str(orders)]
        sys.stdout.flush()  # what was printed so far goes before the child's lines
        subprocess.run(command, check=True)
    _upgrade(config)
    log(f"\nappreciate ltv refresh --now {REFRESH_NOW}, {repeats} run(s), each a new process:")
    runs = []
    for number in range(repeats):
        runs.append(run_refresh(config))
        log(f"  run {number + 1}: {runs[-1].seconds:7.2f} s, peak RSS {runs[-1].rss_mb:,.0f} MB")
    seconds = [run.seconds for run in runs]
    scale = orders / 10_000_000
    print(_against("refresh (median)", statistics.median(seconds), "s", TARGET_FULL_S * scale))
    print(f"  {'range':<17}{min(seconds):8.2f} - {max(seconds):.2f} s")
    print(_against("peak RSS (max)", max(run.rss_mb for run in runs), "MB", TARGET_RSS_MB))
    print("  its output (first run):")
    for line in runs[0].stdout.splitlines():
        print(f"    {line}")
    _check_store(config)


def _upgrade(config: Path) -> None:
    """Bring a kept store up to this checkout's schema (the data is what is measured)."""
    engine = create_store_engine(load_config(config).database_url())
    try:
        before = upgrade(engine)
    finally:
        engine.dispose()
    if not before.up_to_date:
        log(f"  migrated the kept store from schema {before.current} to {before.head}")


def _check_store(config: Path) -> None:
    """What the last refresh stored: its run's model and reason, and one score per customer."""
    runs, values = metadata.tables["ltv_runs"], metadata.tables["customer_values"]
    customers = metadata.tables["customers"]
    engine = open_store(load_config(config).database_url())
    try:
        with engine.connect() as connection:
            latest = connection.execute(
                select(runs.c.id, runs.c.model, runs.c.reason, runs.c.customers)
                .order_by(runs.c.id.desc())
                .limit(1)
            ).one()
            stored = connection.execute(select(func.count()).select_from(values)).scalar_one()
            people = connection.execute(select(func.count()).select_from(customers)).scalar_one()
    finally:
        engine.dispose()
    print(
        f"  ltv_runs latest (id {latest.id}): model {latest.model}, {latest.customers:,} customers"
    )
    print(f"    {latest.reason}")
    same = "= the customers" if stored == people else f"MISMATCH: {people:,} customers"
    print(f"  customer_values: {stored:,} rows ({same})")


def _against(label: str, value: float, unit: str, target: float) -> str:
    missed = "" if value < target else "  MISSED"
    return f"  {label:<17}{value:8.2f} {unit:<3} target < {target:g} {unit}{missed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=30, help="CDNOW fits to time")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--full-repeat", type=int, default=3, help="runs of the arrays part")
    parser.add_argument("--refresh-repeat", type=int, default=3, help="refreshes to time")
    parser.add_argument("--dir", type=Path, help="where the store is built and kept (reused)")
    parser.add_argument("--skip-fit", action="store_true", help="skip the CDNOW fits (part 1)")
    parser.add_argument("--skip-arrays", action="store_true", help="skip part 2")
    parser.add_argument("--skip-refresh", action="store_true", help="skip the store (part 3)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        for name, array in synthetic_orders(args.customers, args.orders, SEED).items():
            np.save(args.generate / f"{name}.npy", array)
        return
    if args.measure:
        measure(args.measure)
        return
    if args.build:
        build_store(args.build, args.customers, args.orders)
        return
    if not args.skip_fit:
        fit_cdnow(args.repeat)
    if not args.skip_arrays:
        full_size(args.customers, args.orders, args.full_repeat)
    if args.skip_refresh:
        return
    if args.dir:
        refresh_store(args.dir, args.customers, args.orders, args.refresh_repeat)
        return
    with tempfile.TemporaryDirectory(prefix="ltv-store-") as tmp:
        refresh_store(Path(tmp), args.customers, args.orders, args.refresh_repeat)


if __name__ == "__main__":
    main()
