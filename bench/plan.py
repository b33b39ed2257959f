"""Benchmark: `appreciate plan` on a store of 100k customers, as a person runs it.

What it measures: the store of `detect.py`'s small size (100k customers and 500k orders, caught
up by a detection run at 11:55Z on 2026-11-23, then 10,000 new orders), with `[schedule]
daily_budget` set so the budget has work to do. The real command, in a process of its own
(start-up included), plans that day at 12:00Z: in table form (a summary and the first notes),
with `--all` (every note in the table), and as JSON. Each is run `--repeat` times; medians, and
how many notes the plan lists. The plan writes nothing, so every repeat does the same work.
Target: the default table under 5 s (it took 15.7 s when the table laid out every note).

    python bench/plan.py                          # builds the store first (a few minutes)
    python bench/plan.py --dir /tmp/plan-bench    # keep the store; a rerun skips the build
    python bench/plan.py --scale 0.1              # a quick check on a smaller store
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import detect

NOW = "2026-11-23T12:00:00+00:00"
CUSTOMERS, ORDERS = detect.SIZES["small"]
BUDGET = 500
TARGET_TABLE_S = 5.0


def timed(config: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "--config", str(config), "plan", "--now", NOW, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="where to build (and keep) the store")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the store (1.0: 100k)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    folder = options.dir or Path(tempfile.mkdtemp(prefix="plan-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    customers, orders = int(CUSTOMERS * options.scale), int(ORDERS * options.scale)
    detect.log(f"store: {customers:,} customers, {orders:,} orders in {folder}")
    config = detect.build_store(folder, customers, orders, min(customers, detect.NEW_ORDERS))
    text = config.read_text(encoding="utf-8")
    if "daily_budget = 0" in text:
        config.write_text(text.replace("daily_budget = 0", f"daily_budget = {BUDGET}"), "utf-8")
    results = {}
    for label, args in (("table", ()), ("table --all", ("--all",)), ("json", ("-f", "json"))):
        runs = [timed(config, *args) for _ in range(options.repeat)]
        results[label] = statistics.median(seconds for seconds, _ in runs)
        detect.log(f"plan ({label}): median {results[label]:.2f} s over {options.repeat} runs")
    _, stdout = timed(config, "-f", "json")
    plan = json.loads(stdout)
    statuses: dict[str, int] = {}
    for note in plan["notes"]:
        statuses[note["status"]] = statuses.get(note["status"], 0) + 1
    detect.log(f"the plan lists {len(plan['notes']):,} notes: {statuses}")
    met = results["table"] < TARGET_TABLE_S
    detect.log(f"target: the table under {TARGET_TABLE_S:.0f} s: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
