"""`appreciate sink`: a local mail server that keeps every message as a file and sends none."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.common import err, out
from scheduler.clock import SystemClock

if TYPE_CHECKING:
    from scheduler.service.sink import ReceivedNote, SinkServer

LOOPBACK = "127.0.0.1"
"""`scheduler.service.sink.LOOPBACK`, named here so that `--help` loads no mail server."""
DEFAULT_PORT = 1025
DEFAULT_FOLDER = "appreciate-sink"
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def one_line(text: str) -> str:
    """`text` safe to print on one terminal line: no line breaks, no escape sequences."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def received_line(note: ReceivedNote, at: datetime) -> str:
    """What the sink prints for one message: time, from, to, subject, file."""
    recipients = ", ".join(one_line(address) for address in note.recipients)
    return (
        f"{at:%Y-%m-%d %H:%M:%S}  from <{one_line(note.mail_from)}>  to {recipients}  "
        f'"{one_line(note.subject)}"  {note.path}'
    )


def _print_received(note: ReceivedNote) -> None:
    out.print(received_line(note, SystemClock().now().astimezone()), markup=False)


def announce(server: SinkServer, folder: Path) -> None:
    """Where the sink listens, where messages go, and the config that sends to it."""
    err.print(
        f"Sink listening on {server.address}; every message is kept in {folder / 'new'} "
        "as an .eml file and nothing is relayed.\n"
        "To send your notes here, set in appreciate.toml:\n"
        "  [smtp]\n"
        f'  host = "{server.host}"\n'
        f"  port = {server.port}\n"
        '  security = "none"\n'
        '  username = ""\n'
        "Stop with Ctrl-C.",
        markup=False,
    )


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for `wait_for_stop_signal`, in this thread and those it starts.

    Blocked signals wait to be taken by `signal.sigwait` instead of interrupting whatever runs;
    one that arrives again during the shutdown is dropped rather than delivered afterwards.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        while pending := signal.sigpending() & STOP_SIGNALS:
            signal.sigwait(pending)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGINT (Ctrl-C) or SIGTERM arrives; call inside `stop_signals_held`."""
    return signal.Signals(signal.sigwait(STOP_SIGNALS))


def sink(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option("--host", help="Loopback address to listen on (127.0.0.1, ::1, localhost)."),
    ] = LOOPBACK,
    maildir: Annotated[
        Path | None,
        typer.Option(
            "--maildir",
            metavar="DIR",
            help=f"Maildir for the received messages. Default: ./{DEFAULT_FOLDER}.",
        ),
    ] = None,
) -> None:
    """Run a local mail server that keeps every message as a file and delivers none.

    Point a config at it (security "none") to see exactly what appreciate would send before
    using your real mail server. Each message is printed as it arrives and kept as an .eml file
    in the Maildir's new/ folder. Runs until Ctrl-C or SIGTERM.
    """
    from scheduler.service.sink import running_sink

    folder = (maildir or Path.cwd() / DEFAULT_FOLDER).absolute()
    with (
        stop_signals_held(),
        running_sink(folder, host=host, port=port, on_message=_print_received) as server,
    ):
        announce(server, folder)
        wait_for_stop_signal()
    count = server.sink.count
    err.print(
        f"Sink stopped: {count} message{'s' if count != 1 else ''} kept in {folder / 'new'}.",
        markup=False,
    )
