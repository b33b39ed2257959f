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


def setup_logging(environ: dict[str, str] | None = None) -> None:
    """One line per event on stderr; priority prefixes when journald reads it, timestamps when
    a person does (journald adds its own)."""
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(sys.stderr)
    if env.get("JOURNAL_STREAM") or env.get("NOTIFY_SOCKET"):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("appreciate")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
