"""Benchmark: the SMTP exchange alone, pipelined or not, against two private Postfix instances.

Both discard every message (tests/postfix_server.py; run as root, Debian's postfix); one offers
PIPELINING, the other is told not to (`smtpd_discard_ehlo_keywords = pipelining`), so
appreciate sends MAIL, RCPT and DATA one round trip at a time to it. The same prebuilt message
(about 1.5 KB) goes `--n` times over 4 `SmtpConnection`s to each, alternating, `--repeat`
times; prints the median messages/s and the CPU milliseconds a message in this process. No
store, no rendering: what pipelining changes, and only that.

Loopback answers in microseconds, so round trips cost next to nothing there. `--rtt MS` puts a
relay in between (a process of its own, so its CPU is not counted) that holds every chunk for
MS/2 milliseconds each way: the round trip of a real network, for both servers alike.

    python bench/pipelining.py                  # 2,000 messages, 4 runs of each
    python bench/pipelining.py --rtt 5 --n 500  # as if the server were 5 ms away
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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


# The relay that adds the round trip -------------------------------------------------------------


async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Everything `reader` gets, written to `writer` `delay` seconds later, in order."""
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await held.get())[1]:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))  # the simulated network
            writer.write(data)
        writer.close()

    delivering = asyncio.create_task(deliver())
    while data := await reader.read(65_536):
        held.put_nowait((loop.time() + delay, data))
    held.put_nowait((0.0, b""))
    await delivering


async def _relay(listen: int, target: int, delay: float) -> None:
    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            _carry(reader, server_writer, delay),
            _carry(server_reader, writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(connect, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def relayed(target: int, rtt_ms: float) -> Iterator[int]:
    """A port that reaches `target` with `rtt_ms` of round trip (none: `target` itself)."""
    if not rtt_ms:
        yield target
        return
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, __file__, "--relay", str(port), str(target), str(rtt_ms / 2000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if relay.stdout is None or relay.stdout.readline().strip() != "ready":
            raise SystemExit("the relay did not start")
        yield port
    finally:
        if relay.stdin is not None:
            relay.stdin.close()
        relay.wait(timeout=30)


# The measure -----------------------------------------------------------------------------------


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
    parser.add_argument("--rtt", type=float, default=0.0, help="round trip to add, ms")
    parser.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        listen, target, delay = args.relay
        asyncio.run(_relay(int(listen), int(target), float(delay)))
        return 0
    runs: dict[str, list[tuple[float, float]]] = {"one by one": [], "pipelined": []}
    with ExitStack() as stack:
        plain = stack.enter_context(
            private_postfix(settings={"smtpd_discard_ehlo_keywords": "pipelining"})
        )
        offering = stack.enter_context(private_postfix())
        plain_port = stack.enter_context(relayed(plain.port, args.rtt))
        offering_port = stack.enter_context(relayed(offering.port, args.rtt))
        for _ in range(args.repeat):
            runs["one by one"].append(asyncio.run(send_all(plain_port, args.n)))
            runs["pipelined"].append(asyncio.run(send_all(offering_port, args.n)))
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(
        f"{args.n:,} messages, {CONNECTIONS} connections, {args.repeat} runs each, "
        f"{args.rtt:g} ms round trip added, load {load}"
    )
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
