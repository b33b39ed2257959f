"""How the service logs: one line per event on stderr, read by journald under systemd.

Its own module so that commands other than `run` start without loading `logging`.
"""

from __future__ import annotations

import logging
import os
import sys

SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """`<priority>message`, which journald reads as the line's priority (sd-daemon(3))."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{SYSLOG_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def skipped_run(record: logging.LogRecord) -> bool:
    """Whether `record` is APScheduler's notice that a job's run was skipped, its last run
    being still under way: with `max_instances=1` that is the design, not news (a long
    delivery would log it at every `deliver_every`)."""
    from_timer = record.name.startswith("apscheduler")
    return from_timer and "maximum number of running instances" in str(record.msg)


def setup_logging(environ: dict[str, str] | None = None) -> None:
    """One line per event on stderr; priority prefixes when journald reads it, timestamps when
    a person does (journald adds its own). The timer's (APScheduler's) warnings go the same
    way, but for `skipped_run`."""
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(sys.stderr)
    if env.get("JOURNAL_STREAM") or env.get("NOTIFY_SOCKET"):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(lambda record: not skipped_run(record))
    for name, level in (("appreciate", logging.INFO), ("apscheduler", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
