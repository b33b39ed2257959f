"""appreciate's Sender against a real Postfix (a private instance on a loopback port that
discards every message; see tests/postfix_server.py): the notes are sent, pipelined, since
Postfix offers PIPELINING, and one command at a time to an instance told not to offer it.
Skipped, saying why, where Postfix cannot be started (not installed, not root)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import Engine

from tests.postfix_server import Postfix, PostfixUnavailable, private_postfix
from tests.test_delivery import add_due, run, server, state
from tests.test_misbehaving_server import with_smtp

WITHOUT_PIPELINING = {"smtpd_discard_ehlo_keywords": "pipelining"}


@dataclass(frozen=True)
class Served:
    postfix: Postfix
    pipelining: bool
    """Whether it was left to offer PIPELINING (else told not to)."""


@pytest.fixture(scope="module", params=[True, False], ids=["pipelining", "without"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A private Postfix offering PIPELINING (as it does by default), or told not to."""
    pipelining: bool = request.param
    try:
        with private_postfix(settings={} if pipelining else WITHOUT_PIPELINING) as instance:
            yield Served(instance, pipelining)
    except PostfixUnavailable as error:
        pytest.skip(f"no Postfix to test against: {error}")


async def _extensions(port: int) -> dict[str, str]:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    await smtp.connect()
    await smtp.ehlo()
    extensions = dict(smtp.esmtp_extensions)
    await smtp.quit()
    return extensions


def test_postfix_offers_pipelining_unless_told_not_to(served: Served) -> None:
    offered = "pipelining" in asyncio.run(_extensions(served.postfix.port))
    assert offered is served.pipelining


def test_notes_are_sent_through_postfix(engine: Engine, served: Served) -> None:
    """Five notes on two connections (a non-ASCII address among them, with SMTPUTF8): each
    `sent` with Postfix's own reply, naming the queue file it became (five different ones)."""
    ids = [add_due(engine, f"C-{n}") for n in range(4)]
    ids.append(add_due(engine, "C-4", email="josé@example.com"))
    report = run(engine, server(served.postfix.port), config=with_smtp(connections=2))
    assert report.counts == {"sent": 5}
    queued = set()
    for touch_id in ids:
        note = state(engine, touch_id)
        assert note["status"] == "sent"
        found = re.fullmatch(r"250 2\.0\.0 Ok: queued as (\w+)", note["last_reply"])
        assert found, note["last_reply"]
        queued.add(found[1])
    assert len(queued) == len(ids)


class _Failed(Exception):
    """What the block raised."""


def _fail_inside_postfix() -> tuple[Path, int]:
    """Starts a private Postfix and fails inside its block; its folder and port."""
    seen: list[tuple[Path, int]] = []
    try:
        with private_postfix() as instance:
            seen.append((instance.folder, instance.port))
            assert (instance.folder / "queue" / "pid" / "master.pid").exists()
            raise _Failed
    except _Failed:
        (found,) = seen
        return found


def test_the_private_postfix_is_stopped_and_removed_even_when_the_block_fails() -> None:
    try:
        folder, port = _fail_inside_postfix()
    except PostfixUnavailable as error:
        pytest.skip(f"no Postfix to test against: {error}")
    assert not folder.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
