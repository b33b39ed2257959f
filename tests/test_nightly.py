"""The nightly lifetime-value refresh runs at `recompute_at`, business time, DST included."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from scheduler.config.settings import LtvSettings
from scheduler.service.nightly import nightly_refresh, refresh_trigger
from scheduler.store.models import metadata
from tests.test_detection import SETTINGS, add_customer


def next_run(recompute_at: str, after: datetime) -> datetime | None:
    settings = SETTINGS.model_copy(update={"ltv": LtvSettings(recompute_at=recompute_at)})
    fire: datetime | None = refresh_trigger(settings).get_next_fire_time(None, after)
    return None if fire is None else fire.astimezone(UTC)


def test_the_refresh_runs_at_three_in_the_morning_business_time() -> None:
    winter = next_run("03:00", datetime(2027, 1, 10, 12, tzinfo=UTC))
    summer = next_run("03:00", datetime(2027, 7, 10, 12, tzinfo=UTC))
    assert winter == datetime(2027, 1, 11, 3, tzinfo=UTC)  # GMT
    assert summer == datetime(2027, 7, 11, 2, tzinfo=UTC)  # BST


def test_a_time_the_clocks_skip_runs_once_after_the_change() -> None:
    # London skips 01:00-02:00 on 2027-03-28: "01:30" runs at 02:30 BST that night
    fire = next_run("01:30", datetime(2027, 3, 27, 12, tzinfo=UTC))
    assert fire == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    following = next_run("01:30", datetime(2027, 3, 28, 2, tzinfo=UTC))
    assert following == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)


def test_a_nightly_run_stores_scores_and_says_so(engine: Engine) -> None:
    add_customer(engine, "C-1")
    line = nightly_refresh(engine, SETTINGS, datetime(2027, 6, 16, 2, tzinfo=UTC))
    assert line.startswith("lifetime values refreshed for 1 customer as of 2027-06-16: simple:")
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(metadata.tables["customer_values"])
        ).scalar_one()
    assert count == 1
