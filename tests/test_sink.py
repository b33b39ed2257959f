"""The local SMTP sink: real messages over real SMTP into a real Maildir, and `appreciate sink`
run as a process and stopped by a signal, as an owner runs it."""

from __future__ import annotations

import logging
import mailbox
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import scheduler.service.sink
from scheduler.cli.common import AppreciateGroup
from scheduler.cli.sink import sink
from scheduler.errors import AppreciateError
from scheduler.service.sink import (
    NO_SUBJECT,
    UNREADABLE,
    ReceivedNote,
    SinkAddressRefused,
    SinkFolderUnusable,
    SinkServer,
    SinkUnavailable,
    running_sink,
)
from scheduler.store.db import create_store_engine
from tests.conftest import Workspace, run_cli
from tests.test_delivery import add_due

REPO = Path(__file__).parent.parent
STARTERS = REPO / "templates"
EVERYWHERE = "0.0.0.0"  # noqa: S104 - the address a sink refuses unless told otherwise
WAIT = 20.0  # seconds a subprocess gets to say something; only reached when something is wrong

# `sink` is not registered in `appreciate` here: a minimal app with the same error handling.
SINK_APP = """
import typer
from scheduler.cli.common import AppreciateGroup
from scheduler.cli.sink import sink

app = typer.Typer(cls=AppreciateGroup, add_completion=False, pretty_exceptions_enable=False)
app.callback()(lambda: None)
app.command("sink")(sink)
app(prog_name="appreciate")
"""


def sink_app() -> typer.Typer:
    app = typer.Typer(cls=AppreciateGroup, add_completion=False, pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    app.command("sink")(sink)
    return app


def note(subject: str, to: str, body: str = "Thank you!") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def send(server: SinkServer, message: EmailMessage) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)  # adds SMTPUTF8 by itself for a non-ASCII address


def stored(folder: Path) -> list[Path]:
    return sorted((folder / "new").iterdir())


@pytest.fixture
def received() -> list[ReceivedNote]:
    return []


@pytest.fixture
def server(tmp_path: Path, received: list[ReceivedNote]) -> Iterator[SinkServer]:
    with running_sink(tmp_path / "box", on_message=received.append) as running:
        yield running


def test_keeps_each_message_as_an_eml_file_and_reports_it(
    server: SinkServer, received: list[ReceivedNote], tmp_path: Path
) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
    send(server, note("Thank you for your order", "bob@example.com"))
    send(server, note("Merci beaucoup, Zoë ☕", "Zoë <zoë@example.com>", body="À bientôt"))

    files = stored(tmp_path / "box")
    assert len(files) == 2
    assert all(path.suffix == ".eml" for path in files)
    assert server.sink.count == 2
    assert [(r.mail_from, r.recipients, r.subject) for r in received] == [
        ("ada@example.com", ("bob@example.com",), "Thank you for your order"),
        ("ada@example.com", ("zoë@example.com",), "Merci beaucoup, Zoë ☕"),
    ]
    assert {r.path for r in received} == set(files)

    utf8 = message_from_bytes(received[1].path.read_bytes(), policy=policy.default)
    assert isinstance(utf8, EmailMessage)
    assert utf8["To"] == "Zoë <zoë@example.com>"
    assert "zoë@example.com".encode() in received[1].path.read_bytes()  # raw UTF-8 (RFC 6532)
    body = utf8.get_body()
    assert body is not None
    assert body.get_content().strip() == "À bientôt"
    # Still a Maildir any mail program (or the standard library) reads.
    box = mailbox.Maildir(tmp_path / "box")
    assert sorted(box.keys()) == [path.name for path in files]
    assert [box.get_bytes(path.name) for path in files] == [path.read_bytes() for path in files]


def test_keeps_a_malformed_message_byte_for_byte(
    server: SinkServer, received: list[ReceivedNote]
) -> None:
    garbage = b"\xff\xfe not a header\r\n\x00\x01 binary \xc3\r\n"
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail("x@example.com", ["y@example.com"], garbage)
    assert received[0].path.read_bytes() == garbage
    assert received[0].subject == NO_SUBJECT


def test_a_subject_that_cannot_be_read_does_not_lose_the_message(
    server: SinkServer, received: list[ReceivedNote], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes, **_: object) -> EmailMessage:
        raise ValueError("no parser for this")

    monkeypatch.setattr(scheduler.service.sink, "message_from_bytes", broken)
    send(server, note("Hello", "bob@example.com"))
    assert received[0].subject == UNREADABLE
    assert b"Subject: Hello" in received[0].path.read_bytes()


def test_a_failing_callback_is_logged_and_the_message_still_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fails(_: ReceivedNote) -> None:
        raise RuntimeError("the display broke")

    with running_sink(tmp_path / "box", on_message=fails) as running:
        send(running, note("Hello", "bob@example.com"))
        assert running.sink.count == 1
    assert len(stored(tmp_path / "box")) == 1
    assert "on_message callback failed" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR


def test_a_message_that_cannot_be_stored_is_refused_for_now(
    server: SinkServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(tmp_path / "box" / "tmp")  # where the Maildir writes before delivering
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, note("Hello", "bob@example.com"))
    assert caught.value.smtp_code == 451
    assert server.sink.count == 0
    assert "could not store a message" in caplog.text


@pytest.mark.parametrize("host", [EVERYWHERE, "192.0.2.10", ""])
def test_refuses_an_address_that_is_not_loopback(tmp_path: Path, host: str) -> None:
    with (
        pytest.raises(SinkAddressRefused, match="not a loopback address") as caught,
        running_sink(tmp_path / "box", host=host),
    ):
        pass  # pragma: no cover - never reached
    assert isinstance(caught.value, ValueError)


def test_listens_anywhere_only_when_allowed(tmp_path: Path) -> None:
    with running_sink(tmp_path / "box", host=EVERYWHERE, allow_remote=True) as running:
        assert running.host == EVERYWHERE
        with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
            client.sendmail("x@example.com", ["y@example.com"], b"Subject: hi\r\n\r\nhi\r\n")
        assert running.sink.count == 1


def test_localhost_is_loopback(tmp_path: Path) -> None:
    with running_sink(tmp_path / "box", host="localhost") as running:
        assert running.host in {"127.0.0.1", "::1"}


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SinkUnavailable) as caught, running_sink(tmp_path / "box", port=port):
            pass  # pragma: no cover - never reached
    assert isinstance(caught.value, AppreciateError)
    assert str(caught.value) == (
        f"the sink cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another sink or mail server?); pick another"
    )
    assert not (tmp_path / "box").exists()  # nothing is created for a sink that cannot run


def test_the_port_is_free_again_once_stopped(tmp_path: Path) -> None:
    with running_sink(tmp_path / "box") as first:
        port = first.port
    with running_sink(tmp_path / "box", port=port) as second:
        send(second, note("Again", "bob@example.com"))
    assert len(stored(tmp_path / "box")) == 1


def test_a_folder_of_other_files_is_not_taken_for_a_maildir(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SinkFolderUnusable, match="not a Maildir"):
        scheduler.service.sink.Sink(tmp_path)
    with pytest.raises(SinkFolderUnusable, match="is a file"):
        scheduler.service.sink.Sink(tmp_path / "notes.txt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_what_appreciate_send_delivers_lands_in_the_sink(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    workspace = migrated_workspace
    shutil.copytree(STARTERS, workspace.folder / "templates")
    engine = create_store_engine(workspace.database_url)
    try:
        add_due(engine, "C-1", name="Ann Lee", email="ann@example.com")
        add_due(engine, "C-2", name="Zoë Brun", email="zoë@example.com")
    finally:
        engine.dispose()
    received: list[ReceivedNote] = []
    with running_sink(tmp_path / "sink", on_message=received.append) as running:
        with workspace.path.open("a", encoding="utf-8") as config:
            config.write(
                f'\n[smtp]\nhost = "{running.host}"\nport = {running.port}\nsecurity = "none"\n'
            )
        result = run_cli("--config", workspace.path, "send", "--now", "2027-06-15T10:00:00Z")
    assert result.exit_code == 0, result.stderr
    assert sorted(r.recipients for r in received) == [("ann@example.com",), ("zoë@example.com",)]
    assert all(r.subject and r.subject != UNREADABLE for r in received)
    assert len(stored(tmp_path / "sink")) == 2


# The command, as an owner runs it.


def test_the_command_reports_a_port_in_use_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            sink_app(), ["sink", "--port", str(port), "--maildir", str(tmp_path / "box")]
        )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the sink cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another sink or mail server?); pick another\n"
    )


def test_the_command_refuses_a_public_address(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        sink_app(), ["sink", "--host", EVERYWHERE, "--maildir", str(tmp_path / "box")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith('error: the sink will not listen on "0.0.0.0": it is not a')
    assert "Traceback" not in result.output


class Output:
    """A subprocess's output stream, read as it comes, never waiting past a deadline."""

    def __init__(self, stream: object) -> None:
        self.fd = stream.fileno()  # type: ignore[attr-defined]
        self.text = ""

    def until(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.text)) is None:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"no {pattern!r} within {timeout}s; so far:\n{self.text}")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise AssertionError(f"the stream ended without {pattern!r}:\n{self.text}")
            self.text += chunk.decode()
        return found

    def rest(self) -> str:
        while chunk := os.read(self.fd, 65536):
            self.text += chunk.decode()
        return self.text


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_command_keeps_mail_until_stopped_by_a_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SINK_APP, "sink", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"},
    )
    try:
        stderr, stdout = Output(process.stderr), Output(process.stdout)
        port = int(stderr.until(r"Sink listening on 127\.0\.0\.1:(\d+);").group(1))
        stderr.until(r"Stop with Ctrl-C\.")
        folder = tmp_path / "appreciate-sink"
        assert f"kept in {folder / 'new'} as an .eml file" in stderr.text
        assert f'  [smtp]\n  host = "127.0.0.1"\n  port = {port}\n  security = "none"\n' in (
            stderr.text
        )

        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(note("Merci, Zoë \x1b[31mred", "zoë@example.com"))
        line = stdout.until(r"[^\n]*\n").group(0)
        (path,) = stored(folder)
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  from <ada@example\.com>  to zoë@example\.com  "
            rf'"Merci, Zoë \[31mred"  {re.escape(str(path))}\n',
            line,
        )

        process.send_signal(stop)
        assert process.wait(timeout=WAIT) == 0
        assert stderr.rest().endswith(f"Sink stopped: 1 message kept in {folder / 'new'}.\n")
        assert "Traceback" not in stderr.text
        assert stdout.rest() == line
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()
