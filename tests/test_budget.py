"""The daily budget: the most valuable customers' notes first, the rest deferred to the next day
(or expired when too late), each with its reason; as a pure rule, on both databases, and as
`appreciate plan` shows it."""

from __future__ import annotations

import functools
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from scheduler.config.settings import Settings
from scheduler.delivery.claims import claim
from scheduler.delivery.daily_budget import apply_budget
from scheduler.occasions.budget import BudgetNote, BudgetPlan, plan_budget
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.test_detection import SETTINGS, add_customer, add_ltv_run

touches = metadata.tables["touches"]
LONDON = ZoneInfo("Europe/London")
DAY = date(2027, 6, 15)
MORNING = datetime(2027, 6, 15, 8, 0, tzinfo=UTC)  # 09:00 in London
HOUR = timedelta(hours=1)


def note(
    touch_id: int, value: str, last_day: date | None = DAY, due: datetime = MORNING
) -> BudgetNote:
    return BudgetNote(touch_id, Decimal(value), due, last_day)


def plan(notes: list[BudgetNote], budget: int, taken: int = 0) -> BudgetPlan:
    return plan_budget(notes, budget=budget, taken=taken, first_day=DAY)


def today_and_later(result: BudgetPlan) -> tuple[list[int], list[int]]:
    """(the notes sent on the first day, the others that go later), in touch order."""
    first = sorted(t for t, day in result.days.items() if day == DAY)
    later = sorted(t for t, day in result.days.items() if day != DAY)
    return first, later


def test_the_budget_goes_to_the_most_valuable_customers_first() -> None:
    due = [note(1, "10.00"), note(2, "900.00"), note(3, "55.50"), note(4, "300.00")]
    result = plan(due, budget=2)
    assert today_and_later(result) == ([2, 4], [])
    assert result.expired == (1, 3)


def test_notes_that_can_wait_go_on_a_later_day_instead_of_expiring() -> None:
    week = DAY + timedelta(days=6)
    due = [note(1, "10.00", week), note(2, "900.00", week), note(3, "55.50", week)]
    result = plan(due, budget=2)
    assert today_and_later(result) == ([2, 3], [1])
    assert result.days[1] == DAY + timedelta(days=1)
    assert result.expired == ()


def test_a_birthday_worth_nothing_goes_before_it_expires_when_order_thanks_can_wait() -> None:
    """The first week's defect: ranking by value alone deferred a worth-0.00 customer's
    birthday (3 days' lateness) until it expired, while notes that could wait a week took
    every slot. Every note fits in time, so every note goes."""
    week, birthday_last_day = DAY + timedelta(days=6), DAY + timedelta(days=2)
    thanks = [note(n, "400.00", week) for n in range(1, 6)]
    birthday = note(9, "0.00", birthday_last_day)
    result = plan([*thanks, birthday], budget=1)
    assert result.expired == ()
    assert result.days[9] <= birthday_last_day
    assert sorted(result.days.values()) == [DAY + timedelta(days=n) for n in range(6)]


def test_equal_values_go_to_the_note_that_cannot_wait_as_long_then_to_the_older() -> None:
    """The first week's defect: a tie deferred a birthday on its own day while a 6-day-old
    order thanks (which could still wait a day) went out."""
    birthday = note(1, "50.00", last_day=DAY + timedelta(days=3))
    old_thanks = note(2, "50.00", last_day=DAY + timedelta(days=1), due=MORNING - timedelta(6))
    result = plan([birthday, old_thanks], budget=1)
    assert result.days == {2: DAY, 1: DAY + timedelta(days=1)}
    same_last_day = note(3, "50.00", last_day=DAY + timedelta(days=1))
    assert plan([same_last_day, old_thanks], budget=1).days == {
        2: DAY,  # due earlier
        3: DAY + timedelta(days=1),
    }


def test_the_most_valuable_go_first_when_all_are_in_time() -> None:
    tomorrow = DAY + timedelta(days=1)
    due = [note(1, "1.00", tomorrow), note(2, "100.00", tomorrow), note(3, "50.00", None)]
    assert plan(due, budget=1).days == {2: DAY, 1: tomorrow, 3: DAY + timedelta(days=2)}


def test_notes_already_sent_today_count_against_the_budget() -> None:
    due = [note(1, "10.00"), note(2, "20.00"), note(3, "30.00")]
    assert today_and_later(plan(due, budget=3, taken=2)) == ([3], [])
    assert today_and_later(plan(due, budget=3, taken=5)) == ([], [])


def test_no_budget_means_every_note_goes() -> None:
    due = [note(n, "1.00") for n in range(1, 6)]
    assert today_and_later(plan(due, budget=0)) == ([1, 2, 3, 4, 5], [])


def test_a_note_that_never_becomes_too_late_is_never_dropped() -> None:
    due = [note(n, "100.00") for n in range(1, 4)] + [note(9, "1.00", last_day=None)]
    result = plan(due, budget=1)
    assert result.days[9] == DAY + timedelta(days=1)  # the others are too late after today
    assert result.expired == (2, 3)


def test_a_note_already_too_late_expires() -> None:
    result = plan([note(1, "999.00", last_day=DAY - timedelta(days=1))], budget=5)
    assert result.expired == (1,)


@st.composite
def budget_problems(draw: st.DrawFn) -> tuple[list[BudgetNote], int, int]:
    count = draw(st.integers(0, 7))
    notes = [
        note(
            touch_id,
            str(draw(st.sampled_from([0, 1, 5, 10, 50, 120]))),
            draw(st.one_of(st.none(), st.integers(-1, 3).map(lambda d: DAY + timedelta(d)))),
            MORNING + timedelta(minutes=draw(st.integers(0, 3))),
        )
        for touch_id in range(1, count + 1)
    ]
    return notes, draw(st.integers(1, 3)), draw(st.integers(0, 3))


def best_total(notes: list[BudgetNote], budget: int, taken: int) -> Decimal:
    """The most value any assignment of notes to days sends in time: every choice for every
    note (no day, or any day it is in time on), tried one note after another."""
    open_ended = DAY + timedelta(days=len(notes) + 1)
    room = {DAY: max(budget - taken, 0)}

    @functools.cache
    def best(index: int, used: frozenset[tuple[date, int]]) -> Decimal:
        if index == len(notes):
            return Decimal(0)
        found = best(index + 1, used)  # this note not sent
        counts = dict(used)
        current = notes[index]
        for offset in range(((current.last_day or open_ended) - DAY).days + 1):
            day = DAY + timedelta(days=offset)
            if counts.get(day, 0) < room.get(day, budget):
                more = frozenset({**counts, day: counts.get(day, 0) + 1}.items())
                found = max(found, current.value + best(index + 1, more))
        return found

    return best(0, frozenset())


@given(budget_problems())
def test_no_other_assignment_sends_more_value_in_time(
    problem: tuple[list[BudgetNote], int, int],
) -> None:
    notes, budget, taken = problem
    result = plan(notes, budget=budget, taken=taken)
    by_id = {n.touch_id: n for n in notes}
    used = Counter(result.days.values())
    for day, count in used.items():  # every day within its budget
        assert count <= (max(budget - taken, 0) if day == DAY else budget)
    for touch_id, day in result.days.items():  # every note in time
        last_day = by_id[touch_id].last_day
        assert day >= DAY
        assert last_day is None or day <= last_day
    assert set(result.days) | set(result.expired) == set(by_id)
    sent = sum((by_id[t].value for t in result.days), Decimal(0))
    assert sent == best_total(notes, budget, taken)
    for day in result.days.values():  # no kept note waits while an earlier day has room
        for earlier in range((day - DAY).days):
            free = (max(budget - taken, 0) if earlier == 0 else budget) - used[
                DAY + timedelta(earlier)
            ]
            assert free <= 0


def with_budget(budget: int) -> Settings:
    return SETTINGS.model_copy(
        update={"schedule": SETTINGS.schedule.model_copy(update={"daily_budget": budget})}
    )


def add_touch(
    engine: Engine,
    customer_id: int,
    key: str,
    status: str = "pending",
    kind: str = "order_thanks",
    lateness: timedelta = timedelta(days=7),
) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind=kind,
                occasion_key=key,
                status=status,
                due_at=MORNING,
                expires_at=MORNING + lateness,
                sent_at=MORNING if status == "sent" else None,
                updated_at=MORNING,
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


def statuses(engine: Engine) -> dict[str, tuple[str, datetime | None]]:
    """Each note's status, and the moment the budget planned it for (None: when due)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(touches.c.occasion_key, touches.c.status, touches.c.planned_at)
        )
        return {key: (status, planned_at) for key, status, planned_at in rows}


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
    tomorrow = datetime(2027, 6, 16, 8, 0, tzinfo=UTC)  # 09:00 in London, the window opening
    assert statuses(engine) == {
        "order:D": ("sent", None),
        "order:R": ("pending", None),
        "order:M": ("deferred", tomorrow),
        "order:U": ("deferred", tomorrow),
    }
    with engine.connect() as connection:  # the note keeps its own due time and says why
        due_at, reason = connection.execute(
            select(touches.c.due_at, touches.c.reason).where(touches.c.occasion_key == "order:M")
        ).one()
    assert due_at == MORNING
    assert reason == (
        "the daily budget of 2 notes for 2027-06-15 went to notes worth more or that cannot "
        "wait as long (this one is worth 40.00); planned for 2027-06-16"
    )
    with engine.begin() as connection:  # nothing can be claimed before its planned moment
        assert [t.occasion_key for t in claim(connection, "me", MORNING, HOUR, 10)] == ["order:R"]
        assert claim(connection, "me", tomorrow - timedelta(seconds=1), HOUR, 10) == []
        connection.execute(
            touches.update()
            .where(touches.c.occasion_key == "order:R")
            .values(status="sent", sent_at=MORNING)
        )
    with engine.begin() as connection:  # the next day, the rest fit
        again = apply_budget(connection, with_budget(2), tomorrow)
    assert (again.taken, again.kept, again.deferred) == (0, 2, 0)
    assert statuses(engine)["order:M"] == ("pending", None)
    with engine.begin() as connection:
        taken = {t.occasion_key for t in claim(connection, "me", tomorrow, HOUR, 10)}
    assert taken == {"order:M", "order:U"}


def test_a_birthday_worth_nothing_is_sent_before_it_expires(engine: Engine) -> None:
    """The first week's defect on a real store: with a budget of 1, five valuable customers'
    order thanks (7 days' lateness) kept a worth-0.00 customer's birthday (3 days) from going
    until it expired."""
    zero = add_customer(engine, "C-0")
    add_touch(engine, zero, "birthday:2027", kind="birthday", lateness=timedelta(days=3))
    for number in range(1, 6):
        who = add_customer(engine, f"C-{number}")
        add_value(engine, who, "500.00")
        add_touch(engine, who, f"order:{number}")
    sent: dict[str, date] = {}
    for day in range(8):
        moment = MORNING + timedelta(days=day)
        with engine.begin() as connection:
            apply_budget(connection, with_budget(1), moment)
            for touch in claim(connection, "me", moment, HOUR, 10):
                sent[touch.occasion_key] = moment.date()
                connection.execute(
                    touches.update()
                    .where(touches.c.id == touch.id)
                    .values(status="sent", sent_at=moment)
                )
    assert sent["birthday:2027"] <= DAY + timedelta(days=3)
    assert len(sent) == 6  # nothing expired
    assert len(set(sent.values())) == 6  # one a day


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
    now = ("--now", "2027-06-15T07:00:00Z")
    result = run_cli("--config", config, "plan", *now, "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["budget"] == {"daily_budget": 2, "already_taken": 0, "deferred": 1, "expired": 0}
    by_customer = {line["customer"]: line for line in plan["notes"]}
    assert by_customer["C-0"]["status"] == by_customer["C-2"]["status"] == "pending"
    assert by_customer["C-1"]["status"] == "deferred"
    reason = by_customer["C-1"]["reason"]
    assert reason.endswith("(this one is worth 20.00); planned for 2027-06-16")
    assert by_customer["C-1"]["send_at"] == "2027-06-16T08:00:00+00:00"
    table = run_cli("--config", config, "plan", *now)
    assert "Plan for 2027-06-15: 2 to send (1 deferred)" in table.stdout
    assert "The daily budget of 2 notes moves 1 to later days and lets 0 expire" in table.stdout
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        assert {status for status, _ in statuses(engine).values()} == {"pending"}
    finally:
        engine.dispose()
