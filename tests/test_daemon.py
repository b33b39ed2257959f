"""`appreciate run` as a service: one cycle with --once, and the real process under a notify
socket the test owns (READY, WATCHDOG, STATUS, STOPPING), SIGHUP reloads and the SIGTERM drain."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import make_url

from scheduler.service.cycle import CycleReport
from scheduler.service.daemon import MAX_BACKOFF, retry_wait
from scheduler.service.last_cycle import save_cycle
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from scheduler.web.serve import bind
from tests.conftest import CONFIG_TEMPLATE, Workspace, run_cli
from tests.smtp_servers import Faulty, Recorder, free_port, running
from tests.test_delivery import add_due
from tests.test_detection import add_customer
from tests.test_unsubscribe_page import token_of

STARTERS = Path(__file__).parent.parent / "templates"
NOW = "2027-06-15T10:00:00+00:00"
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
WAIT = 60.0
"""Upper bound for anything the daemon is expected to do (never a measured duration)."""


def configure(
    workspace: Workspace,
    port: int,
    *,
    connections: int = 2,
    lease: str = "20s",
    retry_after: str = "5m",
    stop_within: str = "2s",
) -> None:
    """Templates, the test SMTP server, and quick timers for the service."""
    if not (workspace.folder / "templates").exists():
        shutil.copytree(STARTERS, workspace.folder / "templates")
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
        config.write(f'timeout_seconds = 30.0\nconnections = {connections}\nlease = "{lease}"\n')
        config.write(f'retry_after = "{retry_after}"\n')
        config.write('\n[schedule]\ndeliver_every = "1s"\ndetect_every = "1h"\n')
        config.write(f'stop_within = "{stop_within}"\n')


def add_due_now(engine: Engine, count: int, *, prefix: str = "C") -> list[int]:
    """`count` customers with a birthday note due an hour ago (by the wall clock: the service
    runs on it), and no birthday on record (so its detection adds nothing)."""
    due = datetime.now(UTC) - timedelta(hours=1)
    return [
        add_due(
            engine,
            f"{prefix}-{n}",
            due=due,
            email=f"{prefix.lower()}{n}@example.com",
            birth_month=None,
            birth_day=None,
        )
        for n in range(count)
    ]


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(touches.c.status, func.count()).group_by(touches.c.status)
        ).all()
    return dict(rows)


def wait_until(condition: Any, what: str, timeout: float = WAIT, state: Any = lambda: "") -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds, showing `state()`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {state()}")
        time.sleep(0.05)


# run --once ------------------------------------------------------------------------------------


def test_run_once_detects_and_sends_then_status_tells(migrated_workspace: Workspace) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        add_due(engine, "C-1", name="Ann Lee", email="ann@example.com")
    finally:
        engine.dispose()
    recorder = Recorder()
    with running(recorder) as port:
        configure(migrated_workspace, port)
        result = run_cli(
            "--config", migrated_workspace.path, "run", "--once", "--now", NOW, "--format", "json"
        )
    assert result.exit_code == 0, result.stderr
    cycle = json.loads(result.stdout)
    assert cycle["outcomes"] == {"sent": 1}
    assert [r.rcpt_tos for r in recorder.received] == [["ann@example.com"]]

    status = run_cli("--config", migrated_workspace.path, "status", "--format", "json")
    shown = json.loads(status.stdout)
    assert shown["last_cycle"]["outcomes"] == {"sent": 1}
    assert shown["queue"] == {"sent": 1}
    assert shown["paused"] is None
    assert shown["needs_attention"] == 0
    table = run_cli("--config", migrated_workspace.path, "status").stdout
    assert "Last cycle: 2027-06-15T10:00:00+00:00: 0 notes added; sent: 1 sent" in table


def test_run_with_a_bad_config_exits_with_its_errors(migrated_workspace: Workspace) -> None:
    with migrated_workspace.path.open("a", encoding="utf-8") as config:
        config.write('\n[schedule]\ndeliver_every = "soon"\n')
    result = run_cli("--config", migrated_workspace.path, "run", "--once")
    assert result.exit_code == 2
    assert "schedule.deliver_every" in result.stderr


DENTIST = (
    '{% extends "_layout.j2" %}\n{% block subject %}Happy birthday{% endblock %}\n'
    "{% block message %}\nHappy birthday! Dr {{ customer.attributes.dentist }} says hi.\n"
    "{% endblock %}\n"
)
NO_DENTIST = "birthday.j2:4: 'dict object' has no attribute 'dentist'"


def test_run_starts_with_broken_templates_and_fails_only_their_notes(
    migrated_workspace: Workspace,
) -> None:
    """A template that uses an import column some customers lack, and another with a syntax
    error: the cycle runs, every problem is logged loudly, only the notes that hit one fail
    (with file, line and message), and `status` says so."""
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        with_dentist = add_due(engine, "C-1", attributes={"dentist": "Lee"})
        without = [add_due(engine, f"C-{n}") for n in (2, 3)]
    finally:
        engine.dispose()
    recorder = Recorder()
    with running(recorder) as port:
        configure(migrated_workspace, port)
        folder = migrated_workspace.folder / "templates"
        (folder / "birthday.j2").write_text(DENTIST, encoding="utf-8")
        (folder / "check_in.j2").write_text(
            "{% block subject %}Hi {{ customer.name {% endblock %}", encoding="utf-8"
        )
        result = run_cli(
            "--config", migrated_workspace.path, "run", "--once", "--now", NOW, "--format", "json"
        )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outcomes"] == {"failed": 2, "sent": 1}
    assert [r.rcpt_tos for r in recorder.received] == [["c-1@example.com"]]
    log = result.stderr.splitlines()
    started = [
        line for line in log if "ERROR TEMPLATE ERROR at start: check_in.j2:1: error:" in line
    ]
    assert len(started) == 1
    warned = [line for line in log if "template warning at start: birthday.j2:4: warning:" in line]
    assert len(warned) == 1
    assert "2 customers have no attributes.dentist (C-2, C-3)" in warned[0]
    failing = [line for line in log if "TEMPLATE PROBLEM:" in line]
    assert len(failing) == 1  # one line per problem per delivery run, with how many notes
    assert f"ERROR TEMPLATE PROBLEM: {NO_DENTIST} (2 notes failed on it" in failing[0]

    engine = create_store_engine(migrated_workspace.database_url)
    try:
        for touch_id in without:
            with engine.connect() as connection:
                note = connection.execute(select(touches).where(touches.c.id == touch_id)).one()
            assert (note.status, note.reason) == ("failed", f"template problem: {NO_DENTIST}")
        with engine.connect() as connection:
            sent = connection.execute(select(touches).where(touches.c.id == with_dentist)).one()
        assert sent.status == "sent"
    finally:
        engine.dispose()

    shown = json.loads(
        run_cli("--config", migrated_workspace.path, "status", "--format", "json").stdout
    )
    assert shown["template_failures"] == [
        {"problem": NO_DENTIST, "notes": 2, "last_failed_at": "2027-06-15T10:00:00+00:00"}
    ]
    table = run_cli("--config", migrated_workspace.path, "status").stdout
    assert "TEMPLATE PROBLEMS: 2 notes failed on a template and are still failed:" in table
    assert "'dict object' has no attribute 'dentist'" in table


def test_status_counts_only_failures_on_a_template_by_the_reason_appreciate_wrote(
    migrated_workspace: Workspace,
) -> None:
    """A server's refusal that mentions a template is no template failure; nor is an old one."""
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        refused, old, recent = (add_due(engine, f"C-{n}") for n in range(3))
        reasons = {
            refused: ("the server refused it: 550 template problem: birthday.j2", NOW),
            old: ("template problem: old.j2:1: gone", "2027-06-01T10:00:00+00:00"),
            recent: ("template problem: birthday.j2:2: oops", NOW),
        }
        with engine.begin() as connection:
            for touch_id, (reason, at) in reasons.items():
                connection.execute(
                    touches.update()
                    .where(touches.c.id == touch_id)
                    .values(status="failed", reason=reason, updated_at=datetime.fromisoformat(at))
                )
        save_cycle(engine, CycleReport(datetime.fromisoformat(NOW)))
    finally:
        engine.dispose()
    shown = json.loads(
        run_cli("--config", migrated_workspace.path, "status", "--format", "json").stdout
    )
    assert shown["needs_attention"] == 3
    assert shown["template_failures"] == [
        {"problem": "birthday.j2:2: oops", "notes": 1, "last_failed_at": NOW}
    ]


# The service under a notify socket -------------------------------------------------------------


class NotifySocket:
    """The socket systemd would own: a thread reads what the service tells it as it comes (as
    systemd does: the kernel queues only a few datagrams), and `expect` goes through it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.messages: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                self.messages.put(self.socket.recv(4096).decode())
            except OSError:  # closed
                return

    def expect(self, wanted: str) -> str:
        """The next message containing `wanted` (others are kept in `seen`)."""
        while True:
            try:
                message = self.messages.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no {wanted} from the service; it said {self.seen}") from None
            self.seen.append(message)
            if wanted in message:
                return message

    def close(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.reader.join(timeout=WAIT)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


@dataclass
class Service:
    """A running `appreciate run`; its log goes to a file (a pipe nobody reads would fill up
    and block the service)."""

    process: subprocess.Popen[bytes]
    log: Path

    def send_signal(self, number: int) -> None:
        self.process.send_signal(number)


def start_service(
    workspace: Workspace, notify: NotifySocket | None, command: tuple[str, ...] = ("run",)
) -> Service:
    """`appreciate COMMAND` (the service by default) in a process of its own."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if notify is not None:
        env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000")
    log = workspace.folder / f"service-{len(list(workspace.folder.glob('service-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "--config", str(workspace.path), *command],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Service(process, log)


def stop(service: Service) -> tuple[int, str]:
    """SIGTERM, then the exit code and everything the service logged."""
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=WAIT)
    return code, service.log.read_text(encoding="utf-8")


def test_the_service_reports_to_systemd_sends_reloads_and_drains(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            add_due_now(engine, 3)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")
                notify.expect("WATCHDOG=1")
                status = notify.expect("STATUS=")
                while "sent" not in status:
                    status = notify.expect("STATUS=")
                assert "3 sent" in status
                assert statuses(engine) == {"sent": 3}

                good = migrated_workspace.path.read_text(encoding="utf-8")
                migrated_workspace.path.write_text(good + "\n[oops\n", encoding="utf-8")
                service.send_signal(signal.SIGHUP)
                notify.expect("RELOADING=1")
                notify.expect("READY=1")  # still running, on the old config
                notify.expect("WATCHDOG=1")

                # A database the new config cannot reach: the reload was left hanging
                # (RELOADING=1 and never READY=1) and an OperationalError escaped.
                unreachable = "postgresql://nobody@127.0.0.1:1/none"
                migrated_workspace.path.write_text(with_store(good, unreachable), "utf-8")
                service.send_signal(signal.SIGHUP)
                notify.expect("RELOADING=1")
                notify.expect("READY=1")

                migrated_workspace.path.write_text(good, encoding="utf-8")
                add_due_now(engine, 2, prefix="D")
                service.send_signal(signal.SIGHUP)
                notify.expect("RELOADING=1")
                notify.expect("READY=1")
                wait_until(lambda: statuses(engine) == {"sent": 5}, "the new notes to go")
            finally:
                code, stderr = stop(service)
            notify.expect("STOPPING=1")
    finally:
        engine.dispose()
    assert code == 0, stderr
    assert "reload refused, still running the previous config" in stderr
    assert f"{migrated_workspace.path}:" in stderr  # the bad config's errors name the file
    assert "previous config: the store could not be used: connection failed" in stderr
    assert "Traceback" not in stderr
    assert f"reloaded {migrated_workspace.path}" in stderr
    assert "stopped: 0 notes added, 5 sent" in stderr
    assert "<6>" in stderr  # priorities for journald
    assert len(recorder.received) == 5


def with_store(config: str, url: str) -> str:
    """The text of `config` with its [database] url replaced by `url`."""
    lines = [
        f'url = "{url}"' if line.startswith("url = ") else line for line in config.splitlines()
    ]
    return "\n".join(lines) + "\n"


def test_a_reload_waiting_for_a_store_that_does_not_answer_holds_nothing_up(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    """The new config's store accepts the connection and never answers (a PostgreSQL server
    that hangs): the reload used to wait for it on the event loop, so no watchdog ping and no
    send until the connection gave up (under systemd, the watchdog killed the service). Now
    the service pings and sends meanwhile, and refuses the reload once the store fails."""
    engine = create_store_engine(migrated_workspace.database_url)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never answers
    recorder = Recorder()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")
                good = migrated_workspace.path.read_text(encoding="utf-8")
                hanging = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
                migrated_workspace.path.write_text(with_store(good, hanging), "utf-8")
                service.send_signal(signal.SIGHUP)
                notify.expect("RELOADING=1")
                add_due_now(engine, 1)
                notify.expect("WATCHDOG=1")
                wait_until(lambda: statuses(engine) == {"sent": 1}, "a send during the reload")
                assert "reload" not in service.log.read_text(encoding="utf-8")  # under way
                silent.close()  # the connection waiting in its queue is reset
                notify.expect("READY=1")
            finally:
                silent.close()
                code, log = stop(service)
    finally:
        engine.dispose()
    assert code == 0, log
    assert "reload refused, still running the previous config: the store could not" in log
    assert "Traceback" not in log


class StoreHeldBack:
    """A loopback relay to the PostgreSQL store of `url` that holds the first connection made
    through it until `let_through` (as a store still starting at boot would); `url` is the
    store's URL through the relay."""

    def __init__(self, url: str) -> None:
        store = make_url(url)
        self.target = (store.host or "127.0.0.1", store.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = store.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        self.reached = threading.Event()
        self.released = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def let_through(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.reached.set()
            self.released.wait(WAIT)
            server = socket.create_connection(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_sighup_during_start_up_reloads_once_running(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    """SIGHUP (`systemctl reload`, a script's `kill -HUP`) while the service was still starting
    (here, waiting for its store to answer) killed it: SIGHUP's default action. Now the reload
    is done once the service runs. (PostgreSQL only: a store over the network is what a test
    can hold back; a password file can no longer be a pipe to wait on.)"""
    configure(migrated_workspace, free_port())
    store = StoreHeldBack(migrated_workspace.database_url)
    text = migrated_workspace.path.read_text(encoding="utf-8")
    assert migrated_workspace.database_url in text
    migrated_workspace.path.write_text(
        text.replace(migrated_workspace.database_url, store.url), "utf-8"
    )
    try:
        service = start_service(migrated_workspace, notify)
        try:
            assert store.reached.wait(WAIT), "the service never opened its store"
            service.send_signal(signal.SIGHUP)  # while it waits for the store
            store.let_through()
            notify.expect("READY=1")
            notify.expect("RELOADING=1")
            notify.expect("READY=1")
        finally:
            code, log = stop(service)
    finally:
        store.close()
    assert code == 0, log
    assert f"reloaded {migrated_workspace.path}" in log


def test_a_password_file_that_is_a_pipe_stops_the_start_at_once(
    migrated_workspace: Workspace,
) -> None:
    """`password_file` naming a named pipe nobody writes to kept the service starting for
    ever, with nothing in the log (and a reload never ended). Now the start stops at once,
    naming the key and the file."""
    password = migrated_workspace.folder / "smtp-password"
    os.mkfifo(password)
    configure(migrated_workspace, free_port())
    text = migrated_workspace.path.read_text(encoding="utf-8")
    login = 'security = "none"\nusername = "ada"\npassword_file = "smtp-password"\n'
    migrated_workspace.path.write_text(text.replace('security = "none"\n', login), "utf-8")
    service = start_service(migrated_workspace, None)
    try:
        code = service.process.wait(timeout=WAIT)
    finally:
        ended(service)
    log = service.log.read_text(encoding="utf-8")
    assert code == 2, log
    assert f"smtp.password_file: {password} is not a regular file (it is a named pipe)" in log
    assert "Traceback" not in log


def test_the_service_starts_and_reloads_with_broken_templates_and_says_so(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            folder = migrated_workspace.folder / "templates"
            (folder / "check_in.j2").write_text("{% block subject %}{{ x {% endblock %}", "utf-8")
            add_due_now(engine, 2)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")  # started, broken check_in.j2 and all
                wait_until(lambda: statuses(engine) == {"sent": 2}, "the birthday notes to go")
                (folder / "birthday.j2").write_text(DENTIST, encoding="utf-8")
                add_due_now(engine, 1, prefix="D")
                service.send_signal(signal.SIGHUP)
                notify.expect("RELOADING=1")
                notify.expect("READY=1")
                wait_until(
                    lambda: statuses(engine) == {"sent": 2, "failed": 1},
                    "the note the new template cannot write to fail",
                    state=lambda: statuses(engine),
                )
            finally:
                code, log = stop(service)
    finally:
        engine.dispose()
    assert code == 0, log
    # <3>: journald's priority for an error
    assert "<3>TEMPLATE ERROR at start: check_in.j2:1: error:" in log
    assert "reload refused" not in log
    assert f"reloaded {migrated_workspace.path}" in log
    assert "<3>TEMPLATE ERROR on reload: check_in.j2:1: error:" in log
    assert "<3>TEMPLATE ERROR on reload: birthday.j2:4: error: no customer in the store " in log
    assert f"<3>TEMPLATE PROBLEM: {NO_DENTIST} (1 note failed on it" in log


def test_sigterm_while_a_note_loops_stops_at_once_and_gives_the_notes_back(
    migrated_workspace: Workspace,
) -> None:
    """A template looping over a 45,000-character field, with a deadline far away: the stop
    does not wait for it (nor for the 30 s SMTP timeout), and no note stays claimed."""
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        with running(Recorder()) as port:
            configure(migrated_workspace, port, stop_within="30s")
            with migrated_workspace.path.open("a", encoding="utf-8") as config:
                config.write('\n[templates]\nrender_timeout = "1h"\n')
            (migrated_workspace.folder / "templates" / "birthday.j2").write_text(
                '{% extends "_layout.j2" %}{% block subject %}Hi{% endblock %}{% block message %}'
                "{% if customer.attributes.notes is defined %}"
                "{% for a in customer.attributes.notes %}{% for b in customer.attributes.notes %}"
                "{% endfor %}{% endfor %}{% endif %}Happy birthday!{% endblock %}",
                encoding="utf-8",
            )
            healthy = add_due_now(engine, 2)
            looping = add_due(
                engine,
                "L-1",
                due=datetime.now(UTC) - timedelta(hours=1),
                birth_month=None,
                birth_day=None,
                attributes={"notes": "x" * 45_000},
            )
            service = start_service(migrated_workspace, None)
            try:
                wait_until(
                    lambda: statuses(engine) == {"claimed": 3},
                    "the notes to be claimed and written",
                    state=lambda: statuses(engine),
                )
                service.send_signal(signal.SIGTERM)
                code = service.process.wait(timeout=WAIT)
            finally:
                if service.process.poll() is None:  # only when the test failed
                    service.process.kill()
                    service.process.wait(timeout=WAIT)
        log = service.log.read_text(encoding="utf-8")
        with engine.connect() as connection:
            held = connection.execute(
                select(touches.c.id, touches.c.status, touches.c.lease_owner)
            ).all()
    finally:
        engine.dispose()
    assert code == 0, log
    assert logged_between(log, "stopping:", "stopped:") < timedelta(seconds=10)
    assert sorted(held) == sorted((t, "pending", None) for t in [*healthy, looping])
    assert "sends still under way" not in log  # nothing had to be cut short


def logged_between(log: str, first: str, last: str) -> timedelta:
    """The time from the line containing `first` to the one containing `last`."""

    def when(text: str) -> datetime:
        line = next(line for line in log.splitlines() if text in line)
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)

    return when(last) - when(first)


@contextmanager
def mailbox_that_never_answers(workspace: Workspace, more: str = "") -> Iterator[socket.socket]:
    """The workspace set to poll an IMAP server that accepts (the kernel does) and never
    answers, with `more` [inbound] keys; its listening socket."""
    silent = socket.create_server(("127.0.0.1", 0))
    silent.settimeout(WAIT)
    (workspace.folder / "imap-password").write_text("pw\n", encoding="utf-8")
    configure(workspace, free_port())
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(
            f'\n[inbound]\nimap_host = "127.0.0.1"\nimap_port = {silent.getsockname()[1]}\n'
            'imap_security = "none"\nimap_user = "x"\nimap_password_file = "imap-password"\n'
            f"timeout_seconds = 3600.0\n{more}"
        )
    try:
        yield silent
    finally:
        silent.close()


def ended(service: Any) -> None:
    """Kill the service if a test left it running."""
    if service.process.poll() is None:
        service.process.kill()
        service.process.wait(timeout=WAIT)


def test_a_stop_does_not_wait_for_a_job_in_a_worker_thread(migrated_workspace: Workspace) -> None:
    """SIGTERM while a job ran in a worker thread (here, reading a mailbox whose server never
    answers; a long detection or value refresh is the same) logged `stopped`, then kept the
    process waiting until that job ended: minutes, and under systemd a SIGKILL after
    TimeoutStopSec. Now it exits once stopped (the store rolls back what the job had not
    committed; the next run does it again)."""
    with mailbox_that_never_answers(migrated_workspace) as silent:
        service = start_service(migrated_workspace, None)
        try:
            polling, _ = silent.accept()  # the poll is under way, waiting for a greeting
            code, log = stop(service)
            polling.close()
        finally:
            ended(service)
    assert code == 0, log
    assert "stopped: 0 notes added" in log


def test_a_job_still_running_at_its_next_time_logs_nothing_unformatted(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    """A job still under way at its next time (a mailbox poll waiting for its server, a long
    delivery) made APScheduler print `Execution of job ... skipped: maximum number of running
    instances reached` at every tick: raw lines, with no priority for journald and no time.
    Skipping is the design (`max_instances=1`): nothing is logged for it; the timer's other
    warnings are formatted like the service's own."""
    with mailbox_that_never_answers(migrated_workspace, 'poll_every = "1s"\n') as silent:
        service = start_service(migrated_workspace, notify)
        try:
            polling, _ = silent.accept()  # the poll hangs from here on
            for _ in range(4):  # a delivery a second: the poll's next times come and go
                notify.expect("STATUS=")
            code, log = stop(service)
            polling.close()
        finally:
            ended(service)
    assert code == 0, log
    assert "skipped" not in log
    assert all(line.startswith("<") for line in log.splitlines()), log


def test_sigterm_waits_for_a_send_under_way_within_its_bound(
    migrated_workspace: Workspace,
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    hanging = Faulty(step="data", action="hang")
    try:
        with running(hanging) as port:
            configure(migrated_workspace, port)
            [touch_id] = add_due_now(engine, 1)
            service = start_service(migrated_workspace, None)
            try:
                wait_until(lambda: statuses(engine) == {"sending": 1}, "the note to be handed over")
            finally:
                code, stderr = stop(service)
    finally:
        with engine.connect() as connection:
            note = connection.execute(select(touches).where(touches.c.id == touch_id)).one()
        engine.dispose()
    assert code == 0, stderr
    assert "sends still under way after 2 s: stopping them" in stderr
    # stopped within its bound, not after the server's 30 s timeout (generous for a busy machine)
    assert logged_between(stderr, "stopping:", "stopped:") < timedelta(seconds=15)
    assert note.status == "unknown"  # after the final ".": it may have gone, never resent
    assert note.lease_owner is None
    assert f"appreciate retry {touch_id}" in note.reason
    assert "0 notes released for the next run, 1 unknown" in stderr


def test_a_second_stop_signal_ends_the_sends_under_way_at_once(
    migrated_workspace: Workspace,
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        with running(Faulty(step="data", action="hang")) as port:
            configure(migrated_workspace, port, stop_within="10m")
            add_due_now(engine, 1)
            service = start_service(migrated_workspace, None)
            try:
                wait_until(lambda: statuses(engine) == {"sending": 1}, "the note to be handed over")
                service.send_signal(signal.SIGTERM)
                wait_until(lambda: "stopping:" in service.log.read_text(), "the stop to begin")
                service.send_signal(signal.SIGINT)  # Ctrl-C after the first stop: now
                code = service.process.wait(timeout=WAIT)
            finally:
                if service.process.poll() is None:  # only when the test failed
                    service.process.kill()
        settled = statuses(engine)
        stderr = service.log.read_text(encoding="utf-8")
    finally:
        engine.dispose()
    assert code == 0, stderr
    assert "asked again: stopping the sends under way now" in stderr
    assert logged_between(stderr, "stopping:", "stopped:") < timedelta(seconds=15)  # not 10 min
    assert settled == {"unknown": 1}


# Bad days ----------------------------------------------------------------------------------------


def notes(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(touches.c.status, touches.c.reason)).all())


def test_a_mail_server_that_is_down_is_waited_for(migrated_workspace: Workspace) -> None:
    port = free_port()  # nothing listens there yet
    configure(migrated_workspace, port, retry_after="1s")
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    try:
        add_due_now(engine, 2)
        service = start_service(migrated_workspace, None)
        try:
            wait_until(
                lambda: all("could not connect" in (n.reason or "") for n in notes(engine)),
                "a failed attempt",
                state=lambda: notes(engine),
            )
            assert service.process.poll() is None  # still running
            with running(recorder, port=port):
                wait_until(lambda: statuses(engine) == {"sent": 2}, "the notes to go")
        finally:
            code, log = stop(service)
    finally:
        engine.dispose()
    assert code == 0, log
    assert len(recorder.received) == 2


def test_a_locked_store_is_waited_for(tmp_path: Path) -> None:
    """The store cannot be written for a while (SQLite: another writer holds it longer than
    the busy timeout): the jobs fail, say so, and succeed once it is free; no exit."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = tmp_path / "appreciate.toml"
    config.write_text(CONFIG_TEMPLATE.format(url=url), encoding="utf-8")
    workspace = Workspace(config, url)
    engine = create_store_engine(url)
    recorder = Recorder()
    try:
        upgrade(engine)
        add_due_now(engine, 2)
        with running(recorder) as port:
            configure(workspace, port)
            blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            service = start_service(workspace, None)
            try:
                wait_until(
                    lambda: "failed (OperationalError" in service.log.read_text(encoding="utf-8"),
                    "a job to fail on the locked store",
                )
                assert service.process.poll() is None
                blocker.execute("ROLLBACK")
                wait_until(lambda: statuses(engine) == {"sent": 2}, "the notes to go")
            finally:
                blocker.close()
                code, log = stop(service)
    finally:
        engine.dispose()
    assert code == 0, log
    assert "database is locked" in log
    assert "works again" in log


def test_after_a_restart_the_notes_due_go_at_once(migrated_workspace: Workspace) -> None:
    """The first delivery runs when the service starts, not a whole `deliver_every` later (a
    restart used to leave the notes due waiting an hour here)."""
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            text = migrated_workspace.path.read_text(encoding="utf-8")
            migrated_workspace.path.write_text(
                text.replace('deliver_every = "1s"', 'deliver_every = "1h"'), encoding="utf-8"
            )
            add_due_now(engine, 2)  # detection adds nothing, so it does not start a delivery
            service = start_service(migrated_workspace, None)
            try:
                wait_until(lambda: statuses(engine) == {"sent": 2}, "the notes due to go")
            finally:
                code, log = stop(service)
    finally:
        engine.dispose()
    assert code == 0, log


def _serve_web(workspace: Workspace, port: int) -> None:
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(f'\n[web]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n')


def _one_click(url: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - http on loopback
        url, data=b"List-Unsubscribe=One-Click", method="POST"
    )
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=WAIT) as answer:  # noqa: S310 - http on loopback
        status: int = answer.status
    return status


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=WAIT):  # noqa: S310 - http on loopback
            return True
    except OSError:
        return False


def test_the_service_serves_the_unsubscribe_page_when_enabled(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    web_port = free_port()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            _serve_web(migrated_workspace, web_port)
            customer_id = add_customer(engine, "C-9", email="nine@example.com")
            token = token_of(engine, customer_id)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")
                url = f"http://127.0.0.1:{web_port}/u/{token}"
                wait_until(lambda: _answers(url), "the page to answer")
                assert _one_click(url) == 200
                with engine.connect() as connection:
                    opted_out = connection.execute(
                        select(customers.c.opted_out_at).where(customers.c.id == customer_id)
                    ).scalar_one()
                assert opted_out is not None
            finally:
                code, stderr = stop(service)
    finally:
        engine.dispose()
    assert code == 0, stderr
    assert f"serving the unsubscribe page on http://127.0.0.1:{web_port}" in stderr
    assert "customer C-9 opted out (one-click): 0 open notes suppressed" in stderr
    assert token not in stderr
    assert not _answers(url)  # stopped with the service


def test_appreciate_web_alone_logs_each_opt_out(migrated_workspace: Workspace) -> None:
    """`appreciate web` as a service of its own logged nothing but warnings: the owner's log
    never showed who opted out."""
    engine = create_store_engine(migrated_workspace.database_url)
    web_port = free_port()
    try:
        customer_id = add_customer(engine, "C-9", email="nine@example.com")
        token = token_of(engine, customer_id)
        web = start_service(migrated_workspace, None, ("web", "--port", str(web_port)))
        try:
            url = f"http://127.0.0.1:{web_port}/u/{token}"
            wait_until(lambda: _answers(url), "the page to answer")
            assert _one_click(url) == 200
        finally:
            code, stderr = stop(web)
    finally:
        engine.dispose()
    assert code in (0, -signal.SIGTERM), stderr  # uvicorn ends by the signal it caught
    assert "customer C-9 opted out (one-click): 0 open notes suppressed" in stderr
    assert token not in stderr


def test_a_web_port_already_taken_is_logged_and_the_service_runs_on(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    taken = bind("127.0.0.1", 0)
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            _serve_web(migrated_workspace, taken.getsockname()[1])
            add_due_now(engine, 2)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")
                wait_until(lambda: statuses(engine) == {"sent": 2}, "the notes to go")
            finally:
                code, stderr = stop(service)
    finally:
        taken.close()
        engine.dispose()
    assert code == 0, stderr
    assert "the unsubscribe page cannot listen on 127.0.0.1:" in stderr
    assert "running on without it" in stderr


def test_a_one_click_from_a_delivered_note_stops_that_customers_next_note(
    migrated_workspace: Workspace, notify: NotifySocket
) -> None:
    """End to end: the service delivers a note, the customer's mail app posts to the URL in its
    List-Unsubscribe header, and the next delivery sends that customer nothing."""
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    web_port = free_port()
    try:
        with running(recorder) as port:
            configure(migrated_workspace, port)
            _serve_web(migrated_workspace, web_port)
            with migrated_workspace.path.open("a", encoding="utf-8") as config:
                config.write('public_url = "https://thanks.example.com"\n')
            [first] = add_due_now(engine, 1)
            customer_id = _customer_of(engine, first)
            service = start_service(migrated_workspace, notify)
            try:
                notify.expect("READY=1")
                wait_until(lambda: statuses(engine) == {"sent": 1}, "the first note to go")
                [delivered] = recorder.received
                header = str(delivered.message["List-Unsubscribe"])
                one_click = str(delivered.message["List-Unsubscribe-Post"])
                assert one_click == "List-Unsubscribe=One-Click"
                link = header.split("<", 1)[1].split(">", 1)[0]
                assert link.startswith("https://thanks.example.com/u/")
                path = urllib.parse.urlsplit(link).path
                url = f"http://127.0.0.1:{web_port}{path}"
                wait_until(lambda: _answers(url), "the page to answer")
                assert _one_click(url) == 200
                later = _add_note(engine, customer_id, "birthday:2099")
                wait_until(
                    lambda: _status_of(engine, later) == "suppressed", "the next note to stop"
                )
            finally:
                code, stderr = stop(service)
    finally:
        engine.dispose()
    assert code == 0, stderr
    assert len(recorder.received) == 1  # nothing more went to that customer


def _customer_of(engine: Engine, touch_id: int) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(
            select(touches.c.customer_id).where(touches.c.id == touch_id)
        ).scalar_one()
    return found


def _add_note(engine: Engine, customer_id: int, key: str) -> int:
    with engine.begin() as connection:
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind="birthday",
                occasion_key=key,
                status="pending",
                due_at=datetime.now(UTC) - timedelta(minutes=1),
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


def _status_of(engine: Engine, touch_id: int) -> str:
    with engine.connect() as connection:
        found: str = connection.execute(
            select(touches.c.status).where(touches.c.id == touch_id)
        ).scalar_one()
    return found


def test_a_job_failing_for_hours_waits_at_most_five_minutes_between_tries() -> None:
    """After 45 failures in a row (a store down for about three hours) the doubled wait no
    longer fit a timedelta: the daemon's own error handling raised OverflowError."""
    waits = [retry_wait(failures) for failures in range(1, 2001)]
    assert waits[:3] == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert max(waits) == waits[-1] == MAX_BACKOFF == timedelta(minutes=5)
