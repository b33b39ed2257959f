"""systemd notifications, received on a real unix datagram socket the test binds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.service.systemd_notify import Notifier, keep_alive

TIMEOUT = 5.0


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd, and the NOTIFY_SOCKET that names it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(TIMEOUT)
        yield server, str(path)


def received(server: socket.socket) -> str:
    return server.recv(4096).decode()


def notifier_for(address: str, **env: str) -> Notifier:
    return Notifier.from_environ({"NOTIFY_SOCKET": address, **env})


def test_each_state_is_sent_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    with notifier_for(address) as notifier:
        assert notifier.enabled
        notifier.ready()
        assert received(server) == "READY=1"
        notifier.status("Sending 3 notes")
        assert received(server) == "STATUS=Sending 3 notes"
        notifier.watchdog()
        assert received(server) == "WATCHDOG=1"
        notifier.stopping()
        assert received(server) == "STOPPING=1"


def test_a_status_stays_on_one_line(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    with notifier_for(address) as notifier:
        notifier.status("first line\nsecond line\r\nthird\0\n")
        assert received(server) == "STATUS=first line second line third"


def test_reloading_carries_the_monotonic_time(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    with notifier_for(address) as notifier:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = received(server).split("\n")
    assert first == "RELOADING=1"
    name, value = second.split("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.skipif(sys.platform != "linux", reason="abstract unix sockets exist only on Linux")
def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"appreciate-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(TIMEOUT)
        with notifier_for(f"@{name}") as notifier:
            notifier.ready()
        assert received(server) == "READY=1"


def test_one_socket_is_kept_and_can_be_closed(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    notifier = notifier_for(address)
    notifier.ready()
    notifier.watchdog()
    assert [received(server), received(server)] == ["READY=1", "WATCHDOG=1"]
    notifier.close()
    notifier.close()
    notifier.stopping()
    assert received(server) == "STOPPING=1"
    notifier.close()


def test_the_watchdog_interval_is_half_of_watchdog_usec() -> None:
    address = "/run/systemd/notify"
    assert notifier_for(address, WATCHDOG_USEC="2000000").watchdog_interval == 1.0
    ours = notifier_for(address, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid()))
    assert ours.watchdog_interval == 1.0
    theirs = notifier_for(address, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert theirs.watchdog_interval is None
    assert notifier_for(address).watchdog_interval is None


@pytest.mark.parametrize("value", ["", "0", "-5", "soon"])
def test_an_unusable_watchdog_usec_means_no_watchdog(value: str) -> None:
    assert notifier_for("/run/systemd/notify", WATCHDOG_USEC=value).watchdog_interval is None


def test_without_notify_socket_nothing_is_sent(listener: tuple[socket.socket, str]) -> None:
    server, _ = listener
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready()
    notifier.status("hello")
    notifier.reloading()
    notifier.watchdog()
    notifier.stopping()
    notifier.close()
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(4096)


@pytest.mark.parametrize("address", ["", "relative/notify.sock", "@"])
def test_an_address_we_do_not_speak_turns_notifications_off(address: str) -> None:
    notifier = notifier_for(address)
    assert not notifier.enabled
    notifier.ready()


def test_a_missing_socket_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "gone.sock"
    with (
        caplog.at_level(logging.DEBUG, logger="appreciate.systemd"),
        notifier_for(str(missing)) as notifier,
    ):
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gone.sock" in warnings[0].getMessage()
    assert sum(record.levelno == logging.DEBUG for record in caplog.records) == 2


async def test_keep_alive_pings_until_stopped(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    server.setblocking(False)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with notifier_for(address, WATCHDOG_USEC="20000") as notifier:
        assert notifier.watchdog_interval == 0.01
        task = asyncio.create_task(keep_alive(notifier, stop))
        pings = [await asyncio.wait_for(loop.sock_recv(server, 4096), TIMEOUT) for _ in range(2)]
        assert pings == [b"WATCHDOG=1", b"WATCHDOG=1"]
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)
    leftover: list[bytes] = []
    with contextlib.suppress(BlockingIOError):
        while True:
            leftover.append(server.recv(4096))
    assert set(leftover) <= {b"WATCHDOG=1"}


async def test_keep_alive_returns_at_once_without_a_watchdog(
    listener: tuple[socket.socket, str],
) -> None:
    server, address = listener
    with notifier_for(address) as notifier:
        await asyncio.wait_for(keep_alive(notifier, asyncio.Event()), TIMEOUT)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(4096)
