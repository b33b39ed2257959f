"""Benchmark: the unsubscribe page's answers and the owner's console pages on a large store,
served by uvicorn as in production.

Setup: a SQLite store (or the PostgreSQL database of `--database-url`, in a schema of its own,
dropped afterwards) with `--customers` customers, each with a token and `--notes-each` notes
(notes 0, 3, 6.. still pending, so an opt-out has notes to stop; the others mostly sent, some
failed, held, suppressed, expired or skipped), of every occasion kind; every customer's note k
is due on the same day (so one status in one month matches `--customers` notes), and its latest
activity falls in the year after, so the last 90 days hold about 25,000 notes to chart; and a
last cycle recorded. `--dir` keeps the SQLite store and reuses it when it is of the same size.
The application runs under uvicorn in a process of its own on loopback, as `appreciate web`
runs it. A client on `--clients` keep-alive connections then asks for distinct customers' pages
(`GET /u/{token}`) and posts one-click opt-outs (`POST /u/{token}`, body
`List-Unsubscribe=One-Click`), each customer once (customers not yet opted out). Prints the
median and 95th percentile latency seen by the client, the requests per second, and checks
that every posted customer ended opted out with their open notes suppressed. Then, logged in,
it asks for each of the owner's pages `--page-repeat` times (`--only`: those whose name holds
this) and prints the median time to answer, the fastest and slowest, and the server's CPU time
a request. `--pages-only` leaves out the GETs and POSTs, so a kept store stays as it was.

Targets (issue 14): more than 500 one-click POSTs a second on SQLite; each owner page under
100 ms (median).

    python bench/web.py                                    # 100,000 customers, 1M notes
    python bench/web.py --customers 10000 --notes-each 10  # a quick check
    python bench/web.py --database-url postgresql://root@127.0.0.1:5432/test
    python bench/web.py --dir /tmp/web-bench --pages-only --page-repeat 31   # owner pages only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import Engine, create_engine, func, insert, select, text

from scheduler.notes.unsubscribe import new_token
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from scheduler.vocabulary import OCCASION_KINDS

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
TARGET_POSTS_PER_SECOND = 500
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
tokens = metadata.tables["unsubscribe_tokens"]
app_state = metadata.tables["app_state"]
LAST_CYCLE = {
    "at": (NOW - timedelta(minutes=1)).isoformat(),
    "added": {"birthday": 31, "order_thanks": 12},
    "outcomes": {"sent": 43},
    "paused": None,
    "throttled": None,
}
"""The daemon's last cycle, a minute before the clock's time (the Today page shows it)."""
CHUNK = 5_000
YEAR_MINUTES = 365 * 24 * 60
SETTLED = ("failed", "held", "suppressed", "expired", "skipped") + ("sent",) * 45
"""What became of a note that is no longer pending, chosen in turn: mostly sent."""
SERVER = """
import sys
from datetime import UTC, datetime
from scheduler.clock import FixedClock
from scheduler.config.settings import BusinessSettings, Settings
from scheduler.store.db import create_store_engine
from scheduler.web.app import create_app
from scheduler.web.login import hash_password
from scheduler.web.serve import serve
settings = Settings(business=BusinessSettings(
    name="Bright Smile Dental", sender_name="Dr. Lee", sender_email="lee@example.com"))
engine = create_store_engine(sys.argv[1])
app = create_app(engine, settings, FixedClock(datetime(2027, 6, 15, 9, tzinfo=UTC)),
                 hash_password(sys.argv[3]))
serve(app, "127.0.0.1", int(sys.argv[2]))
"""
OWNER_PASSWORD = "bench owner password"  # noqa: S105 - the benchmark's own server


def owner_paths(customers: int, notes: int) -> tuple[tuple[str, str], ...]:
    """The owner's pages timed: (name, path); "" is page 200 of the sent-log."""
    middle = f"C-{max(customers // 2, 1):07d}"
    return (
        ("today (/)", "/"),
        ("sent-log, first page", "/log"),
        ("sent-log, one customer", f"/log?customer={middle}"),
        ("sent-log, status + month", "/log?status=pending&since=2020-06-01&until=2020-06-30"),
        ("sent-log, one status", "/log?status=sent"),
        ("sent-log, one month", "/log?since=2020-06-01&until=2020-06-30"),
        ("sent-log, kind + month", "/log?kind=birthday&since=2020-06-01&until=2020-06-30"),
        ("sent-log, page 200", ""),
        ("one note", f"/notes/{max(notes // 2, 1)}"),
        ("one customer", f"/customer?id={middle}"),
    )


OWNER_TARGET_MS = 100.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(engine: Engine, count: int, notes_each: int) -> None:
    """`count` customers with a token and `notes_each` notes each (see the module's setup), and
    the last cycle."""
    with engine.begin() as connection:
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            connection.execute(
                insert(customers),
                [
                    {
                        "id": n,
                        "external_id": f"C-{n:07d}",
                        "name": f"Customer {n}",
                        "email": f"c{n}@example.com",
                        "attributes": {},
                    }
                    for n in ids
                ],
            )
            connection.execute(
                insert(tokens), [{"customer_id": n, "token": new_token()} for n in ids]
            )
            connection.execute(
                insert(touches), [note(n, k, notes_each) for n in ids for k in range(notes_each)]
            )
        connection.execute(
            insert(app_state).values(
                name="last_cycle", value=json.dumps(LAST_CYCLE), updated_at=NOW
            )
        )


def note(n: int, k: int, notes_each: int) -> dict[str, object]:
    """Customer `n`'s note `k`: due on the same day as every customer's note `k` (so one
    status in one month matches every customer's), its latest activity in the year after;
    notes 0, 3, 6.. still pending, but for the last."""
    kind = OCCASION_KINDS[(n + k) % len(OCCASION_KINDS)]
    due = NOW - timedelta(days=365 * (notes_each - k))
    return {
        "customer_id": n,
        "kind": kind,
        "occasion_key": f"{kind}:{2000 + k}",
        "status": "pending"
        if k % 3 == 0 and k < notes_each - 1
        else SETTLED[(n * 7 + k) % len(SETTLED)],
        "due_at": due,
        "expires_at": NOW + timedelta(days=3),
        "updated_at": due + timedelta(minutes=(n * 7919 + k * 104_729) % YEAR_MINUTES),
    }


def free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def hammer(base: str, work: list[str], clients: int, post: bool) -> tuple[list[float], float]:
    """Ask for each token's page (or post its one-click) on `clients` connections: every
    request's latency, and the wall time of the whole run."""
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [work[n::clients] for n in range(clients)]

    def run(share: list[str]) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for token in share:
                started = time.perf_counter()
                if post:
                    answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
                else:
                    answer = client.get(f"/u/{token}")
                mine.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"{answer.status_code} for a request: {answer.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used (Linux: /proc/PID/stat, user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(what: str, latencies: list[float], wall: float, server_cpu: float) -> float:
    ordered = sorted(latencies)
    rate = len(ordered) / wall
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{what:16s} {len(ordered):6d} requests  median {statistics.median(ordered) * 1000:6.2f} ms"
        f"  p95 {p95 * 1000:6.2f} ms  {rate:6.0f} /s"
        f"  server CPU {server_cpu / len(ordered) * 1000:5.2f} ms each"
    )
    return rate


def measured(
    what: str, server: subprocess.Popen[bytes], base: str, work: list[str], clients: int, post: bool
) -> float:
    """One phase: its latencies, rate, and the server's CPU time a request."""
    before = cpu_seconds(server.pid)
    latencies, wall = hammer(base, work, clients, post)
    return report(what, latencies, wall, cpu_seconds(server.pid) - before)


def open_database(database_url: str, folder: str) -> tuple[str, str]:
    """The store's URL: a SQLite file in `folder`, or a fresh schema of `database_url`."""
    if not database_url:
        return f"sqlite:///{Path(folder) / 'store.db'}", ""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    base = database_url.replace("postgresql://", "postgresql+psycopg://")
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return f"{base}?options=-csearch_path%3D{schema}", schema


def drop_schema(database_url: str, schema: str) -> None:
    admin = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def serving(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """The application under uvicorn in a process of its own, once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, url, str(port), OWNER_PASSWORD],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/u/x", timeout=1)
            return server, base
        except httpx.TransportError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.1)


def owner_pages(
    server: subprocess.Popen[bytes],
    base: str,
    pages: tuple[tuple[str, str], ...],
    repeat: int,
    only: str,
) -> None:
    """The owner's pages, logged in (those whose name holds `only`): each asked `repeat` times;
    the median time to answer, with the fastest and slowest, and the server's CPU time a
    request (steadier than the time to answer when other work shares the machine)."""
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.get("/login").text
        csrf = login.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"csrf": csrf, "password": OWNER_PASSWORD})
        chosen = [(what, path) for what, path in pages if only in what]
        deep = "/log"
        for _ in range(199 if any(not path for _, path in chosen) else 0):
            found = client.get(deep).text.split('<a href="log?', 1)  # "older activity": page 200
            deep = "/log?" + found[1].split('"', 1)[0].replace("&amp;", "&")
        for what, path in chosen:
            times = []
            cpu = cpu_seconds(server.pid)
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path or deep)
                times.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"{what}: {answer.status_code}")
            median = statistics.median(times) * 1000
            verdict = "met" if median < OWNER_TARGET_MS else "MISSED"
            target = f"target < {OWNER_TARGET_MS:.0f} ms: {verdict}"
            spread = f"{min(times) * 1000:.1f}-{max(times) * 1000:.1f}"
            each = (cpu_seconds(server.pid) - cpu) / repeat * 1000
            print(
                f"{what:26s} median {median:6.1f} ms ({spread})  server CPU {each:5.1f} ms each"
                f"  ({target})"
            )


def unused_tokens(url: str, count: int) -> list[str]:
    """Up to `count` tokens of customers not opted out, in the customers' order."""
    engine = create_store_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            select(tokens.c.token)
            .join(customers, customers.c.id == tokens.c.customer_id)
            .where(customers.c.opted_out_at.is_(None))
            .order_by(tokens.c.customer_id)
            .limit(count)
        )
        made = list(found.scalars())
    engine.dispose()
    return made


def check(url: str, posted: list[str]) -> tuple[int, int]:
    """(customers of the `posted` tokens opted out, pending notes of theirs left)."""
    engine = create_store_engine(url)
    theirs = select(tokens.c.customer_id).where(tokens.c.token.in_(posted)).scalar_subquery()
    with engine.connect() as connection:
        out = connection.execute(
            select(func.count()).where(
                customers.c.opted_out_at.is_not(None), customers.c.id.in_(theirs)
            )
        ).scalar_one()
        left = connection.execute(
            select(func.count()).where(
                touches.c.customer_id.in_(theirs), touches.c.status == "pending"
            )
        ).scalar_one()
    engine.dispose()
    return out, left


def prepared(url: str, folder: Path | None, options: argparse.Namespace) -> None:
    """Bring the store to this checkout's schema and fill it, unless `folder` keeps one of
    this size already."""
    size = {"customers": options.customers, "notes_each": options.notes_each}
    marker = folder / "store.json" if folder else None
    engine = create_store_engine(url)
    try:
        if marker is not None and marker.exists() and json.loads(marker.read_text()) == size:
            upgrade(engine)
            log(f"store: reusing {marker.parent / 'store.db'}")
            return
        if marker is not None:
            marker.unlink(missing_ok=True)
            engine.dispose()
            for name in ("store.db", "store.db-wal", "store.db-shm"):
                (marker.parent / name).unlink(missing_ok=True)
            engine = create_store_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        build(engine, options.customers, options.notes_each)
        notes = options.customers * options.notes_each
        log(f"store: {options.customers:,} customers, {notes:,} notes")
        log(f"  built in {time.perf_counter() - started:.1f} s")
        if marker is not None:
            marker.write_text(json.dumps(size))
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes-each", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3_000, help="of each kind")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--page-repeat", type=int, default=7, help="each owner page's repeats")
    parser.add_argument("--only", default="", help="the owner pages whose name holds this")
    parser.add_argument(
        "--pages-only", action="store_true", help="no GETs or POSTs of /u/: the store is unchanged"
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL; default: a SQLite file")
    parser.add_argument(
        "--dir", type=Path, help="keep the SQLite store here; reused when it is of the same size"
    )
    options = parser.parse_args()
    if options.dir and options.database_url:
        parser.error("--dir keeps a SQLite store; not with --database-url")
    with tempfile.TemporaryDirectory(prefix="appreciate-web-bench-") as scratch:
        folder = options.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        url, schema = open_database(options.database_url, str(folder))
        try:
            prepared(url, options.dir, options)
            count = 0 if options.pages_only else options.requests
            made = unused_tokens(url, 2 * count)
            count = min(count, len(made) // 2)
            pages, posts = made[:count], made[count : 2 * count]
            server, base = serving(url)
            try:
                store = "PostgreSQL" if schema else "SQLite"
                print(f"uvicorn, {options.clients} keep-alive clients, {store}")
                rate = 0.0
                if count:
                    measured("GET /u/{token}", server, base, pages, options.clients, post=False)
                    rate = measured(
                        "POST one-click", server, base, posts, options.clients, post=True
                    )
                paths = owner_paths(options.customers, options.customers * options.notes_each)
                owner_pages(server, base, paths, options.page_repeat, options.only)
            finally:
                server.terminate()
                server.wait(timeout=30)
            if not count:
                return 0
            out, left = check(url, posts)
            print(f"opted out: {out:,} customers; pending notes of theirs left: {left}")
            verdict = "met" if rate > TARGET_POSTS_PER_SECOND else "MISSED"
            print(f"target: over {TARGET_POSTS_PER_SECOND} one-click POSTs a second: {verdict}")
            return 0 if out == len(posts) and left == 0 else 1
        finally:
            if schema:
                drop_schema(options.database_url, schema)


if __name__ == "__main__":
    raise SystemExit(main())
