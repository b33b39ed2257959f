"""`store.utc_text.sqlite_utc_text` writes what `isoformat` wrote before it: the UTC moment as
`YYYY-MM-DD HH:MM:SS.ffffff`, whatever the moment's own offset; naive moments are refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduler.store.utc_text import sqlite_utc_text

EDGES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2027, 6, 15, 10, 0, tzinfo=UTC),
    datetime(2027, 6, 15, 10, 0, 0, 1, tzinfo=UTC),
    datetime(2027, 3, 28, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]


def expected(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")[:26]


def test_the_text_is_isoformats_for_edges_and_random_moments() -> None:
    rng = random.Random(13)
    start = datetime(1900, 1, 1, tzinfo=UTC)
    moments = EDGES + [
        (start + timedelta(microseconds=rng.randrange(10**17))).astimezone(
            timezone(timedelta(minutes=rng.randrange(-12 * 60, 14 * 60)))
        )
        for _ in range(2_000)
    ]
    for moment in moments:
        assert sqlite_utc_text(moment) == expected(moment)
    assert sqlite_utc_text(None) is None


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2027, 6, 15, 10, 0))  # noqa: DTZ001 - the point of the test
