"""Benchmark: how long the `appreciate` command takes to start and answer, against Python itself.

What it measures: the wall time of `appreciate --help`, `--version`, `log` and `status` (each a
new process: `python -m scheduler ...`, the way the installed command runs) on a workspace
whose store holds 20,000 notes (2,000 customers, ten notes each, most of them sent), against
`python -c pass` in the same run. The commands take turns, `--repeat` rounds, so a busy
moment of the machine slows each of them alike; medians, and each command's ratio to
`python -c pass`. Also how many modules each command imported (`-X importtime`), the best
single sign of what start-up costs.

Targets: `--help` under 8x `python -c pass`; `log` and `status` under 12x.

On a busy machine the times swing; `--instructions` adds each command's count of executed
instructions (valgrind's callgrind, one run each, about 20 s a command), which does not depend
on what else runs. Instructions are not time: on a quiet machine a command's time ratio has
been about three quarters of its instruction ratio (python's own start does more that is not
instructions: loading, paging), so use them to compare two versions, not against the targets.

    python bench/cli.py                 # builds the small store in a temporary folder
    python bench/cli.py --repeat 31     # steadier medians
    python bench/cli.py --instructions  # also instructions executed (needs valgrind)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from scheduler.cli.workspace import create_workspace
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata

CUSTOMERS, NOTES_EACH = 2_000, 10
TARGETS = {"--help": 8.0, "log": 12.0, "status": 12.0}
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def build(folder: Path) -> Path:
    """A workspace with CUSTOMERS customers and NOTES_EACH notes each; its config."""
    workspace = create_workspace(folder)
    engine = create_store_engine(workspace.database_url)
    customers, touches = metadata.tables["customers"], metadata.tables["touches"]
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(customers),
                [
                    {
                        "external_id": f"C-{n}",
                        "name": f"Customer {n}",
                        "email": f"c{n}@example.com",
                        "attributes": {},
                    }
                    for n in range(1, CUSTOMERS + 1)
                ],
            )
            notes = []
            for customer in range(1, CUSTOMERS + 1):
                for number in range(NOTES_EACH):
                    due = NOW - timedelta(days=number * 7, minutes=customer)
                    sent = number > 0
                    notes.append(
                        {
                            "customer_id": customer,
                            "kind": "order_thanks",
                            "occasion_key": f"order:A-{customer}-{number}",
                            "status": "sent" if sent else "pending",
                            "due_at": due,
                            "expires_at": due + timedelta(days=7),
                            "sent_at": due if sent else None,
                            "subject": "Thank you for your order",
                            "created_at": due,
                            "updated_at": due,
                        }
                    )
            connection.execute(insert(touches), notes)
    finally:
        engine.dispose()
    return workspace.config_path


ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""As an installed command runs: its modules' bytecode cached (written by the first run)."""


def run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV
    )
    return time.perf_counter() - started


def modules(command: list[str]) -> int:
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        env=ENV,
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("import time:")) - 1


def instructions(command: list[str]) -> int | None:
    """Instructions executed by `command` under callgrind; None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        env=ENV,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    return int(found.group(1)) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="rounds (default 15)")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as folder:
        config = build(Path(folder))
        python = [sys.executable]
        app = [*python, "-m", "scheduler", "--config", str(config)]
        commands = {
            "python -c pass": [*python, "-c", "pass"],
            "--help": [*python, "-m", "scheduler", "--help"],
            "--version": [*python, "-m", "scheduler", "--version"],
            "log": [*app, "log"],
            "status": [*app, "status"],
        }
        env_note = os.environ.get("VIRTUAL_ENV", sys.prefix)
        print(f"python {sys.version.split()[0]} in {env_note}; {options.repeat} rounds")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm the file cache and write the bytecode once
            run(command)
        for _ in range(options.repeat):
            for name, command in commands.items():
                times[name].append(run(command))
        base = statistics.median(times["python -c pass"])
        counted = {
            name: instructions(command) if options.instructions else None
            for name, command in commands.items()
        }
        base_count = counted["python -c pass"]
        print(f"{'command':<16} {'median':>8} {'ratio':>7} {'modules':>8}  target")
        for name, command in commands.items():
            median = statistics.median(times[name])
            ratio = median / base
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                met = ratio < target
                verdict = f"< {target:.0f}x: {'met' if met else 'NOT met'}"
            count = modules(command)
            executed = counted[name]
            if executed is not None and base_count:
                verdict += f"  ({executed / 1e6:.0f}M instructions, {executed / base_count:.1f}x)"
            print(f"{name:<16} {median * 1000:>6.0f}ms {ratio:>6.1f}x {count:>8}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
