"""The daily budget: the most valuable customers' notes first, the rest deferred to the next day
(or expired when too late), each with its reason; as a pure rule, on both databases, and as
`appreciate plan` shows it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select

from scheduler.daily_budget import apply_budget
from scheduler.occasions.budget import DueNote, spend_budget
from scheduler.occasions.timing import SendWindow
from scheduler.settings import ScheduleSettings, Settings
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.test_detection import SETTINGS, add_customer, add_ltv_run

touches = metadata.tables["touches"]
LONDON = ZoneInfo("Europe/London")
DAY = date(2027, 6, 15)
MORNING = datetime(2027, 6, 15, 8, 0, tzinfo=UTC)  # 09:00 in London
NEXT_DAY = datetime(2027, 6, 15, 23, 0, tzinfo=UTC)  # midnight in London
WINDOW = SendWindow.from_settings(ScheduleSettings())


def note(
    touch_id: int, value: str, due: datetime = MORNING, expires: datetime | None = None
) -> DueNote:
    return DueNote(touch_id, touch_id, due, expires, Decimal(value), LONDON)


def cut(due: list[DueNote], budget: int, taken: int = 0) -> tuple[list[int], list[int]]:
    result = spend_budget(
        due, budget=budget, taken=taken, day=DAY, next_day_opens=NEXT_DAY, window=WINDOW
    )
    return [n.touch_id for n in result.kept], [m.note.touch_id for m in result.moved]


def test_the_budget_goes_to_the_most_valuable_customers_first() -> None:
    due = [note(1, "10.00"), note(2, "900.00"), note(3, "55.50"), note(4, "300.00")]
    assert cut(due, budget=2) == ([2, 4], [3, 1])


def test_equal_values_go_by_due_time_then_by_the_older_touch() -> None:
    later = MORNING + timedelta(hours=1)
    due = [note(3, "50.00"), note(1, "50.00", due=later), note(2, "50.00")]
    assert cut(due, budget=2) == ([2, 3], [1])


def test_notes_already_sent_today_count_against_the_budget() -> None:
    due = [note(1, "10.00"), note(2, "20.00"), note(3, "30.00")]
    assert cut(due, budget=3, taken=2) == ([3], [2, 1])
    assert cut(due, budget=3, taken=5) == ([], [3, 2, 1])


def test_no_budget_means_every_note_goes() -> None:
    due = [note(n, "1.00") for n in range(1, 6)]
    assert cut(due, budget=0) == ([1, 2, 3, 4, 5], [])


def test_a_deferred_note_goes_when_the_next_days_window_opens_and_says_why() -> None:
    result = spend_budget(
        [note(1, "900.00"), note(2, "12.50")],
        budget=1,
        taken=0,
        day=DAY,
        next_day_opens=NEXT_DAY,
        window=WINDOW,
    )
    (moved,) = result.moved
    assert moved.send_at == datetime(2027, 6, 16, 8, 0, tzinfo=UTC)  # 09:00 in London
    assert moved.reason == (
        "the budget of 1 notes for 2027-06-15 was spent on customers of higher value (this one "
        "is worth 12.50; the last note that fitted went to one worth 900.00); deferred to the "
        "next day"
    )


def test_a_note_the_deferral_would_make_too_late_expires_instead() -> None:
    result = spend_budget(
        [note(1, "900.00"), note(2, "12.50", expires=MORNING + timedelta(hours=20))],
        budget=1,
        taken=0,
        day=DAY,
        next_day_opens=NEXT_DAY,
        window=WINDOW,
    )
    (moved,) = result.moved
    assert moved.send_at is None
    assert moved.reason.endswith("until it was too late to send")


def with_budget(budget: int) -> Settings:
    return SETTINGS.model_copy(
        update={"schedule": SETTINGS.schedule.model_copy(update={"daily_budget": budget})}
    )


def add_touch(engine: Engine, customer_id: int, key: str, status: str = "pending") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind="order_thanks",
                occasion_key=key,
                status=status,
                due_at=MORNING,
                expires_at=MORNING + timedelta(days=7),
                sent_at=MORNING if status == "sent" else None,
            )
        )


def add_value(engine: Engine, customer_id: int, total: str) -> None:
    with engine.begin() as connection:
        run = add_ltv_run(connection)
        connection.execute(
            insert(metadata.tables["customer_values"]).values(
                customer_id=customer_id,
                run_id=run,
                historical=Decimal(total),
                predicted=Decimal(0),
                referral=Decimal(0),
                total=Decimal(total),
                tier="regular",
            )
        )


def statuses(engine: Engine) -> dict[str, tuple[str, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(touches.c.occasion_key, touches.c.status, touches.c.due_at)
        )
        return {key: (status, due_at) for key, status, due_at in rows}


def test_the_store_keeps_the_day_within_budget_most_valuable_first(engine: Engine) -> None:
    rich, modest, unvalued, done = (add_customer(engine, f"C-{n}") for n in range(1, 5))
    add_value(engine, rich, "800.00")
    add_value(engine, modest, "40.00")
    for who, key in ((rich, "order:R"), (modest, "order:M"), (unvalued, "order:U")):
        add_touch(engine, who, key)
    add_touch(engine, done, "order:D", status="sent")
    with engine.begin() as connection:
        report = apply_budget(connection, with_budget(2), MORNING)
    assert (report.taken, report.kept, report.deferred, report.expired) == (1, 1, 2, 0)
    tomorrow = datetime(2027, 6, 16, 8, 0, tzinfo=UTC)
    assert statuses(engine) == {
        "order:D": ("sent", MORNING),
        "order:R": ("pending", MORNING),
        "order:M": ("deferred", tomorrow),
        "order:U": ("deferred", tomorrow),
    }
    with engine.begin() as connection:  # the day's note went; the next day, the rest fit
        connection.execute(
            touches.update()
            .where(touches.c.occasion_key == "order:R")
            .values(status="sent", sent_at=MORNING)
        )
    with engine.begin() as connection:
        again = apply_budget(connection, with_budget(2), tomorrow)
    assert (again.taken, again.kept, again.deferred) == (0, 2, 0)


def test_without_a_budget_the_outbox_is_left_alone(engine: Engine) -> None:
    for number in range(3):
        add_touch(engine, add_customer(engine, f"C-{number}"), f"order:{number}")
    with engine.begin() as connection:
        report = apply_budget(connection, SETTINGS, MORNING)
    assert report.deferred == report.expired == 0
    assert {status for status, _ in statuses(engine).values()} == {"pending"}


def test_plan_shows_the_budget_cut_and_writes_nothing(migrated_workspace: Workspace) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        for number, total in enumerate(("500.00", "20.00", "90.00")):
            who = add_customer(engine, f"C-{number}")
            add_value(engine, who, total)
            add_touch(engine, who, f"order:{number}")
    finally:
        engine.dispose()
    config = migrated_workspace.path
    text = config.read_text(encoding="utf-8") + "\n[schedule]\ndaily_budget = 2\n"
    config.write_text(text, encoding="utf-8")
    result = run_cli("--config", config, "plan", "--date", "2027-06-15", "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["budget"] == {"daily_budget": 2, "already_taken": 0, "deferred": 1, "expired": 0}
    by_customer = {line["customer"]: line for line in plan["notes"]}
    assert by_customer["C-0"]["status"] == by_customer["C-2"]["status"] == "pending"
    assert by_customer["C-1"]["status"] == "deferred"
    assert "spent on customers of higher value" in by_customer["C-1"]["reason"]
    table = run_cli("--config", config, "plan", "--date", "2027-06-15")
    assert "Plan for 2027-06-15: 2 to send" in table.stdout
    assert "The daily budget of 2 notes moves 1 to the next day" in table.stdout
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        assert {status for status, _ in statuses(engine).values()} == {"pending"}
    finally:
        engine.dispose()
