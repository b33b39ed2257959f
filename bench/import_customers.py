"""Benchmark: CSV import of 1M customers and 5M orders into a SQLite store.

What it measures: generates realistic, deterministic CSV exports (customers, then orders that
reference them), creates a fresh workspace with `appreciate init`, and runs each import as its
own `python -m scheduler import ...` process. For each import it reports wall-clock seconds,
rows/s and the import process's peak RSS (from `os.wait4`, so only that process counts).
Generation time is shown too, but is not part of the targets.

Targets (for the default sizes, on a 2-core machine): customers under 30 s, orders under
150 s, peak RSS under 300 MB for each import. With other sizes the time targets are scaled to
the number of rows. A missed target is reported as MISSED; the exit code is still 0, as this is
a measurement, not a test. The exit code is non-zero only when an import fails or rejects rows.

Run it from the repository, in an environment with appreciate installed (Linux or macOS):

    python bench/import_customers.py                       # 1M customers, 5M orders
    python bench/import_customers.py --customers 20000 --orders 100000   # a quick check
    python bench/import_customers.py --dir /tmp/bench --repeat 3         # keep files, median
"""

from __future__ import annotations

import argparse
import calendar
import csv
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

SEED = 20261123
NOW = "2026-11-23T12:00:00Z"
DEFAULT_CUSTOMERS = 1_000_000
DEFAULT_ORDERS = 5_000_000
TARGET_SECONDS = {"customers": 30.0, "orders": 150.0}
TARGET_DEFAULT_ROWS = {"customers": DEFAULT_CUSTOMERS, "orders": DEFAULT_ORDERS}
TARGET_RSS_MB = 300.0

CUSTOMER_HEADER = (
    "id",
    "name",
    "email",
    "birthday",
    "timezone",
    "customer_since",
    "preferred_name",
    "pet_name",
)
ORDER_HEADER = ("id", "customer_id", "placed_at", "amount", "margin", "description")

FIRST_NAMES = (
    "Margaret", "Tomás", "Aiko", "Liam", "Fatima", "Chen", "Olga", "Kwame", "Sofia", "Mateo",
    "Priya", "Noah", "Zoë", "Ahmed", "Ingrid", "Lucas", "Amara", "Jonas", "Mei", "Diego",
    "Hannah", "Ravi", "Elif", "Samuel", "Chloé", "Arjun", "Nadia", "Oscar", "Yuki", "Grace",
    "Björn", "Leila", "Pedro", "Anna", "Kofi", "Isabel", "Dmitri", "Aoife", "Hugo", "Sara",
)  # fmt: skip
LAST_NAMES = (
    "Okafor", "Herrera", "Tanaka", "O'Connor", "Haddad", "Wang", "Ivanova", "Mensah", "Rossi",
    "García", "Patel", "Smith", "Müller", "Hassan", "Larsen", "Silva", "Nwosu", "Schmidt", "Li",
    "Fernández", "Cohen", "Sharma", "Öztürk", "Brown", "Dubois", "Kumar", "Novak", "Johansson",
    "Sato", "Murphy", "Nguyen", "Kowalski", "Costa", "Jensen", "Park", "Ahmed", "Petrov",
    "Byrne", "Lefèvre", "Andersen",
)  # fmt: skip
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.co.uk", "Example.COM")
TIME_ZONES = (
    "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Istanbul",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Mexico_City", "America/Sao_Paulo", "Asia/Tokyo", "Asia/Kolkata", "Asia/Shanghai",
    "Asia/Dubai", "Africa/Lagos", "Africa/Nairobi", "Australia/Sydney", "Pacific/Auckland",
)  # fmt: skip
PETS = ("Biscuit", "Mochi", "Rex", "Luna", "Pepper", "Milo", "Nala", "Ziggy", "Olive", "Bruno")
OFFSETS = ("Z", "+00:00", "+01:00", "+02:00", "-05:00", "-08:00", "+05:30", "+09:00", "+10:00")
PRODUCTS = (
    "a walnut cutting board", "a set of linen napkins", "a ceramic teapot", "an indigo throw",
    "cleaning and check-up", "a one-hour coaching session", "gift card", "repair, express",
    "a pair of oak candlesticks", "an herb planter", "annual subscription", "a leather wallet",
)  # fmt: skip

SINCE_FIRST = date(2010, 1, 1)
SINCE_DAYS = (date(2026, 11, 22) - SINCE_FIRST).days
ORDER_FIRST = datetime(2015, 1, 1)
ORDER_SECONDS = int((datetime(2026, 11, 22) - ORDER_FIRST).total_seconds())
LEAP_YEAR_START = date(2000, 1, 1)


# --- data generation -----------------------------------------------------------------------


def _ascii_slug(name: str) -> str:
    """`"Zoë"` -> `"zoe"`, `"O'Connor"` -> `"oconnor"`: a name fit for an email local part."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "".join(char for char in folded.lower() if char.isalnum())


FIRST_SLUGS = {name: _ascii_slug(name) for name in FIRST_NAMES}
LAST_SLUGS = {name: _ascii_slug(name) for name in LAST_NAMES}


def customer_id(number: int) -> str:
    return f"C-{number:07d}"


def order_id(number: int) -> str:
    return f"O-{number:08d}"


def _birthday(rng: random.Random) -> str:
    """~70% have one: mostly YYYY-MM-DD, some --MM-DD or MM-DD, a few --02-29."""
    roll = rng.random()
    if roll >= 0.70:
        return ""
    if roll < 0.005:
        return "--02-29"
    day = LEAP_YEAR_START + timedelta(days=rng.randrange(366))
    if roll < 0.08:
        return f"--{day.month:02d}-{day.day:02d}"
    if roll < 0.10:
        return f"{day.month:02d}-{day.day:02d}"
    year = rng.randrange(1935, 2009)
    if (day.month, day.day) == (2, 29) and not calendar.isleap(year):
        day = day.replace(day=28)
    return f"{year}-{day.month:02d}-{day.day:02d}"


def customer_rows(count: int, rng: random.Random) -> Iterator[tuple[str, ...]]:
    """`count` customers C-0000001.. with unique emails and the usual gaps."""
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{FIRST_SLUGS[first]}.{LAST_SLUGS[last]}{number}@{rng.choice(DOMAINS)}"
        zone = rng.choice(TIME_ZONES) if rng.random() < 0.30 else ""
        since = (SINCE_FIRST + timedelta(days=rng.randrange(SINCE_DAYS))).isoformat()
        preferred = first[:3] if rng.random() < 0.15 else ""
        pet = rng.choice(PETS) if rng.random() < 0.20 else ""
        birthday = _birthday(rng)
        yield (customer_id(number), f"{first} {last}", email, birthday, zone, since, preferred, pet)


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def order_rows(count: int, customers: int, rng: random.Random) -> Iterator[tuple[str, ...]]:
    """`count` orders; customer k is chosen with density ~ 1/sqrt(k), so a few have many."""
    for number in range(1, count + 1):
        customer = 1 + int(customers * rng.random() ** 2)
        placed = (ORDER_FIRST + timedelta(seconds=rng.randrange(ORDER_SECONDS))).isoformat()
        if rng.random() < 0.40:
            placed += rng.choice(OFFSETS)
        cents = min(100 + int(rng.lognormvariate(8.0, 1.0)), 10_000_000)
        margin = _money(int(cents * rng.uniform(-0.1, 0.6))) if rng.random() < 0.5 else ""
        description = rng.choice(PRODUCTS) if rng.random() < 0.9 else ""
        yield (
            order_id(number),
            customer_id(customer),
            placed,
            _money(cents),
            margin,
            description,
        )


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# --- measuring -----------------------------------------------------------------------------


class BenchError(Exception):
    """An import that failed or rejected rows: the figures would mean nothing."""


@dataclass(frozen=True)
class Measurement:
    """One phase: how many rows, how long, and (for an import) its process's peak RSS."""

    phase: str
    rows: int
    seconds: float
    rows_per_second: float
    peak_rss_mb: float | None = None

    @classmethod
    def of(
        cls, phase: str, rows: int, seconds: float, peak_rss_mb: float | None = None
    ) -> Measurement:
        return cls(phase, rows, seconds, rows / seconds if seconds else 0.0, peak_rss_mb)


@dataclass(frozen=True)
class DataFiles:
    customers: Path
    orders: Path
    customer_count: int
    order_count: int


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(directory: Path, customers: int, orders: int) -> tuple[DataFiles, list[Measurement]]:
    """Write customers.csv and orders.csv into `directory`; time each."""
    rng = random.Random(SEED)
    files = DataFiles(directory / "customers.csv", directory / "orders.csv", customers, orders)
    return files, [
        _timed_write(
            "generate customers",
            files.customers,
            CUSTOMER_HEADER,
            customers,
            customer_rows(customers, rng),
        ),
        _timed_write(
            "generate orders",
            files.orders,
            ORDER_HEADER,
            orders,
            order_rows(orders, customers, rng),
        ),
    ]


def _timed_write(
    phase: str, path: Path, header: Sequence[str], count: int, rows: Iterable[Sequence[str]]
) -> Measurement:
    log(f"{phase}: {count:,} rows -> {path}")
    started = time.perf_counter()
    write_csv(path, header, rows)
    return Measurement.of(phase, count, time.perf_counter() - started)


def appreciate(*arguments: str) -> list[str]:
    """The command line running this interpreter's appreciate."""
    return [sys.executable, "-m", "scheduler", *arguments]


def create_workspace(directory: Path) -> Path:
    """A fresh workspace (config and migrated SQLite store); returns its config path."""
    if directory.exists():
        shutil.rmtree(directory)
    result = subprocess.run(
        appreciate("init", str(directory)), check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchError(f"appreciate init failed ({result.returncode}):\n{result.stderr}")
    return directory / "appreciate.toml"


def _peak_rss_mb(usage: resource.struct_rusage) -> float:
    """ru_maxrss is KiB on Linux and bytes on macOS."""
    scale = 1 if sys.platform == "darwin" else 1024
    return float(usage.ru_maxrss) * scale / (1024 * 1024)


def run_import(config: Path, kind: str, path: Path, rows: int, logs: Path) -> Measurement:
    """Import `path` in a process of its own; check every row went in as new."""
    command = appreciate(
        "--config", str(config), "import", kind, str(path), "--now", NOW, "--format", "json"
    )
    out_path, err_path = logs / f"import-{kind}.json", logs / f"import-{kind}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    _check_report(kind, rows, process.returncode, out_path, err_path)
    return Measurement.of(f"import {kind}", rows, seconds, _peak_rss_mb(usage))


def _check_report(kind: str, rows: int, code: int, out_path: Path, err_path: Path) -> None:
    stderr = err_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    try:
        report = json.loads(out_path.read_text(encoding="utf-8"))
    except ValueError:
        raise BenchError(f"import {kind} exited {code} without a JSON report:\n{stderr}") from None
    rejected = report.get("rejected", [])
    if code != 0 or report.get("inserted") != rows or rejected:
        first = "\n".join(f"  line {r['line']}: {r['reason']}" for r in rejected[:10])
        raise BenchError(
            f"import {kind} exited {code}: {report.get('inserted')} of {rows} rows inserted, "
            f"{len(rejected)} rejected\n{first}\n{stderr}"
        )


def measure_imports(directory: Path, files: DataFiles) -> list[Measurement]:
    """One repetition: a fresh workspace, then customers, then orders."""
    config = create_workspace(directory / "workspace")
    results = []
    for kind, path, rows in (
        ("customers", files.customers, files.customer_count),
        ("orders", files.orders, files.order_count),
    ):
        log(f"import {kind}: {rows:,} rows ...")
        result = run_import(config, kind, path, rows, directory)
        log(
            f"  {result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s, "
            f"peak RSS {result.peak_rss_mb:.0f} MB"
        )
        results.append(result)
    return results


def median_of(runs: Sequence[Measurement]) -> Measurement:
    """The median of each figure over repetitions of one phase."""
    rss = [run.peak_rss_mb for run in runs if run.peak_rss_mb is not None]
    return Measurement(
        runs[0].phase,
        runs[0].rows,
        statistics.median(run.seconds for run in runs),
        statistics.median(run.rows_per_second for run in runs),
        statistics.median(rss) if rss else None,
    )


# --- reporting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    target: str
    status: str
    misses: list[str]


def judge(result: Measurement) -> Verdict:
    """Compare an import with its targets (time scaled to the number of rows)."""
    kind = result.phase.removeprefix("import ")
    if kind not in TARGET_SECONDS:
        return Verdict("-", "-", [])
    seconds = TARGET_SECONDS[kind] * result.rows / TARGET_DEFAULT_ROWS[kind]
    misses = []
    if result.seconds >= seconds:
        misses.append(f"{result.phase}: {result.seconds:.1f} s, target < {seconds:.1f} s")
    if result.peak_rss_mb is not None and result.peak_rss_mb >= TARGET_RSS_MB:
        misses.append(
            f"{result.phase}: peak RSS {result.peak_rss_mb:.0f} MB, target < {TARGET_RSS_MB:.0f} MB"
        )
    target = f"< {seconds:.1f} s, < {TARGET_RSS_MB:.0f} MB"
    return Verdict(target, "MISSED" if misses else "PASS", misses)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return (
        f"{platform.platform()}; {os.cpu_count()} CPUs ({cpu}); "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )


def code_under_test() -> str:
    """Which scheduler package the imports run: path, git commit, and a hash of its sources.

    Taken before and after the imports, it shows when the code changed during a run.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import scheduler; print(scheduler.__file__)"],
        check=False,
        capture_output=True,
        text=True,
    )
    package = Path(found.stdout.strip()).parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    return f"{package} ({_git_state(package)}; sources sha256 {digest.hexdigest()[:12]})"


def _git_state(directory: Path) -> str:
    git = shutil.which("git")
    if git is None:
        return "git not found"
    head = subprocess.run(
        [git, "-C", str(directory), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        return "not a git checkout"
    status = subprocess.run(
        [git, "-C", str(directory), "status", "--porcelain", "--", "."],
        check=False,
        capture_output=True,
        text=True,
    )
    edited = " + uncommitted changes" if status.stdout.strip() else ""
    return f"git {head.stdout.strip()}{edited}"


def print_report(results: Sequence[Measurement], repeat: int, code: str) -> list[str]:
    """Print the table; return the missed targets."""
    columns = ("phase", "rows", "seconds", "rows/s", "peak RSS MB", "target", "result")
    lines = [columns]
    misses: list[str] = []
    for result in results:
        verdict = judge(result)
        misses += verdict.misses
        rss = "-" if result.peak_rss_mb is None else f"{result.peak_rss_mb:.0f}"
        lines.append(
            (
                result.phase,
                f"{result.rows:,}",
                f"{result.seconds:.1f}",
                f"{result.rows_per_second:,.0f}",
                rss,
                verdict.target,
                verdict.status,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    print()
    if repeat > 1:
        print(f"Median of {repeat} repetitions (generation ran once).")
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print(f"\nmachine: {machine()}")
    print(f"code:    {code}")
    return misses


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, metavar="N")
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS, metavar="M")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work folder, kept afterwards (default: a temporary one)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="K", help="imports K times; medians"
    )
    args = parser.parse_args(argv)
    if args.customers < 1 or args.orders < 0 or args.repeat < 1:
        parser.error("--customers and --repeat must be at least 1, --orders at least 0")
    return args


@contextmanager
def work_dir(directory: Path | None) -> Iterator[Path]:
    """`directory` (created, kept) or a temporary folder removed at the end."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="appreciate-bench-") as temporary:
        yield Path(temporary)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code = code_under_test()
    log(f"code: {code}")
    with work_dir(args.dir) as directory:
        files, generation = generate(directory, args.customers, args.orders)
        try:
            runs = [measure_imports(directory, files) for _ in range(args.repeat)]
        except BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    imports = [median_of([run[i] for run in runs]) for i in range(len(runs[0]))]
    misses = print_report([*generation, *imports], args.repeat, code)
    if code_under_test() != code:
        print("WARNING: the scheduler sources changed during the run; the figures mix versions.")
    if args.customers != DEFAULT_CUSTOMERS or args.orders != DEFAULT_ORDERS:
        print("note: not the default sizes; time targets are scaled to the rows imported.")
    for miss in misses:
        print(f"MISSED {miss}")
    if not misses:
        print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
