"""Benchmark: how fast what comes back is read, classified and recorded.

What it measures, on a SQLite workspace with 2,000 customers each with a sent note:
- IMAP: a private Dovecot mailbox (tests/dovecot_server.py: Debian's dovecot-imapd, run as
  root) holding `--messages` messages (a quarter each: replies quoting a note, Postfix bounces
  to the note's tagged return path, out-of-office replies, and messages that match nothing),
  read by one `poll_mailbox` (fetch, classify, record once, move to the processed folder):
  messages per second. Target: over 300/s.
- In-process: `InboundRecorder.record` alone on the same messages (no IMAP), one transaction
  each (as the pipe records; a poll records each fetched batch in one): messages per second.
- The pipe: `python -m scheduler inbound FILE` as a mail server runs it, one process per
  message, `--pipe` of them: the median wall time per message (mostly the interpreter's start
  and imports) and what that allows per second.

Each IMAP and in-process round starts from the same state (the inbound table emptied, the
notes sent again, the mail put back); medians over `--repeat` rounds.

    python bench/inbound.py                      # 10,000 messages, 3 rounds, 30 pipe runs
    python bench/inbound.py --messages 2000 --repeat 1 --pipe 10   # quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, insert, update

from scheduler.cli.workspace import create_workspace
from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.inbound.imap_poll import Mailbox, poll_mailbox
from scheduler.inbound.record import InboundRecorder, InboundRules
from scheduler.notes.bounce_tag import bounce_address_for, tag_key
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.models import metadata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' Dovecot helper

from tests.dovecot_server import PASSWORD, DovecotUnavailable, private_dovecot

NOW = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)
CUSTOMERS = 2_000
TARGET_IMAP = 300.0
BOUNCES = "bounces+{tag}@example.com"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "inbound"
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
inbound_messages = metadata.tables["inbound_messages"]
undeliverable = metadata.tables["undeliverable_addresses"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_store(folder: Path) -> tuple[Path, Engine, bytes]:
    """A workspace whose store holds CUSTOMERS customers, each with one sent note; its
    config, engine and tagging key."""
    workspace = create_workspace(folder)
    text = workspace.config_path.read_text(encoding="utf-8")
    text = text.replace('bounce_address = ""', f'bounce_address = "{BOUNCES}"', 1)
    workspace.config_path.write_text(text, encoding="utf-8")
    engine = create_store_engine(workspace.database_url)
    with write_transaction(engine) as connection:
        connection.execute(
            insert(customers),
            [
                {"external_id": f"C-{n}", "name": f"Customer {n}", "email": f"c{n}@example.net"}
                for n in range(1, CUSTOMERS + 1)
            ],
        )
        connection.execute(
            insert(touches),
            [
                {
                    "customer_id": n,
                    "kind": "birthday",
                    "occasion_key": "birthday:2027",
                    "status": "sent",
                    "due_at": NOW - timedelta(days=1),
                    "sent_at": NOW - timedelta(days=1),
                    "message_id": f"<bench-{n}@example.com>",
                }
                for n in range(1, CUSTOMERS + 1)
            ],
        )
        key = tag_key(connection, NOW)
    return workspace.config_path, engine, key


def messages(count: int, key: bytes) -> list[bytes]:
    """`count` distinct messages: replies, bounces, auto-replies and strangers in turn."""
    reply = (CORPUS / "reply_english.eml").read_bytes()
    bounce = (CORPUS / "postfix_dsn_user_unknown.eml").read_bytes()
    away = (CORPUS / "outlook_out_of_office.eml").read_bytes()
    made = []
    for n in range(count):
        note = n % CUSTOMERS + 1
        template = (reply, bounce, away, reply)[n % 4]
        raw = template.replace(b"{{MESSAGE_ID}}", f"<bench-{note}@example.com>".encode())
        address = bounce_address_for(BOUNCES, key, note)
        raw = raw.replace(b"bounces+{{TAG}}@example.com", address.encode())
        raw = raw.replace(b"{{RECIPIENT}}", f"c{note}@example.net".encode())
        if n % 4 == 3:  # a stranger: quotes no note of ours
            raw = raw.replace(f"<bench-{note}@example.com>".encode(), b"<someone@else.example>")
        own_id = f"Message-ID: <in-{n}@bench.example>\r\n".encode()
        made.append(own_id + b"X-Bench: " + str(n).encode() + b"\r\n" + raw)
    return made


def reset(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        connection.execute(delete(inbound_messages))
        connection.execute(delete(undeliverable))
        connection.execute(update(touches).values(status="sent", replied_at=None))
        connection.execute(update(customers).values(opted_out_at=None))


def imap_round(engine: Engine, raw_messages: list[bytes], user: str, rules: InboundRules) -> float:
    """Seconds for one poll reading every message from a fresh mailbox of `user`."""
    with private_dovecot() as dovecot:
        for raw in raw_messages:
            dovecot.deliver(user, raw)
        mailbox = Mailbox("127.0.0.1", dovecot.port, "none", user, PASSWORD)
        started = time.perf_counter()
        report = poll_mailbox(engine, mailbox, rules, FixedClock(NOW))
        elapsed = time.perf_counter() - started
    if report.problem or report.read != len(raw_messages):
        raise SystemExit(f"the poll did not read everything: {report.line()}")
    log(f"  imap: {report.line()} in {elapsed:.2f} s")
    return elapsed


def in_process_round(engine: Engine, raw_messages: list[bytes], rules: InboundRules) -> float:
    recorder = InboundRecorder(engine, rules)
    started = time.perf_counter()
    for raw in raw_messages:  # one transaction each, as the pipe records
        recorder.record(raw, NOW)
    return time.perf_counter() - started


def pipe_runs(config: Path, raw_messages: list[bytes], folder: Path) -> list[float]:
    """Wall seconds of `python -m scheduler inbound FILE`, one process per message."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for n, raw in enumerate(raw_messages):
        path = folder / f"pipe-{n}.eml"
        path.write_bytes(raw)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", "--config", str(config), "inbound", str(path)],
            capture_output=True,
            env=env,
            check=False,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"the pipe command failed: {done.stderr.decode(errors='replace')}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--pipe", type=int, default=30, help="pipe command runs (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="appreciate-bench-inbound-") as scratch:
        folder = Path(scratch)
        config, engine, key = build_store(folder / "workspace")
        rules = InboundRules.of(load_config(config).settings)
        raw_messages = messages(args.messages, key)
        log(f"{len(raw_messages)} messages, {sum(map(len, raw_messages)) / 1e6:.1f} MB")
        imap, local = [], []
        try:
            for round_number in range(args.repeat):
                reset(engine)
                imap.append(imap_round(engine, raw_messages, f"r{round_number}", rules))
                reset(engine)
                local.append(in_process_round(engine, raw_messages, rules))
        except DovecotUnavailable as error:
            raise SystemExit(f"no IMAP server to measure against: {error}") from None
        reset(engine)
        piped = pipe_runs(config, messages(args.pipe, key), folder)
        engine.dispose()
    count = len(raw_messages)
    imap_rate = count / statistics.median(imap)
    local_rate = count / statistics.median(local)
    pipe_ms = statistics.median(piped) * 1000
    verdict = "met" if imap_rate > TARGET_IMAP else "MISSED"
    print(
        f"IMAP poll:   {imap_rate:8.0f} messages/s (median of {len(imap)}; target > "
        f"{TARGET_IMAP:.0f}/s: {verdict})"
    )
    print(
        f"in-process:  {local_rate:8.0f} messages/s (recording alone; IMAP costs "
        f"{local_rate / imap_rate:.2f}x)"
    )
    print(
        f"pipe:        {pipe_ms:8.0f} ms per message (median of {len(piped)} processes), "
        f"{1000 / pipe_ms:.1f} messages/s one at a time"
    )


if __name__ == "__main__":
    main()
