"""How long to wait before trying again: a first wait, doubled after each failure in a row, up
to a longest. A leaf: the sender's retries, the shared throttle back-off and the service's
job retries all wait this way.
"""

from __future__ import annotations

from datetime import timedelta


def doubled_wait(first: timedelta, failures: int, longest: timedelta) -> timedelta:
    """`first` after one failure, twice as long after each further one in a row, at most
    `longest`, however many failures there were (no overflow: computed in float seconds)."""
    doubled = first.total_seconds() * 2.0 ** min(max(failures, 1) - 1, 64)
    return timedelta(seconds=min(doubled, longest.total_seconds()))
