"""One delivery run: every due note claimed, written, sent and recorded, until none is due.

A run, in order:
1. If sending is paused, nothing is sent (the report says why).
2. Expired leases are reaped, and the day's budget is applied (most valuable first).
3. Batches of due notes are claimed; each is checked again (an opt-out since it was recorded
   suppresses it, a note past its lateness expires), rendered from the owner's templates, built
   into a message (the Message-ID made once and kept, so a retry reuses it) and saved.
4. The messages go out over `[smtp] connections` reused connections, at most
   `max_per_minute` a minute in all. Outcomes (see `scheduler.smtp_client`) are recorded by
   batch; a temporary failure waits `retry_after`, doubling with each attempt (+-20% jitter),
   until `max_attempts`, then fails.
5. A refused login or a missing STARTTLS pauses sending for every instance: the notes not yet
   sent go back to the queue untouched, and the report says why, loudly.

Writing the notes (3.) runs in a worker thread, so the event loop keeps serving signals and the
watchdog meanwhile. A template error fails only its own note, with the reason
`template problem: FILE:LINE: MESSAGE` (`scheduler.template_failures`); a note whose template
takes longer than `[templates] render_timeout` is such a failure too. A stop (`Sender.stop`)
abandons a note being written at once: it and the notes not yet written go back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from scheduler.claims import (
    ClaimedTouch,
    Result,
    claim,
    mark_sending,
    pause,
    paused_reason,
    reap,
    record_results,
    save_prepared,
)
from scheduler.clock import Clock
from scheduler.config import Config
from scheduler.daily_budget import apply_budget
from scheduler.errors import AppreciateError
from scheduler.message import BuiltMessage
from scheduler.note_context import TouchRef, build_contexts
from scheduler.note_message import note_message
from scheduler.outbox import Contact, suppression_reason
from scheduler.render import NoteRenderer, RenderStopped, TemplateProblem
from scheduler.settings import Settings
from scheduler.smtp_client import Outcome, ServerSettings, SmtpConnection
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from scheduler.template_failures import failure_reason
from scheduler.zones import ZoneBook

log = logging.getLogger("appreciate.send")
customers = metadata.tables["customers"]
BATCH = 200
"""Notes claimed, written and saved at a time."""
JITTER = 0.2
RESULTS_EVERY = 8
"""Outcomes are written in groups of this many (see `Sender._worker`)."""


@dataclass
class SendReport:
    """What a run did: outcomes by status, and why sending is paused (if it is)."""

    counts: Counter[str] = field(default_factory=Counter)
    paused: str | None = None
    requeued: int = 0
    """Notes whose sender had stopped, taken up again."""
    lost_leases: int = 0
    """Outcomes not written because another sender had taken the note over."""


def server_settings(config: Config) -> ServerSettings:
    """[smtp] with the password read from its environment variable or file (only when a
    username is set) and the CA file resolved against the config's folder."""
    smtp = config.settings.smtp
    return ServerSettings(
        host=smtp.host,
        port=smtp.effective_port,
        security=smtp.security,
        username=smtp.username,
        password=config.smtp_password() if smtp.username else None,
        timeout=smtp.timeout_seconds,
        ca_file=str(config.base_dir / smtp.ca_file) if smtp.ca_file else None,
    )


class RateLimiter:
    """At most `per_minute` sends a minute across every connection (0: no limit); spaced
    evenly, by the event loop's monotonic clock."""

    def __init__(self, per_minute: int) -> None:
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


@dataclass
class _Prepared:
    touch: ClaimedTouch
    message: BuiltMessage


class Sender:
    """Delivers due notes for one owner (an instance's name), with `clock` for every moment it
    records."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        server: ServerSettings,
        renderer: NoteRenderer,
        clock: Clock,
        *,
        owner: str,
        rng: random.Random | None = None,
        only: Sequence[int] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.server = server
        self.renderer = renderer
        self.clock = clock
        self.owner = owner
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.only = only
        """Send these notes alone (a person's retry), outside the daily budget; None: all due."""
        self.limiter = RateLimiter(settings.smtp.max_per_minute)
        self.report = SendReport()
        self._stop: str | None = None
        self._done: list[Result] = []
        """Outcomes not yet written (see `_worker`)."""
        self._what: dict[int, str] = {}
        """touch id -> "kind customer ID" (the business's own id), for the log."""
        self._stopping = threading.Event()
        """Set by `stop`: a note being written (in the worker thread) is abandoned at once."""
        self.template_problems: Counter[str] = Counter()
        """Notes failed in this run, by template problem (`FILE:LINE: MESSAGE`)."""

    def stop(self, reason: str) -> None:
        """Claim nothing more, write no more notes (one being written is abandoned at once) and
        start no new send; the sends under way finish, and the notes not yet sent go back to the
        queue (see `claims.release` for a stop that cannot wait)."""
        if self._stop is None:
            self._stop = reason
        self._stopping.set()

    async def run(self) -> SendReport:
        """Send everything due now (see the module's steps)."""
        with write_transaction(self.engine) as connection:
            self.report.paused = paused_reason(connection)
            if self.report.paused is not None:
                return self.report
            now = self.clock.now()
            requeued, unknown = reap(connection, now)
            self.report.requeued += requeued
            if unknown:
                self.report.counts["unknown"] += unknown
            if self.only is None:
                apply_budget(connection, self.settings, now)
        pool = [SmtpConnection(self.server) for _ in range(self.settings.smtp.connections)]
        try:
            while self._stop is None:
                with write_transaction(self.engine) as connection:
                    now = self.clock.now()
                    claimed = claim(
                        connection, self.owner, now, self.settings.smtp.lease, BATCH, self.only
                    )
                if not claimed:
                    break
                ready = await asyncio.to_thread(self._prepare, claimed)
                await self._deliver(ready, pool)
        finally:
            await asyncio.gather(*(connection.close() for connection in pool))
        return self.report

    # Writing the notes ------------------------------------------------------------------

    def _prepare(self, claimed: Sequence[ClaimedTouch]) -> list[_Prepared]:
        """Render and build each claimed note; notes that cannot go are settled at once, and
        once a stop is asked for, the notes not yet written go back to the queue. Runs in a
        worker thread (see the module's docstring)."""
        now = self.clock.now()
        with write_transaction(self.engine) as connection:  # unsubscribe tokens are written
            contacts, own_ids = self._contacts(connection, [t.customer_id for t in claimed])
            refs = [
                TouchRef(t.id, t.customer_id, t.kind, t.occasion_key, t.due_at) for t in claimed
            ]
            contexts = build_contexts(connection, refs, self.settings, now=now)
        self._what = {
            t.id: f"{t.kind} customer {own_ids.get(t.customer_id, f'#{t.customer_id} (gone)')}"
            for t in claimed
        }
        ready: list[_Prepared] = []
        settled: list[Result] = []
        saved = []
        for position, touch in enumerate(claimed):
            if self._stopping.is_set():
                settled += self._given_back(claimed[position:])
                break
            if touch.customer_id not in contacts or touch.id not in contexts:  # deleted since
                settled.append(Result(touch.id, "failed", "the customer is gone", attempted=False))
                continue
            problem = suppression_reason(contacts[touch.customer_id])
            if problem is not None:
                settled.append(Result(touch.id, "suppressed", problem, attempted=False))
                continue
            if touch.expires_at is not None and now > touch.expires_at:
                reason = (
                    f"too late to send: it could go until {touch.expires_at:%Y-%m-%d %H:%M} UTC"
                )
                settled.append(Result(touch.id, "expired", reason, attempted=False))
                continue
            try:
                message, row = self._write(touch, contexts[touch.id], now)
            except RenderStopped:
                settled += self._given_back(claimed[position:])
                break
            except TemplateProblem as broken:
                self.template_problems[str(broken)] += 1
                reason = failure_reason(broken)
                settled.append(Result(touch.id, "failed", reason, attempted=False))
                continue
            except AppreciateError as error:
                settled.append(Result(touch.id, "failed", str(error), attempted=False))
                continue
            saved.append(row)
            ready.append(_Prepared(touch, message))
        with write_transaction(self.engine) as connection:
            save_prepared(connection, self.owner, saved, now)
        self._record(settled)
        return ready

    def _given_back(self, touches: Sequence[ClaimedTouch]) -> list[Result]:
        """The notes a stop left unwritten, back to the queue (not an attempt)."""
        reason = f"not sent: {self._stop or 'appreciate is stopping'}"
        return [Result(touch.id, "pending", reason, attempted=False) for touch in touches]

    def _write(
        self, touch: ClaimedTouch, context: dict[str, Any], now: datetime
    ) -> tuple[BuiltMessage, dict[str, object]]:
        """The note's message and the row that saves it (subject, bodies, headers)."""
        ltv = context.get("ltv")
        tier = ltv.get("tier") if isinstance(ltv, dict) else None
        note = self.renderer.render(
            touch.kind, tier if isinstance(tier, str) else None, context, stop=self._stopping
        )
        message = note_message(
            self.settings.business, note, context, message_id=touch.message_id, date=now
        )
        row = {
            "touch_id": touch.id,
            "new_message_id": message.message_id,
            "new_subject": note.subject,
            "new_text": note.text,
            "new_html": note.html,
            "new_headers": message.headers,
        }
        return message, row

    def _contacts(
        self, connection: Connection, ids: Sequence[int]
    ) -> tuple[dict[int, Contact], dict[int, str]]:
        """Each customer's contact, and their own id (external_id: what the log names them by,
        never our row id)."""
        zones = ZoneBook(ZoneInfo(self.settings.business.timezone))
        rows = connection.execute(
            select(
                customers.c.id,
                customers.c.external_id,
                customers.c.email,
                customers.c.opted_out_at,
                customers.c.timezone,
            ).where(customers.c.id.in_(sorted(set(ids))))
        ).all()
        contacts = {
            row.id: Contact(row.email, row.opted_out_at, zones(row.timezone)) for row in rows
        }
        return contacts, {row.id: row.external_id for row in rows}

    # Sending ----------------------------------------------------------------------------

    async def _deliver(self, ready: list[_Prepared], pool: list[SmtpConnection]) -> None:
        queue: asyncio.Queue[_Prepared] = asyncio.Queue()
        for item in ready:
            queue.put_nowait(item)
        with self.engine.connect() as plain:
            # One connection for every worker: their transactions never span an await.
            marks = plain
            if self.engine.dialect.name == "sqlite":
                marks = plain.execution_options(sqlite_begin="IMMEDIATE")
            await asyncio.gather(*(self._worker(queue, smtp, marks) for smtp in pool))
        unsent = []
        while not queue.empty():
            item = queue.get_nowait()
            unsent.append(
                Result(item.touch.id, "pending", f"not sent: {self._stop}", attempted=False)
            )
        self._record(self._take_done() + unsent)

    async def _worker(
        self, queue: asyncio.Queue[_Prepared], smtp: SmtpConnection, marks: Connection
    ) -> None:
        """Send notes from `queue` over `smtp` until it is empty or sending stops. Each note is
        marked `sending` in a transaction of its own, which also writes the outcomes gathered
        so far once there are RESULTS_EVERY of them: a sender killed mid-run leaves as
        `unknown` only the notes it was handing over and fewer than RESULTS_EVERY sent ones
        whose outcome it had not written yet."""
        while self._stop is None and not queue.empty():
            item = queue.get_nowait()
            await self.limiter.wait()
            if self._stop is not None:
                queue.put_nowait(item)
                return
            done = self._take_done() if len(self._done) >= RESULTS_EVERY else []
            with marks.begin():
                now = self.clock.now()
                written = record_results(marks, self.owner, done, now)
                taken = mark_sending(
                    marks, item.touch.id, self.owner, now, self.settings.smtp.lease
                )
            self._count(done, written)
            if not taken:
                self.report.lost_leases += 1
                continue
            outcome = await smtp.send(item.message)
            self._done.append(self._result(item.touch, outcome))

    def _take_done(self) -> list[Result]:
        done, self._done = self._done, []
        return done

    def _result(self, touch: ClaimedTouch, outcome: Outcome) -> Result:
        now = self.clock.now()
        reply = outcome.reply
        if outcome.status == "sent":
            return Result(touch.id, "sent", None, reply, sent_at=now)
        if outcome.status in ("auth", "insecure"):
            self._pause(reply)
            return Result(touch.id, "pending", f"sending paused: {reply}", reply, attempted=False)
        if outcome.status == "retry":
            return self._retry(touch, reply, now)
        reasons = {
            "unknown": f"{reply}: it may have gone out; `appreciate retry {touch.id}` sends it"
            " again",
            "held": reply,
        }
        status = outcome.status if outcome.status in reasons else "failed"
        reason = reasons.get(status, f"the server refused it: {reply}")
        return Result(touch.id, status, reason, None if status == "held" else reply)

    def _retry(self, touch: ClaimedTouch, reply: str, now: datetime) -> Result:
        """A temporary failure: try again after the backoff, or give up at `max_attempts`."""
        attempts = touch.attempts + 1
        if attempts >= self.settings.smtp.max_attempts:
            return Result(touch.id, "failed", f"gave up after {attempts} attempts: {reply}", reply)
        again = now + self._backoff(attempts)
        reason = f"attempt {attempts} failed ({reply}); trying again at {again:%Y-%m-%d %H:%M} UTC"
        return Result(touch.id, "pending", reason, reply, retry_at=again)

    def _backoff(self, attempts: int) -> timedelta:
        base: timedelta = self.settings.smtp.retry_after * (2 ** (attempts - 1))
        return base * self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _pause(self, reason: str) -> None:
        if self._stop is None:
            self._stop = reason
            log.error("SENDING PAUSED for every note: %s", reason)
            with write_transaction(self.engine) as connection:
                pause(connection, reason, self.clock.now())
            self.report.paused = reason

    def _record(self, results: Sequence[Result]) -> None:
        if not results:
            return
        with write_transaction(self.engine) as connection:
            written = record_results(connection, self.owner, results, self.clock.now())
        self._count(results, written)

    def _count(self, results: Sequence[Result], written: int) -> None:
        """Outcomes written: counted in the report and logged, one line each."""
        self.report.lost_leases += len(results) - written
        for result in results:
            self.report.counts[result.status] += 1
            why = f": {result.reason}" if result.reason else ""
            what = self._what.get(result.touch_id, "")
            log.info("touch %s %s %s%s", result.touch_id, what, result.status, why)
