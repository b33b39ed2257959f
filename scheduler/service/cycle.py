"""One cycle of the work: notice the occasions, then write and send what is due.

`Service` holds what a cycle needs from the config (the store, the templates, the SMTP server),
built and checked at once so that a bad config, an unreachable store or an unreadable password
is reported before anything runs (the daemon's start, and its reload on SIGHUP). Broken
templates do not stop the service: they are checked too, and each problem is logged loudly at
start and reload (`log_template_findings`), but only the notes that hit one fail, each with its
file, line and message; every delivery run logs each problem its notes failed on once, with how
many (`log_template_problems`). Each cycle's result is kept in `app_state` (`last_cycle`) for
`appreciate status`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scheduler.clock import Clock
from scheduler.config.file import Config, load_config
from scheduler.delivery.deliver import Sender, SendReport, server_settings
from scheduler.delivery.smtp_client import ServerSettings
from scheduler.delivery.throttle import Throttle
from scheduler.detection.detect import detect
from scheduler.inbound.imap_poll import Mailbox, poll_mailbox
from scheduler.inbound.record import InboundRules
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.render import NoteRenderer
from scheduler.notes.template_check import Finding, check_templates
from scheduler.service.last_cycle import save_cycle
from scheduler.store.attributes import AttributeCensus
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.store.schema import open_store
from scheduler.vocabulary import OCCASION_KINDS

log = logging.getLogger("appreciate.run")


def instance_name() -> str:
    """Who holds a lease: this machine and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Service:
    """The config and what is built from it; `close()` when done."""

    config: Config
    engine: Engine
    renderer: NoteRenderer
    server: ServerSettings
    template_findings: list[Finding] = field(default_factory=list)
    """What `appreciate templates check` would report, found when the service was opened."""
    mailbox: Mailbox | None = None
    """Where what comes back is read from (`[inbound] imap_host`), if anywhere."""
    signer: DkimSigner | None = None
    """Signs every note (DKIM) when `[smtp]` asks for it, its key read once, at start."""
    spool: OptOutSpool | None = None
    """Opt-outs that wait on disk for the store (`[web] opt_out_spool`): every delivery run
    records them before it sends."""

    def close(self) -> None:
        self.engine.dispose()


def open_service(config_path: Path) -> Service:
    """Load and check everything a cycle needs: the config, the store (up to date), the SMTP
    password, the DKIM key (one that cannot sign stops the start). Raises ConfigError or
    StoreError with every problem; nothing is left open when it raises. The templates are
    checked against the store's customers too, but their problems are kept in
    `template_findings` (for `log_template_findings`), never raised."""
    config = load_config(config_path)
    server = server_settings(config)
    mailbox = Mailbox.of(config)
    signer = DkimSigner.configured(config)
    engine = open_store(config.database_url())
    try:
        with engine.connect() as connection:
            census = AttributeCensus.take(connection)
            findings = check_templates(config.templates_dir, config.settings, census)
    except BaseException:
        engine.dispose()
        raise
    renderer = NoteRenderer.configured(config.templates_dir, config.settings)
    spool = OptOutSpool.of(config)
    return Service(
        config, engine, renderer, server, findings, mailbox=mailbox, signer=signer, spool=spool
    )


def log_template_findings(service: Service, when: str) -> None:
    """Each template problem found `when` ("at start", "on reload"): errors as ERROR, warnings
    as WARNING, each with its file and line."""
    for finding in service.template_findings:
        if finding.level == "error":
            log.error(
                "TEMPLATE ERROR %s: %s; the notes it writes fail until it is fixed "
                "(`appreciate templates check`)",
                when,
                finding,
            )
        elif finding.level == "warning":
            log.warning("template warning %s: %s", when, finding)


def log_template_problems(problems: Mapping[str, int]) -> None:
    """One ERROR line per template problem a delivery run's notes failed on, with how many."""
    for problem, notes in sorted(problems.items()):
        log.error(
            "TEMPLATE PROBLEM: %s (%d %s failed on it; fix the template, then "
            "`appreciate retry ID`)",
            problem,
            notes,
            "note" if notes == 1 else "notes",
        )


@dataclass
class CycleReport:
    """What a cycle did: notes added by kind, delivery outcomes by status."""

    at: datetime
    added: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    paused: str | None = None
    throttled: Throttle | None = None
    came_back: Counter[str] = field(default_factory=Counter)
    """Messages read from the mailbox, by what was done (`[inbound] imap_host`), and
    `unreadable`: those the server gave no content for."""

    def line(self) -> str:
        """One line for the log and systemd's STATUS."""
        added = sum(self.added.values())
        outcomes = ", ".join(f"{n} {status}" for status, n in sorted(self.outcomes.items()))
        text = f"{self.at:%Y-%m-%d %H:%M:%S} UTC: {added} notes added; sent: {outcomes or 'none'}"
        if self.came_back:
            back = ", ".join(f"{n} {kind}" for kind, n in sorted(self.came_back.items()))
            text += f"; came back: {back}"
        if self.throttled:
            text += f"; SENDING SLOWED DOWN: {self.throttled.line()}"
        return f"{text}; SENDING PAUSED: {self.paused}" if self.paused else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "added": dict(self.added),
            "outcomes": dict(self.outcomes),
            "paused": self.paused,
            "throttled": self.throttled.as_dict() if self.throttled else None,
            "came_back": dict(self.came_back),
        }


async def detect_once(service: Service, now: datetime) -> Counter[str]:
    """Detection at `now` (in a worker thread: the event loop stays free); notes added by kind."""
    settings = service.config.settings
    report = await asyncio.to_thread(detect, service.engine, settings, now)
    return Counter(
        {
            kind: report.count(kind, "pending")
            for kind in OCCASION_KINDS
            if report.count(kind, "pending")
        }
    )


async def read_mailbox(service: Service, clock: Clock) -> Counter[str]:
    """What came back, read from the mailbox (in a worker thread), by what was done, with
    `unreadable` for messages the server gave no content for; a poll that ended early is
    logged with why (what it did not read is read next time)."""
    if service.mailbox is None:
        return Counter()
    rules = InboundRules.of(service.config.settings)
    polled = await asyncio.to_thread(poll_mailbox, service.engine, service.mailbox, rules, clock)
    if polled.read or polled.unreadable or polled.problem:
        log.log(logging.WARNING if polled.problem else logging.INFO, "%s", polled.line())
    return polled.came_back()


def new_sender(service: Service, clock: Clock, owner: str) -> Sender:
    return Sender(
        service.engine,
        service.config.settings,
        service.server,
        service.renderer,
        clock,
        owner=owner,
        signer=service.signer,
        spool=service.spool,
    )


async def run_cycle(
    service: Service,
    clock: Clock,
    owner: str,
    watch: Callable[[Sender], Sender] | None = None,
) -> CycleReport:
    """Read what came back (when there is a mailbox), detect, then send everything due (most
    valuable first within the day's budget); `watch` sees the sender before it starts (to
    stop it on a signal)."""
    report = CycleReport(clock.now())
    report.came_back = await read_mailbox(service, clock)
    report.added = await detect_once(service, clock.now())
    sender = new_sender(service, clock, owner)
    if watch is not None:
        watch(sender)
    sent = await sender.run()
    log_template_problems(sender.template_problems)
    add_outcomes(report, sent)
    save_cycle(service.engine, report)
    return report


def add_outcomes(report: CycleReport, sent: SendReport) -> None:
    report.outcomes.update(sent.counts)
    report.paused = sent.paused
    report.throttled = sent.throttled
