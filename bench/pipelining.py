"""Benchmark: the SMTP exchange alone, pipelined or not, against two private Postfix instances.

Both discard every message (tests/postfix_server.py; run as root, Debian's postfix); one offers
PIPELINING, the other is told not to (`smtpd_discard_ehlo_keywords = pipelining`), so
appreciate sends MAIL, RCPT and DATA one round trip at a time to it. The same prebuilt message
(about 1.5 KB) goes `--n` times over 4 `SmtpConnection`s to each, alternating, `--repeat`
times; prints the median messages/s and the CPU milliseconds a message in this process. No
store, no rendering: what pipelining changes, and only that.

    python bench/pipelining.py                  # 2,000 messages, 4 runs of each
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from scheduler.delivery.smtp_client import ServerSettings, SmtpConnection
from scheduler.notes.message import BuiltMessage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' Postfix helper

from tests.postfix_server import private_postfix

CONNECTIONS = 4
BODY = b"Thank you for your order, and for coming back to us so often this year.\r\n" * 18
MESSAGE = BuiltMessage(
    headers="",
    data=b"From: Ada <ada@example.com>\r\nTo: Ann <ann@example.com>\r\nSubject: Thank you\r\n"
    b"Message-ID: <bench@example.com>\r\n\r\n" + BODY,
    smtputf8=False,
    mail_from="ada@example.com",
    rcpt_to="ann@example.com",
    message_id="<bench@example.com>",
)


async def send_all(port: int, n: int) -> tuple[float, float]:
    """`n` messages over CONNECTIONS connections; wall and CPU seconds."""
    server = ServerSettings("127.0.0.1", port, "none", "", None, 30.0)
    left = n

    async def worker() -> None:
        nonlocal left
        connection = SmtpConnection(server)
        while left > 0:
            left -= 1
            outcome = await connection.send(MESSAGE)
            if outcome.status != "sent":
                raise SystemExit(f"not sent: {outcome}")
        await connection.close()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2_000, help="messages a run (default 2,000)")
    parser.add_argument("--repeat", type=int, default=4, help="runs of each (default 4)")
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {"one by one": [], "pipelined": []}
    with ExitStack() as stack:
        plain = stack.enter_context(
            private_postfix(settings={"smtpd_discard_ehlo_keywords": "pipelining"})
        )
        offering = stack.enter_context(private_postfix())
        for _ in range(args.repeat):
            runs["one by one"].append(asyncio.run(send_all(plain.port, args.n)))
            runs["pipelined"].append(asyncio.run(send_all(offering.port, args.n)))
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"{args.n:,} messages, {CONNECTIONS} connections, {args.repeat} runs each, load {load}")
    rates = {}
    for way, spans in runs.items():
        rates[way] = statistics.median(args.n / wall for wall, _ in spans)
        cpu_ms = statistics.median(1000 * cpu / args.n for _, cpu in spans)
        each = ", ".join(f"{args.n / wall:,.0f}" for wall, _ in spans)
        print(f"  {way:<11} {rates[way]:>6,.0f} msg/s (median; {each}), {cpu_ms:.3f} ms CPU a msg")
    print(f"  pipelined / one by one {rates['pipelined'] / rates['one by one']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
