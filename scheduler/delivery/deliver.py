"""One delivery run: every due note claimed, written, sent and recorded, until none is due.

A run, in order:
0. Opt-outs kept on disk while the store was unavailable are recorded first
   (`scheduler.store.opt_out_spool`); if they cannot be read, the run fails before it sends
   anything (`OptOutsUnreadable`).
1. If sending is paused, nothing is sent (the report says why).
2. Expired leases are reaped, and the day's budget is applied (most valuable first).
3. Due notes are claimed a few at a time (see `Sender._claim_size`: a second instance always
   finds work); each is checked again (an opt-out since it was recorded suppresses it, a note
   past its lateness expires), rendered from the owner's templates, built into a message (the
   Message-ID made once and kept, so a retry reuses it), signed with DKIM when `[smtp]` asks
   for it (see `scheduler.notes.dkim_signing`: a note that cannot be signed fails, never goes
   unsigned) and saved. The next claim is made while the last one's notes are still going
   out.
4. The messages go out over `[smtp] connections` reused connections, at most
   `max_per_minute` a minute in all. Outcomes (see `scheduler.delivery.smtp_client`) are recorded in
   groups; a temporary failure waits `retry_after`, doubling with each attempt (+-20%
   jitter; at most LONGEST_RETRY_WAIT), until `max_attempts`, then fails.
5. A refused login, a missing STARTTLS or a server that does not greet like a mail server
   pauses sending for every instance: the notes not yet sent go back to the queue untouched,
   and the report says why, loudly.
6. A server that throttles (see `smtp_client.is_throttling`, or THROTTLE_AFTER temporary
   refusals in a row) slows every instance down: that note goes back without spending an
   attempt, no new send starts in this run (the others go back to the queue untouched), and a
   shared back-off is recorded (`claims.throttle`: `retry_after`, doubling with each throttle
   in a row, at most LONGEST_BACKOFF; an accepted message resets it). A run during the back-off
   sends nothing; its report says until when and why.

Writing the notes (3.) runs in a worker thread, so the event loop keeps serving signals and the
watchdog meanwhile. A stop (`Sender.stop`) abandons a note being written at once: it and the
notes not yet written go back to the queue.

Rules that keep outcomes:
- A template error fails only its own note, with the reason `template problem: FILE:LINE:
  MESSAGE` (`scheduler.notes.template_failures`); a note whose template takes longer than
  `[templates] render_timeout` is such a failure too.
- An unexpected error while sending one note (a bug here or in aiosmtplib) fails only that
  note: `unknown` once the message was written to the line, else a temporary failure. It is
  logged with its cause; the other notes go on.
- A store that cannot be written (locked longer than its busy timeout, a PostgreSQL lock
  timeout) loses no outcome: they are kept, and written once it is free again, tried after a
  growing wait; meanwhile no note is handed over. A stop ends the wait. A store that stays
  locked for a whole `[smtp] lease` fails the run, after it wrote what it could; the outcomes
  it could not write are logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from scheduler.clock import Clock
from scheduler.config.file import Config
from scheduler.config.settings import Settings
from scheduler.delivery.claims import (
    ClaimedTouch,
    Result,
    claim,
    end_throttle,
    mark_sending,
    pause,
    paused_reason,
    reap,
    record_results,
    save_prepared,
    throttle,
    throttled,
)
from scheduler.delivery.daily_budget import apply_budget
from scheduler.delivery.smtp_client import Outcome, ServerSettings, SmtpConnection
from scheduler.delivery.store_gate import StoreGate, StoreUnavailable
from scheduler.delivery.throttle import Throttle
from scheduler.errors import AppreciateError, OptOutsUnreadable
from scheduler.notes.bounce_tag import bounce_address_for, tag_key
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.message import BuiltMessage
from scheduler.notes.note_context import TouchRef, build_contexts
from scheduler.notes.note_message import note_message
from scheduler.notes.render import NoteRenderer, RenderStopped, TemplateProblem
from scheduler.notes.template_failures import failure_reason
from scheduler.output import printable
from scheduler.store.db import write_transaction
from scheduler.store.driver_writes import driver_writes
from scheduler.store.models import metadata
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.store.outbox import Contact, contact_of, contacts_query, suppression_reason
from scheduler.waits import doubled_wait
from scheduler.zones import ZoneBook

log = logging.getLogger("appreciate.send")
customers = metadata.tables["customers"]
CLAIM_PER_CONNECTION = 4
"""The first claim of a run, per connection (see `Sender._claim_size`)."""
CLAIM_SECONDS = 1.0
"""Later claims hold about this many seconds of sending, at the pace of the run so far."""
LARGEST_CLAIM = 200
"""The most notes one claim takes (what every claim took before claims followed the pace)."""
JITTER = 0.2
RESULTS_EVERY = 8
"""Outcomes are written in groups of this many (see `Sender._worker`)."""
PAUSING = ("auth", "insecure", "bad_greeting")
"""Outcomes that pause sending for every instance until the owner acts."""
THROTTLE_AFTER = 3
"""Temporary refusals (4xx) in a row, with no other reply between them, that are taken for
throttling whatever they say."""
LONGEST_BACKOFF = timedelta(hours=1)
LONGEST_RETRY_WAIT = timedelta(days=365)
"""A note's doubling wait after a temporary failure stops growing here (a note that waits this
long has expired long before; without a bound, many attempts carried it past the calendar)."""
"""The longest a throttling server makes every instance wait."""
REPLY_KEPT = 1000
"""At most this many characters of a server's reply are kept and logged (a reply may run to
32 KB: aiosmtplib's limit)."""


@dataclass
class SendReport:
    """What a run did: outcomes by status, and why sending is paused or slowed (if it is)."""

    counts: Counter[str] = field(default_factory=Counter)
    paused: str | None = None
    throttled: Throttle | None = None
    """The back-off in force because the server throttles (this run's or an earlier one): no
    send starts before its `until`."""
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
    evenly, by the event loop's monotonic clock.

    Two steps: `wait` before a note is marked `sending` takes the next turn; `hand_over`, once
    it is marked, keeps the actual hand-overs an interval apart too, so notes held up between
    the two (by a locked store) do not go out together once it is free."""

    def __init__(self, per_minute: int) -> None:
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._next_hand_over = 0.0

    @property
    def limits(self) -> bool:
        """Whether there is a limit at all."""
        return bool(self._interval)

    async def wait(self) -> None:
        """Until this send's turn."""
        if not self.limits:
            return
        start, self._next = self._turn(self._next)
        await self._until(start)

    async def hand_over(self) -> None:
        """Until an interval after the last hand-over (at once, unless the store held it up)."""
        start, self._next_hand_over = self._turn(self._next_hand_over)
        await self._until(start)

    def _turn(self, earliest: float) -> tuple[float, float]:
        """When a turn taken now starts (now, or `earliest` if later), and the next one."""
        start = max(asyncio.get_running_loop().time(), earliest)
        return start, start + self._interval

    @staticmethod
    async def _until(start: float) -> None:
        delay = start - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class _Prepared:
    touch: ClaimedTouch
    message: BuiltMessage


@dataclass
class _Batch:
    """A claim, written (in a worker thread): the notes ready to go, the outcomes of those that
    cannot go (written already: `written` of them), what the log calls each note, and the
    template problems met."""

    ready: list[_Prepared]
    settled: list[Result]
    written: int
    names: dict[int, str]
    problems: Counter[str]


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
        signer: DkimSigner | None = None,
        spool: OptOutSpool | None = None,
    ) -> None:
        if settings.smtp.signs and signer is None:  # never send unsigned by mistake
            raise ValueError("[smtp] signs with DKIM: give the Sender DkimSigner.configured()")
        self.engine = engine
        self.settings = settings
        self.server = server
        self.renderer = renderer
        self.clock = clock
        self.owner = owner
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.only = only
        """Send these notes alone (a person's retry), outside the daily budget; None: all due."""
        self.signer = signer
        """Signs each message (DKIM) when `[smtp]` asks for it; required then."""
        self.spool = spool
        """Opt-outs that wait on disk for the store, recorded before anything is sent."""
        self.limiter = RateLimiter(settings.smtp.max_per_minute)
        self.report = SendReport()
        self._stop: str | None = None
        self._hungry = asyncio.Event()
        self._refill_below = settings.smtp.connections
        """Once fewer notes than this wait to go, `_hungry` is set: the next claim is due."""
        self._stopping = asyncio.Event()
        """Set by `stop()`: it also ends a wait for a locked store."""
        self._done: list[Result] = []
        """Outcomes not yet written (see `_worker`)."""
        self._owed: list[Callable[[Connection], object]] = []
        """Shared state (a pause, a back-off) not yet written: the store was locked."""
        self._gate = StoreGate(settings.smtp.lease.total_seconds(), self._stopping)
        self._refusals_in_a_row = 0
        self._pace_from: float | None = None
        self._handed_over = 0
        """Notes sent in this run since `_pace_from` (event loop time): its pace."""
        self._backoff_ran_out = False
        """A back-off that ran out is on record: the next accepted message ends it."""
        self._what: dict[int, str] = {}
        """touch id -> "kind customer ID" (the business's own id), for the log."""
        self._render_stop = threading.Event()
        """Set by `stop`: a note being written (in the worker thread) is abandoned at once."""
        self.template_problems: Counter[str] = Counter()
        """Notes failed in this run, by template problem (`FILE:LINE: MESSAGE`)."""
        self._tag_key = b""
        """The key of the return path's tags (`[inbound] bounce_address`), read by `run`."""

    def stop(self, reason: str) -> None:
        """Claim nothing more, write no more notes (one being written is abandoned at once) and
        start no new send; the sends under way finish, and the notes not yet sent go back to the
        queue (see `claims.release` for a stop that cannot wait). A wait for a locked store ends
        too."""
        self._halt(reason)
        self._render_stop.set()
        self._stopping.set()

    def _halt(self, reason: str) -> None:
        """Start no new send in this run (the first reason is kept)."""
        if self._stop is None:
            self._stop = reason
        self._hungry.set()  # the feeder ends too

    async def run(self) -> SendReport:
        """Send everything due now (see the module's steps)."""
        if self.spool is not None:
            self._replay(self.spool)
        with write_transaction(self.engine) as connection:
            self.report.paused = paused_reason(connection)
            if self.report.paused is not None:
                return self.report
            now = self.clock.now()
            if self._backing_off(connection, now):
                return self.report
            requeued, unknown = reap(connection, now)
            self.report.requeued += requeued
            if unknown:
                self.report.counts["unknown"] += unknown
            if self.only is None:
                apply_budget(connection, self.settings, now)
            if self.settings.inbound.bounce_address:
                self._tag_key = tag_key(connection, now)
        pool = [SmtpConnection(self.server) for _ in range(self.settings.smtp.connections)]
        try:
            await self._deliver(pool)
        finally:
            await asyncio.gather(*(connection.close() for connection in pool))
        return self.report

    def _replay(self, spool: OptOutSpool) -> None:
        """Record the opt-outs waiting in `spool`. Raises OptOutsUnreadable when they cannot
        be read, so that nobody who asked to stop is written to; a store that cannot take them
        raises, as the run's own first write would."""
        try:
            spool.replay(self.engine, self.clock.now())
        except OSError as error:
            raise OptOutsUnreadable(spool.folder, str(error.strerror or error)) from error

    def _claim_size(self, connections: int) -> int:
        """Notes to claim now: CLAIM_PER_CONNECTION per connection at first, then about
        CLAIM_SECONDS of sending at the pace this run has kept, at most LARGEST_CLAIM. A claim
        holds what its connections send in a moment (far less than a lease), so a second
        instance always finds work, and a slow or rate-limited server gets small claims; a
        fast run claims seldom (each claim, and writing its notes, costs a few milliseconds
        whatever its size)."""
        smallest = CLAIM_PER_CONNECTION * connections
        now = asyncio.get_running_loop().time()
        if self._pace_from is None:
            self._pace_from = now
            return smallest
        elapsed = now - self._pace_from
        pace = self._handed_over / elapsed if elapsed > 0 else 0.0
        return max(smallest, min(LARGEST_CLAIM, round(pace * CLAIM_SECONDS)))

    def _claim(self, size: int) -> list[ClaimedTouch]:
        """Up to `size` due notes. (A back-off another instance records meanwhile is seen by
        the next run; this one stops at its own first throttled reply.)"""
        with write_transaction(self.engine) as connection:
            now = self.clock.now()
            return claim(connection, self.owner, now, self.settings.smtp.lease, size, self.only)

    def _backing_off(self, connection: Connection, now: datetime) -> bool:
        """Whether a back-off for a throttling server still runs (the report says until when
        and why). One that ran out is noted: the next accepted message ends it."""
        backoff = throttled(connection)
        if backoff is not None and backoff.until > now:
            self.report.throttled = backoff
            return True
        self._backoff_ran_out = backoff is not None
        return False

    # Writing the notes ------------------------------------------------------------------

    def _prepare(self, claimed: Sequence[ClaimedTouch]) -> _Batch:
        """Render and build each claimed note; notes that cannot go are settled (written) at
        once, and once a stop is asked for, the notes not yet written go back to the queue.
        Runs in a worker thread (see the module's docstring): it changes nothing the event
        loop's workers use, and returns what they should know."""
        now = self.clock.now()
        with write_transaction(self.engine) as connection:  # unsubscribe tokens are written
            contacts, own_ids = self._contacts(connection, [t.customer_id for t in claimed])
            refs = [
                TouchRef(t.id, t.customer_id, t.kind, t.occasion_key, t.due_at) for t in claimed
            ]
            contexts = build_contexts(connection, refs, self.settings, now=now)
        names = {
            t.id: f"{t.kind} customer {own_ids.get(t.customer_id, f'#{t.customer_id} (gone)')}"
            for t in claimed
        }
        problems: Counter[str] = Counter()
        ready: list[_Prepared] = []
        settled: list[Result] = []
        saved = []
        for position, touch in enumerate(claimed):
            if self._render_stop.is_set():
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
                problems[str(broken)] += 1
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
            written = record_results(connection, self.owner, settled, self.clock.now())
        return _Batch(ready, settled, written, names, problems)

    def _given_back(self, touches: Sequence[ClaimedTouch]) -> list[Result]:
        """The notes a stop left unwritten, back to the queue (not an attempt)."""
        reason = f"not sent: {self._stop or 'appreciate is stopping'}"
        return [Result(touch.id, "pending", reason, attempted=False) for touch in touches]

    def _write(
        self, touch: ClaimedTouch, context: dict[str, Any], now: datetime
    ) -> tuple[BuiltMessage, dict[str, object]]:
        """The note's message (signed when `[smtp]` asks for it) and the row that saves it
        (subject, bodies, headers)."""
        ltv = context.get("ltv")
        tier = ltv.get("tier") if isinstance(ltv, dict) else None
        note = self.renderer.render(
            touch.kind, tier if isinstance(tier, str) else None, context, stop=self._render_stop
        )
        message = note_message(
            self.settings.business, note, context, message_id=touch.message_id, date=now
        )
        if self._tag_key:  # the return path names the note (VERP), for its bounces
            bounces_to = bounce_address_for(
                self.settings.inbound.bounce_address, self._tag_key, touch.id
            )
            message = replace(message, mail_from=bounces_to)
        if self.signer is not None:
            message = self.signer.sign(message)
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
        rows = connection.execute(contacts_query(ids)).all()
        contacts = {row.id: contact_of(row, zones) for row in rows}
        return contacts, {row.id: row.external_id for row in rows}

    # Sending ----------------------------------------------------------------------------

    async def _deliver(self, pool: list[SmtpConnection]) -> None:
        """Claim, write and send the due notes over `pool` until none is due or sending stops,
        then write the outcomes not written yet and give back the notes not sent. Claims are
        small (see `_claim_size`); the next is claimed and written while half the last one
        (at least a note per connection) still waits to go. A failure to claim or write, or
        a worker's unexpected error, is raised once that is done."""
        queue: asyncio.Queue[_Prepared | None] = asyncio.Queue()
        with self.engine.connect() as plain:
            # One connection for every worker: their transactions never span an await.
            marks = plain
            if self.engine.dialect.name == "sqlite":
                marks = plain.execution_options(sqlite_begin="IMMEDIATE")
            workers = [asyncio.ensure_future(self._worker(queue, smtp, marks)) for smtp in pool]
            try:
                trouble = await self._feed(queue, len(pool))
                ended = await asyncio.gather(*workers, return_exceptions=True)
            except BaseException:  # cancelled: the sends under way end at once
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
        why = f"not sent: {self._stop}"
        unsent = []
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None:
                unsent.append(Result(item.touch.id, "pending", why, attempted=False))
        results = self._take_done() + unsent
        try:
            written = await self._gate.write(partial(self._settle, results), last=True)
        except StoreUnavailable:
            self._unwritten(results)
            raise
        self._count(results, written)
        for end in (trouble, *ended):
            if isinstance(end, BaseException):
                raise end

    async def _feed(
        self, queue: asyncio.Queue[_Prepared | None], workers: int
    ) -> BaseException | None:
        """Put claims of written notes on `queue`, the next once fewer than `_refill_below`
        notes wait, until none is due or sending stops; then an end for each worker. A locked
        store is waited for (claiming and writing are safe to try again). A failure to claim
        or write ends the feeding and is returned: the notes in hand still go out."""
        try:
            while self._stop is None:
                size = self._claim_size(workers)
                claimed = await self._gate.write(partial(self._claim, size))
                if not claimed:
                    break
                batch = await self._gate.write(partial(self._prepare, claimed), in_thread=True)
                self._what.update(batch.names)
                self.template_problems.update(batch.problems)
                self._count(batch.settled, batch.written)
                for item in batch.ready:
                    queue.put_nowait(item)
                self._refill_below = max(workers, len(claimed) // 2)
                while queue.qsize() >= self._refill_below and self._stop is None:
                    self._hungry.clear()
                    await self._hungry.wait()
        except StoreUnavailable as error:
            return None if self._stopping.is_set() else error
        except Exception as error:
            return error
        finally:
            for _ in range(workers):
                queue.put_nowait(None)
        return None

    async def _worker(
        self, queue: asyncio.Queue[_Prepared | None], smtp: SmtpConnection, marks: Connection
    ) -> None:
        """Send notes from `queue` over `smtp` until its end or until sending stops. Each note
        is marked `sending` in a transaction of its own, which also writes the outcomes
        gathered so far once there are RESULTS_EVERY of them: a sender killed mid-run leaves
        as `unknown` only the notes it was handing over and fewer than RESULTS_EVERY sent ones
        whose outcome it had not written yet. While that transaction cannot be written (a
        locked store), no note is handed over (see `scheduler.delivery.store_gate`). An unexpected
        error here (not in a send: see `_send`) stops the run's sending and is raised."""
        try:
            while self._stop is None:
                item = await queue.get()
                if item is None:
                    return
                if queue.qsize() < self._refill_below:
                    self._hungry.set()
                if await self._hand_over(item, queue, marks):
                    outcome = await self._send(smtp, item)
                    self._done.append(self._result(item.touch, outcome))
                    self._handed_over += 1
        except Exception as error:
            self._halt(f"unexpected error: {type(error).__name__}: {error}")
            raise

    async def _hand_over(
        self, item: _Prepared, queue: asyncio.Queue[_Prepared | None], marks: Connection
    ) -> bool:
        """Whether `item` may be sent now: marked `sending` (see `_mark`). A note not taken
        (sending stopped, the store could not be written) goes back to `queue`."""
        await self.limiter.wait()
        taken: bool | None = None
        try:
            if self._stop is None:
                taken = await self._gate.write(partial(self._mark, marks, item.touch))
        except StoreUnavailable:
            self._halt("the store could not be written")
        finally:
            if taken is None:
                queue.put_nowait(item)
        if taken is False:
            self.report.lost_leases += 1
        if taken and self.limiter.limits:
            await self.limiter.hand_over()
        return bool(taken)

    async def _send(self, smtp: SmtpConnection, item: _Prepared) -> Outcome:
        """`smtp.send`, with a safety net: an unexpected error (a bug here or in aiosmtplib)
        fails this note only (see `SmtpConnection.abandon`), and is logged with its cause."""
        try:
            return await smtp.send(item.message)
        except Exception as error:
            outcome = smtp.abandon(error)
            log.error(
                "touch %s %s: unexpected error while sending it (%s)",
                item.touch.id,
                self._what.get(item.touch.id, ""),
                outcome.status,
                exc_info=error,
            )
            return outcome

    def _mark(self, marks: Connection, touch: ClaimedTouch) -> bool:
        """One transaction: the outcomes gathered so far (RESULTS_EVERY at a time, or all of
        them after the store was locked) and `touch` marked `sending`; False when its lease
        was lost. On failure the outcomes stay to be written. Its SQL goes straight to the
        driver (`driver_writes`), unless shared state is owed or a back-off may end: those
        statements go through SQLAlchemy, in `marks.begin()`."""
        take = len(self._done) >= RESULTS_EVERY or self._gate.closed
        done = self._take_done() if take else []
        lease = self.settings.smtp.lease
        try:
            if self._owed or (self._backoff_ran_out and done):
                with marks.begin():
                    now = self.clock.now()
                    written = self._write_outcomes(marks, done, now)
                    taken = mark_sending(marks, touch.id, self.owner, now, lease)
            else:
                with driver_writes(marks) as writes:
                    now = self.clock.now()
                    written = record_results(writes, self.owner, done, now)
                    taken = mark_sending(writes, touch.id, self.owner, now, lease)
        except BaseException:
            self._done[:0] = done
            raise
        self._count(done, written)
        return taken

    def _settle(self, results: Sequence[Result]) -> int:
        """Write `results` and the shared state owed, in one transaction; how many were
        written (see `claims.record_results`)."""
        with write_transaction(self.engine) as connection:
            return self._write_outcomes(connection, results, self.clock.now())

    def _write_outcomes(
        self, connection: Connection, results: Sequence[Result], now: datetime
    ) -> int:
        """Inside a transaction: the shared state owed, `results`, and the end of a back-off
        that ran out when one of them was accepted."""
        owed, self._owed = self._owed, []
        try:
            for write in owed:
                write(connection)
            written = record_results(connection, self.owner, results, now)
            if self._backoff_ran_out and any(r.status == "sent" for r in results):
                end_throttle(connection, now)
        except BaseException:
            self._owed[:0] = owed
            raise
        return written

    def _unwritten(self, results: Sequence[Result]) -> None:
        """Say loudly which outcomes are lost with a store that stayed locked (ids in order)."""
        by_status: dict[str, list[int]] = {}
        for result in results:
            by_status.setdefault(result.status, []).append(result.touch_id)
        log.error(
            "could not write these outcomes, the store stayed locked: %s. Notes handed to the "
            "server stay `sending` and become `unknown` when their lease runs out; the others "
            "are taken up again",
            "; ".join(
                f"{status}: {', '.join(map(str, sorted(ids)))}"
                for status, ids in sorted(by_status.items())
            ),
        )

    def _take_done(self) -> list[Result]:
        done, self._done = self._done, []
        return done

    def _result(self, touch: ClaimedTouch, outcome: Outcome) -> Result:
        now = self.clock.now()
        reply = _storable(outcome.reply)
        if outcome.status not in ("retry", "throttled"):
            self._refusals_in_a_row = 0
        if outcome.status == "sent":
            return Result(touch.id, "sent", None, reply, sent_at=now)
        if outcome.status in PAUSING:
            self._pause(reply)
            return Result(touch.id, "pending", f"sending paused: {reply}", reply, attempted=False)
        if outcome.status in ("retry", "throttled"):
            return self._temporary(touch, outcome, reply, now)
        reasons = {
            "unknown": f"{reply}: it may have gone out; `appreciate retry {touch.id}` sends it"
            " again",
            "held": reply,
        }
        status = outcome.status if outcome.status in reasons else "failed"
        reason = reasons.get(status, f"the server refused it: {reply}")
        return Result(touch.id, status, reason, None if status == "held" else reply)

    def _temporary(
        self, touch: ClaimedTouch, outcome: Outcome, reply: str, now: datetime
    ) -> Result:
        """A temporary failure. When the server is throttling (its reply says so,
        THROTTLE_AFTER refusals came in a row, or it throttled earlier in this run) the whole
        sender slows down and the note goes back without spending an attempt; otherwise the
        note alone is tried again later."""
        if outcome.code is not None and 400 <= outcome.code < 500:
            self._refusals_in_a_row += 1
        in_a_row = self._refusals_in_a_row >= THROTTLE_AFTER
        if outcome.status != "throttled" and not in_a_row and self.report.throttled is None:
            return self._retry(touch, reply, now)
        why = (
            f"{self._refusals_in_a_row} temporary refusals in a row, the last: " if in_a_row else ""
        )
        backoff = self._slow_down(f"{why}{reply}", now)
        reason = (
            f"the mail server asked to slow down ({reply}); not counted as an attempt, sent "
            f"again from {backoff.until:%Y-%m-%d %H:%M} UTC"
        )
        return Result(touch.id, "pending", reason, reply, retry_at=backoff.until, attempted=False)

    def _retry(self, touch: ClaimedTouch, reply: str, now: datetime) -> Result:
        """A temporary failure: try again after the backoff, or give up at `max_attempts`."""
        attempts = touch.attempts + 1
        if attempts >= self.settings.smtp.max_attempts:
            return Result(touch.id, "failed", f"gave up after {attempts} attempts: {reply}", reply)
        again = now + self._backoff(attempts)
        reason = f"attempt {attempts} failed ({reply}); trying again at {again:%Y-%m-%d %H:%M} UTC"
        return Result(touch.id, "pending", reason, reply, retry_at=again)

    def _backoff(self, attempts: int) -> timedelta:
        wait = doubled_wait(self.settings.smtp.retry_after, attempts, LONGEST_RETRY_WAIT)
        return wait * self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _slow_down(self, reason: str, now: datetime) -> Throttle:
        """The server throttles: no new send in this run, and a back-off for every instance
        (the one in force is returned; see `claims.throttle`)."""
        if self.report.throttled is not None:
            return self.report.throttled
        self._halt(f"the mail server is throttling: {reason}")
        first, longest = self.settings.smtp.retry_after, LONGEST_BACKOFF
        record = partial(throttle, reason=reason, now=now, first_wait=first, longest=longest)
        try:
            with write_transaction(self.engine) as connection:
                backoff = record(connection)
        except OperationalError:  # written with the outcomes, once the store is free
            self._owed.append(record)
            backoff = Throttle(now + min(first, longest), reason, 1)
        self.report.throttled = backoff  # the commands and the service say it loudly
        log.info("the mail server is throttling: %s", backoff.line())
        return backoff

    def _pause(self, reason: str) -> None:
        if self.report.paused is None:
            self._halt(reason)
            log.error("SENDING PAUSED for every note: %s", reason)
            record = partial(pause, reason=reason, now=self.clock.now())
            try:
                with write_transaction(self.engine) as connection:
                    record(connection)
            except OperationalError:  # written with the outcomes, once the store is free
                self._owed.append(record)
            self.report.paused = reason

    def _count(self, results: Sequence[Result], written: int) -> None:
        """Outcomes written: counted in the report and logged, one line each."""
        self.report.lost_leases += len(results) - written
        if any(result.status == "sent" for result in results):
            self._backoff_ran_out = False
        for result in results:
            self.report.counts[result.status] += 1
            why = f": {result.reason}" if result.reason else ""
            what = self._what.pop(result.touch_id, "")
            log.info("touch %s %s %s%s", result.touch_id, what, result.status, why)


def _storable(reply: str) -> str:
    """A reply as the store keeps it and the log shows it, on one line: the lines of a
    multi-line reply joined by a space; bytes that were not UTF-8 (aiosmtplib keeps them as
    surrogates) and control characters (escape sequences, bidi overrides) written as
    escapes; at most REPLY_KEPT characters of that, then "..."."""
    text = reply[: REPLY_KEPT * 4].encode("utf-8", "backslashreplace").decode("utf-8")
    line = printable(" ".join(text.split("\n")), newlines=False)
    return line[:REPLY_KEPT] + "..." if len(line) > REPLY_KEPT else line
