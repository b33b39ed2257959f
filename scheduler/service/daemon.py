"""`appreciate run`: the long-running service.

An APScheduler `AsyncIOScheduler` (in memory; every job `coalesce=True`, `max_instances=1`,
a generous `misfire_grace_time`) is this instance's timer:
- detect: every `[schedule] detect_every`; when it adds notes, delivery runs at once;
- deliver: every `[schedule] deliver_every` (while a throttling mail server's back-off runs,
  a delivery sends nothing; each back-off is logged once, as an error);
- the lifetime-value refresh: daily at `[ltv] recompute_at`, business time;
- reap: every minute, leases past their time (an instance that died) are taken back.
All correctness lives in the database (leases, unique occasion keys), so a restart or a second
instance changes nothing. A job that fails (the database or the mail server is down) is logged
and tried again later, waiting twice as long each time up to `MAX_BACKOFF`; the daemon never
exits for it.

Signals: SIGTERM and SIGINT stop claiming, abandon a note being written (it goes back to the
queue), give the sends under way `[schedule] stop_within` to finish, release this instance's
leases, log one summary line, and exit 0, without waiting for a job in a worker thread
(`scheduler.service.worker_threads`). SIGHUP reloads the config and templates; a new config
with errors is refused (the errors are logged) and the old one keeps running. The new config
is read and checked (its store opened) in a worker thread, one reload at a time: a store that
is slow to answer holds up neither the sends nor the watchdog.

Templates: broken ones never keep the service from starting or reloading. Each problem
`appreciate templates check` would report is logged at start and on reload (ERROR, with file
and line); only the notes that hit one fail, and each delivery run logs every problem its notes
failed on once, with how many (see `scheduler.service.cycle`).

systemd: READY=1 once the store, the SMTP settings and the templates are checked; STATUS= with
the last delivery's counts; STOPPING=1; WATCHDOG=1 from the event loop (see
`scheduler.service.systemd_notify`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.clock import Clock
from scheduler.config.occasion_settings import format_duration
from scheduler.config.settings import Settings
from scheduler.delivery.claims import reap
from scheduler.delivery.deliver import Sender
from scheduler.delivery.throttle import Throttle
from scheduler.errors import AppreciateError
from scheduler.service.cycle import (
    CycleReport,
    Service,
    add_outcomes,
    detect_once,
    log_template_findings,
    log_template_problems,
    new_sender,
    open_service,
    read_mailbox,
)
from scheduler.service.daily_summary import daily_summary
from scheduler.service.interruption import release_held
from scheduler.service.last_cycle import save_cycle
from scheduler.service.nightly import nightly_refresh, refresh_trigger
from scheduler.service.systemd_notify import Notifier, keep_alive
from scheduler.service.worker_threads import UnwaitedThreads
from scheduler.store.db import store_failure, write_transaction
from scheduler.waits import doubled_wait

log = logging.getLogger("appreciate.run")
MISFIRE_GRACE = 3600
"""Seconds a job may start late (a busy or suspended machine) and still run."""
FIRST_RETRY = timedelta(seconds=5)
MAX_BACKOFF = timedelta(minutes=5)
REAP_EVERY = timedelta(minutes=1)


@dataclass
class Totals:
    """Since the daemon started, for the summary line."""

    added: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        outcomes = ", ".join(f"{n} {status}" for status, n in sorted(self.outcomes.items()))
        return f"{self.added} notes added, {outcomes or 'none sent'}"


class Companion(Protocol):
    """Something served beside the service in its event loop (the web service)."""

    async def stop(self) -> None:
        """Stop: finish what is under way, then let go of what it holds."""


StartCompanion = Callable[[Engine, Settings, Clock], Companion | None]
"""Starts a companion in the running event loop with the service's store, settings and clock;
None when it is not wanted or cannot start (it logs why): the service runs on either way."""


def retry_wait(failures: int) -> timedelta:
    """How long a job waits after `failures` failures in a row: FIRST_RETRY, twice as long after
    each failure, at most MAX_BACKOFF, however long the failures go on (a store down for hours
    fails a job every few minutes)."""
    return doubled_wait(FIRST_RETRY, failures, MAX_BACKOFF)


class Daemon:
    """One instance of the service; `serve()` runs it until a stop signal."""

    def __init__(
        self,
        config_path: Path,
        service: Service,
        clock: Clock,
        notifier: Notifier,
        owner: str,
        companion: StartCompanion | None = None,
    ) -> None:
        self.config_path = config_path
        self.service = service
        self.clock = clock
        self.notifier = notifier
        self.owner = owner
        self.totals = Totals()
        self._added_since_delivery: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._sender: Sender | None = None
        self._throttle_told: Throttle | None = None
        """The last back-off logged (each is logged once, however many runs it stops)."""
        self._delivery: asyncio.Task[None] | None = None
        self._timer: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        """The jobs under way (waited for at stop)."""
        self._start_companion = companion
        self._companion: Companion | None = None
        self._reloading = asyncio.Lock()
        self._reloads: set[asyncio.Task[None]] = set()

    # The timer -------------------------------------------------------------------------------

    async def serve(self, hangups: Sequence[object] = ()) -> int:
        """Run until SIGTERM or SIGINT; 0 after a clean stop. `hangups`: the SIGHUPs received
        before the service listened for them (during start-up); any means one reload at once."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(UnwaitedThreads())
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        if hangups:
            self.reload()
        self._timer = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        self._schedule()
        self._timer.start()
        watchdog = asyncio.create_task(keep_alive(self.notifier, self._stop))
        self.notifier.ready()
        self.notifier.status("running: looking for occasions")
        settings = self.service.config.settings.schedule
        log.info(
            "appreciate is running as %s: detection every %s, delivery every %s",
            self.owner,
            format_duration(settings.detect_every),
            format_duration(settings.deliver_every),
        )
        log_template_findings(self.service, "at start")
        if self._start_companion is not None:
            self._companion = self._start_companion(
                self.service.engine, self.service.config.settings, self.clock
            )
        await self._stop.wait()
        await self._shut_down()
        await watchdog
        return 0

    def _schedule(self) -> None:
        timer = self._timer
        if timer is None:
            return
        settings = self.service.config.settings
        now = self.clock.now()
        options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE}
        every = settings.schedule
        jobs: list[tuple[str, Callable[[], Awaitable[None]], object]] = [
            ("detect", self._detect, IntervalTrigger(seconds=_seconds(every.detect_every))),
            ("deliver", self._deliver, IntervalTrigger(seconds=_seconds(every.deliver_every))),
            ("ltv", self._refresh_values, refresh_trigger(settings)),
            ("summary", self._summarise, refresh_trigger(settings)),
            ("reap", self._reap, IntervalTrigger(seconds=_seconds(reap_every(settings)))),
        ]
        if self.service.mailbox is not None:
            every_poll = IntervalTrigger(seconds=_seconds(settings.inbound.poll_every))
            jobs.append(("inbound", self._read_mailbox, every_poll))
        for name, job, trigger in jobs:
            first = now if name in ("detect", "deliver", "reap", "inbound") else None
            timer.add_job(
                job,
                trigger,
                id=name,
                name=name,
                replace_existing=True,
                **({"next_run_time": first} if first else {}),
                **options,
            )

    def _soon(self, name: str, delay: timedelta = timedelta(0)) -> None:
        """Run job `name` after `delay` instead of at its next regular time."""
        if self._timer is not None and not self._stop.is_set():
            job = self._timer.get_job(name)
            if job is not None:
                job.modify(next_run_time=self.clock.now() + delay)

    async def _guarded(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run a job; a failure is logged and the job tried again sooner than usual, waiting
        twice as long after each failure in a row (at most MAX_BACKOFF). Once a stop was asked
        for, no job starts."""
        if self._stop.is_set():
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await work()
        except asyncio.CancelledError:
            log.warning("%s was stopped before it finished", name)
        except Exception as error:
            self._failures[name] += 1
            wait = retry_wait(self._failures[name])
            log.error(
                "%s failed (%s: %s); trying again in %s",
                name,
                type(error).__name__,
                _one_line(error),
                wait,
            )
            self._soon(name, wait)
        else:
            if self._failures.pop(name, 0):
                log.warning("%s works again", name)
        finally:
            if task is not None:
                self._running.discard(task)

    # The jobs --------------------------------------------------------------------------------

    async def _detect(self) -> None:
        async def work() -> None:
            added = await detect_once(self.service, self.clock.now())
            if added:
                self._added_since_delivery.update(added)
                self.totals.added += sum(added.values())
                log.info(
                    "detection added %s",
                    ", ".join(f"{n} {kind}" for kind, n in sorted(added.items())),
                )
                self._soon("deliver")

        await self._guarded("detect", work)

    async def _deliver(self) -> None:
        async def work() -> None:
            sender = new_sender(self.service, self.clock, self.owner)
            self._sender = sender
            try:
                sent = await sender.run()
            finally:
                self._sender = None
            log_template_problems(sender.template_problems)
            report = CycleReport(self.clock.now(), added=self._added_since_delivery)
            self._added_since_delivery = Counter()
            add_outcomes(report, sent)
            self.totals.outcomes.update(sent.counts)
            save_cycle(self.service.engine, report)
            self.notifier.status(report.line())
            if sent.paused:
                log.error(
                    "SENDING IS PAUSED: %s (`appreciate send --resume` lifts it)", sent.paused
                )
            if sent.throttled is not None and sent.throttled != self._throttle_told:
                self._throttle_told = sent.throttled
                log.error("SENDING IS SLOWED DOWN for every instance: %s", sent.throttled.line())

        self._delivery = asyncio.current_task()
        try:
            await self._guarded("deliver", work)
        finally:
            self._delivery = None

    async def _read_mailbox(self) -> None:
        async def work() -> None:
            await read_mailbox(self.service, self.clock)

        await self._guarded("inbound", work)

    async def _summarise(self) -> None:
        async def work() -> None:
            def summary() -> str:
                with self.service.engine.connect() as connection:
                    return daily_summary(connection, self.clock.now())

            log.info("%s", await asyncio.to_thread(summary))

        await self._guarded("summary", work)

    async def _refresh_values(self) -> None:
        async def work() -> None:
            service = self.service
            line = await asyncio.to_thread(
                nightly_refresh, service.engine, service.config.settings, self.clock.now()
            )
            log.info("%s", line)

        await self._guarded("ltv", work)

    async def _reap(self) -> None:
        async def work() -> None:
            def reap_now() -> tuple[int, int]:
                with write_transaction(self.service.engine) as connection:
                    return reap(connection, self.clock.now())

            requeued, unknown = await asyncio.to_thread(reap_now)
            if requeued or unknown:
                log.warning(
                    "took back %d notes from a stopped instance (%d may have gone out: unknown)",
                    requeued + unknown,
                    unknown,
                )
                self._soon("deliver")

        await self._guarded("reap", work)

    # Signals ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: stop claiming; `serve` drains and returns. A second one stops the
        jobs under way at once (Ctrl-C twice in a terminal)."""
        if self._stop.is_set():
            if self._running:
                log.warning("asked again: stopping the sends under way now")
                for task in self._running:
                    task.cancel()
            return
        log.info("stopping: no new notes are claimed; finishing the sends under way")
        self.notifier.stopping()
        if self._sender is not None:
            self._sender.stop("appreciate is stopping")
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: reload (see `_reload`) in a task of its own; the event loop runs on."""
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload(self) -> None:
        """The new config and templates, or (with errors) the old ones, kept. Whatever stops
        the new ones (a config error, a store the new config cannot reach, a bug) is logged,
        and systemd is told the service is ready again: a reload never hangs. They are read
        and checked in a worker thread, one reload at a time; none starts once a stop was
        asked for, and one that ends after it is dropped."""
        async with self._reloading:
            if self._stop.is_set():
                return
            self.notifier.reloading()
            try:
                fresh = await asyncio.to_thread(open_service, self.config_path)
            except Exception as error:  # any failure keeps the old config running
                self._refused(error)
                return
            if self._stop.is_set():
                fresh.close()
                return
            self._use(fresh)

    def _refused(self, error: Exception) -> None:
        """The old config runs on; why the new one did not is logged."""
        log.error(
            "reload refused, still running the previous config: %s",
            _refusal(error),
            exc_info=not isinstance(error, AppreciateError | SQLAlchemyError),
        )
        self.notifier.ready()

    def _use(self, fresh: Service) -> None:
        """Run on `fresh` (the new config) from now on. The opt-out spool stays the one the
        service started with: the unsubscribe page, which a reload does not restart, writes
        there."""
        fresh.spool = self.service.spool
        old, self.service = self.service, fresh
        self._schedule()
        if self._delivery is None:
            old.close()
        else:  # the delivery under way keeps its engine; closed connections reopen
            asyncio.get_running_loop().call_later(60, old.close)
        log.info("reloaded %s and the templates", self.config_path)
        log_template_findings(fresh, "on reload")
        self.notifier.ready()

    async def _shut_down(self) -> None:
        """No new jobs; the ones under way get `stop_within` (the delivery has been told to
        claim nothing more), then are stopped; this instance's leases are released."""
        if self._timer is not None:
            self._timer.pause()  # shutdown() would cancel the jobs under way at once
        if self._companion is not None:
            await self._companion.stop()
        if self._running:
            bound = _seconds(self.service.config.settings.schedule.stop_within)
            _, late = await asyncio.wait(set(self._running), timeout=bound)
            if late:
                log.warning("sends still under way after %.0f s: stopping them", bound)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        if self._timer is not None:
            self._timer.shutdown(wait=False)
        released, unknown = release_held(self.service.engine, self.owner, self.clock)
        log.info(
            "stopped: %s; %d notes released for the next run, %d unknown",
            self.totals.line(),
            released,
            unknown,
        )
        self.service.close()


def reap_every(settings: Settings) -> timedelta:
    """Leases are checked twice per lease (at most every REAP_EVERY), so notes held by an
    instance that died go to another within about one and a half leases."""
    return min(settings.smtp.lease / 2, REAP_EVERY)


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


def _refusal(error: Exception) -> str:
    """Why a reload was refused, in words: the config's errors, or the store's (the driver's
    first line, never a statement or its values)."""
    store = store_failure(error)
    if store is not None:
        return f"the store could not be used: {store}"
    if isinstance(error, AppreciateError):
        return str(error)
    return f"{type(error).__name__}: {_one_line(error)}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500]
