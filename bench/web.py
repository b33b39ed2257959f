"""Benchmark: the unsubscribe page's answers on a large store, served by uvicorn as in production.

Setup: a SQLite store (or the PostgreSQL database of `--database-url`, in a schema of its own,
dropped afterwards) with `--customers` customers, each with a token and `--notes-each` notes
(about a third of them still pending, so an opt-out has notes to stop). The application runs
under uvicorn in a process of its own on loopback, as `appreciate web` runs it. A client on
`--clients` keep-alive connections then asks for distinct customers' pages (`GET /u/{token}`)
and posts one-click opt-outs (`POST /u/{token}`, body `List-Unsubscribe=One-Click`), each
customer once. Prints the median and 95th percentile latency seen by the client, the requests
per second, and checks that every posted customer ended opted out with their open notes
suppressed.

Target (issue 14): more than 500 one-click POSTs a second on SQLite.

    python bench/web.py                                    # 100,000 customers, 1M notes
    python bench/web.py --customers 10000 --notes-each 10  # a quick check
    python bench/web.py --database-url postgresql://root@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
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

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
TARGET_POSTS_PER_SECOND = 500
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
tokens = metadata.tables["unsubscribe_tokens"]
CHUNK = 5_000
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
OWNER_PAGES = (
    ("today (/)", "/"),
    ("sent-log, first page", "/log"),
    ("sent-log, one customer", "/log?customer=C-0050000"),
    ("sent-log, status + month", "/log?status=pending&since=2020-06-01&until=2020-06-30"),
    ("sent-log, page 200", ""),
    ("one note", "/notes/500000"),
    ("one customer", "/customer?id=C-0050000"),
)
OWNER_TARGET_MS = 100.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(engine: Engine, count: int, notes_each: int) -> list[str]:
    """`count` customers with a token and `notes_each` notes each; their tokens."""
    made: list[str] = []
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
            chunk_tokens = [new_token() for _ in ids]
            made += chunk_tokens
            connection.execute(
                insert(tokens),
                [{"customer_id": n, "token": t} for n, t in zip(ids, chunk_tokens, strict=True)],
            )
            connection.execute(
                insert(touches),
                [
                    {
                        "customer_id": n,
                        "kind": "birthday",
                        "occasion_key": f"birthday:{2000 + k}",
                        "status": "pending" if k % 3 == 0 else "sent",
                        "due_at": NOW - timedelta(days=365 * (notes_each - k)),
                        "expires_at": NOW + timedelta(days=3),
                    }
                    for n in ids
                    for k in range(notes_each)
                ],
            )
    return made


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


def owner_pages(base: str, repeat: int) -> None:
    """The owner's pages, logged in: each asked `repeat` times; the median time to answer."""
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.get("/login").text
        csrf = login.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"csrf": csrf, "password": OWNER_PASSWORD})
        deep = "/log"
        for _ in range(199):  # follow "older activity" 199 times: page 200
            found = client.get(deep).text.split('<a href="log?', 1)
            deep = "/log?" + found[1].split('"', 1)[0].replace("&amp;", "&")
        for what, path in OWNER_PAGES:
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path or deep)
                times.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"{what}: {answer.status_code}")
            median = statistics.median(times) * 1000
            verdict = "met" if median < OWNER_TARGET_MS else "MISSED"
            target = f"target < {OWNER_TARGET_MS:.0f} ms: {verdict}"
            print(f"{what:28s} median {median:7.1f} ms  ({target})")


def check(url: str) -> tuple[int, int]:
    """(customers opted out, pending notes of theirs left)."""
    engine = create_store_engine(url)
    with engine.connect() as connection:
        out = connection.execute(
            select(func.count()).where(customers.c.opted_out_at.is_not(None))
        ).scalar_one()
        left = connection.execute(
            select(func.count())
            .select_from(touches.join(customers, touches.c.customer_id == customers.c.id))
            .where(customers.c.opted_out_at.is_not(None), touches.c.status == "pending")
        ).scalar_one()
    engine.dispose()
    return out, left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes-each", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3_000, help="of each kind")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--page-repeat", type=int, default=7, help="each owner page's repeats")
    parser.add_argument("--database-url", default="", help="PostgreSQL; default: a SQLite file")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="appreciate-web-bench-") as folder:
        url, schema = open_database(options.database_url, folder)
        try:
            engine = create_store_engine(url)
            upgrade(engine)
            started = time.perf_counter()
            made = build(engine, options.customers, options.notes_each)
            engine.dispose()
            notes = options.customers * options.notes_each
            log(f"store: {options.customers:,} customers, {notes:,} notes")
            log(f"  built in {time.perf_counter() - started:.1f} s")
            count = min(options.requests, len(made) // 2)
            pages, posts = made[:count], made[count : 2 * count]
            server, base = serving(url)
            try:
                store = "PostgreSQL" if schema else "SQLite"
                print(f"uvicorn, {options.clients} keep-alive clients, {store}")
                measured("GET /u/{token}", server, base, pages, options.clients, post=False)
                rate = measured("POST one-click", server, base, posts, options.clients, post=True)
                owner_pages(base, options.page_repeat)
            finally:
                server.terminate()
                server.wait(timeout=30)
            out, left = check(url)
            print(f"opted out: {out:,} customers; pending notes of theirs left: {left}")
            verdict = "met" if rate > TARGET_POSTS_PER_SECOND else "MISSED"
            print(f"target: over {TARGET_POSTS_PER_SECOND} one-click POSTs a second: {verdict}")
            return 0 if out == len(posts) and left == 0 else 1
        finally:
            if schema:
                drop_schema(options.database_url, schema)


if __name__ == "__main__":
    raise SystemExit(main())
