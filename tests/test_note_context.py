"""Note contexts and unsubscribe tokens against a real store (SQLite and PostgreSQL): what each
kind's context holds, a few queries per batch, and tokens made once even when senders race."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select

from scheduler.config.settings import Settings
from scheduler.notes import unsubscribe
from scheduler.notes.note_context import PREVIEW_TOKEN, TouchRef, build_contexts, whole_years
from scheduler.notes.render import NoteRenderer
from scheduler.notes.unsubscribe import tokens_for, unsubscribe_link
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from tests.conftest import adas_bakery
from tests.test_detection import add_customer, add_ltv_run, add_order

touches = metadata.tables["touches"]
tokens_table = metadata.tables["unsubscribe_tokens"]
TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2027, 6, 15, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
SETTINGS = Settings(
    business=adas_bakery(
        review_url="https://g.page/r/ada/review",
        unsubscribe_url="https://ada.example/unsubscribe?t={token}",
    )
)
TEMPLATES = Path(__file__).parent.parent / "templates"


def add_touch(engine: Engine, customer_id: int, kind: str, key: str, due_at: datetime) -> TouchRef:
    with engine.begin() as connection:
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind=kind,
                occasion_key=key,
                status="pending",
                due_at=due_at,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return TouchRef(touch_id, customer_id, kind, key, due_at)


def contexts_for(
    engine: Engine, refs: list[TouchRef], settings: Settings = SETTINGS, **options: Any
) -> dict[int, dict[str, Any]]:
    with write_transaction(engine) as connection:
        return build_contexts(connection, refs, settings, now=NOW, **options)


def token_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        count: int = connection.execute(select(func.count()).select_from(tokens_table)).scalar_one()
    return count


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def story(engine: Engine) -> dict[str, TouchRef]:
    """Ann (in Tokyo) with an order, a friend she referred, meetings and a score; Bob, the
    friend, with a birthday without a year; and one touch of each kind."""
    ann = add_customer(
        engine,
        "C-1",
        name="Ann Lee",
        timezone="Asia/Tokyo",
        birth_year=1990,
        birth_month=6,
        birth_day=15,
        customer_since=date(2020, 6, 16),
        first_met_on=date(2027, 6, 10),
        attributes={"preferred_name": "Annie", "pet_name": "Rex"},
    )
    bob = add_customer(
        engine,
        "C-2",
        name="Robert Stone",
        birth_month=6,
        birth_day=15,
        attributes={"pet_name": "Tess"},
    )
    add_order(
        engine,
        "A-1",
        ann,
        datetime(2027, 6, 14, 23, 30, tzinfo=UTC),
        amount=Decimal("42.5"),
        description="a lemon cake",
    )
    add_order(engine, "B-1", bob, datetime(2027, 6, 1, tzinfo=UTC), amount=Decimal("5"))
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["referrals"]).values(
                referrer_id=ann, referred_id=bob, referred_on=date(2027, 6, 1)
            )
        )
        meetings = metadata.tables["meetings"]
        for moment in (datetime(2027, 6, 12, 1, tzinfo=UTC), datetime(2027, 6, 13, tzinfo=UTC)):
            connection.execute(insert(meetings).values(customer_id=ann, met_at=moment))
        run_id = add_ltv_run(connection)
        connection.execute(
            insert(metadata.tables["customer_values"]).values(
                customer_id=ann,
                run_id=run_id,
                historical=Decimal("1000"),
                predicted=Decimal("200"),
                referral=Decimal("34.5"),
                total=Decimal("1234.5"),
                tier="vip",
            )
        )
    due = datetime(2027, 6, 15, tzinfo=UTC)  # 09:00 in Tokyo
    return {
        "birthday": add_touch(engine, ann, "birthday", "birthday:2027", due),
        "order_thanks": add_touch(engine, ann, "order_thanks", "order:A-1", due),
        "follow_up": add_touch(engine, ann, "follow_up", "follow_up:A-1", due + timedelta(days=14)),
        "referral_thanks": add_touch(engine, ann, "referral_thanks", "referral:C-2", due),
        "first_meeting": add_touch(engine, ann, "first_meeting", "first_meeting", due),
        "anniversary": add_touch(
            engine, ann, "anniversary", "anniversary:7", due + timedelta(days=1)
        ),
        "check_in": add_touch(engine, ann, "check_in", "check_in:2027-06", due),
        "bob_birthday": add_touch(engine, bob, "birthday", "birthday:2027", due),
        "not_ours": add_touch(engine, bob, "order_thanks", "order:A-1", due),
    }


def test_each_kind_gets_its_facts_in_the_customers_own_zone(
    engine: Engine, story: dict[str, TouchRef]
) -> None:
    found = contexts_for(engine, list(story.values()))
    birthday = found[story["birthday"].id]
    token = tokens_for_one(engine, story["birthday"].customer_id)
    assert birthday == {
        "customer": {
            "id": "C-1",
            "name": "Ann Lee",
            "first_name": "Annie",
            "email": "c-1@example.com",
            "birthday": date(1990, 6, 15),
            "customer_since": date(2020, 6, 16),
            "years_as_customer": 6,
            "attributes": {"preferred_name": "Annie", "pet_name": "Rex"},
        },
        "business": {
            "name": "Ada's Bakery",
            "sender_name": "Ada",
            "sender_email": "ada@example.com",
            "review_url": "https://g.page/r/ada/review",
            "timezone": "Europe/London",
        },
        "ltv": {"tier": "vip", "total": "1234.50", "historical": "1000.00"},
        "occasion": {
            "kind": "birthday",
            "key": "birthday:2027",
            "due_date": date(2027, 6, 15),
            "sent_on": date(2027, 6, 15),
            "age": 37,
        },
        "unsubscribe_url": f"https://ada.example/unsubscribe?t={token}",
    }
    order = {
        "id": "A-1",
        "placed_at": datetime(2027, 6, 15, 8, 30, tzinfo=TOKYO),
        "amount": "42.50",
        "description": "a lemon cake",
    }
    assert found[story["order_thanks"].id]["order"] == order
    assert found[story["follow_up"].id]["order"] == order
    assert str(found[story["order_thanks"].id]["order"]["placed_at"].tzinfo) == "Asia/Tokyo"
    assert found[story["referral_thanks"].id]["referral"] == {
        "referred": {
            "name": "Robert Stone",
            "first_name": "Robert",
            "attributes": {"pet_name": "Tess"},
        },
        "referred_on": date(2027, 6, 1),
    }
    assert found[story["first_meeting"].id]["meeting"] == {"met_on": date(2027, 6, 10)}
    anniversary = found[story["anniversary"].id]
    assert anniversary["occasion"]["years"] == 7
    assert anniversary["customer"]["years_as_customer"] == 7
    assert found[story["check_in"].id]["occasion"]["key"] == "check_in:2027-06"
    bob = found[story["bob_birthday"].id]
    assert bob["occasion"]["age"] is None
    assert bob["customer"]["birthday"] is None
    assert bob["customer"]["years_as_customer"] is None
    assert bob["ltv"] == {"tier": None, "total": None, "historical": None}
    assert found[story["not_ours"].id]["order"] is None  # A-1 is Ann's, not Bob's
    for kind in ("birthday", "anniversary", "check_in"):
        assert "order" not in found[story[kind].id]


def tokens_for_one(engine: Engine, customer_id: int) -> str:
    with write_transaction(engine) as connection:
        return tokens_for(connection, [customer_id])[customer_id]


def test_contexts_hold_plain_values_only(engine: Engine, story: dict[str, TouchRef]) -> None:
    allowed = (str, int, date, type(None))

    def check(value: Any, path: str) -> None:
        if isinstance(value, dict):
            assert type(value) is dict, path
            for key, item in value.items():
                assert type(key) is str
                check(item, f"{path}.{key}")
        elif isinstance(value, list):
            assert type(value) is list, path
            for index, item in enumerate(value):
                check(item, f"{path}[{index}]")
        else:
            assert isinstance(value, allowed), (path, value)
            assert not isinstance(value, bool), path

    for context in contexts_for(engine, list(story.values())).values():
        check(context, "context")


def test_every_starter_template_writes_from_a_real_context(
    engine: Engine, story: dict[str, TouchRef]
) -> None:
    found = contexts_for(engine, list(story.values()))
    renderer = NoteRenderer(TEMPLATES)
    for name, touch in story.items():
        if name == "not_ours":
            continue
        context = found[touch.id]
        note = renderer.render(touch.kind, context["ltv"]["tier"], context)  # type: ignore[arg-type]
        assert "None" not in note.text, name
        assert note.text.startswith("Hi Annie,") or note.text.startswith("Hi Robert,")
        assert "https://ada.example/unsubscribe?t=" in note.text
    vip = renderer.render("birthday", "vip", found[story["birthday"].id])
    assert vip.template == "birthday.vip.j2"
    referral = renderer.render("referral_thanks", "vip", found[story["referral_thanks"].id])
    assert "Robert came to us on your recommendation." in referral.text


def test_a_batch_costs_a_few_queries_however_many_touches(engine: Engine) -> None:
    refs = []
    due = datetime(2027, 6, 15, 9, tzinfo=UTC)
    for number in range(100):
        who = add_customer(engine, f"C-{number}", birth_month=6, birth_day=15)
        add_order(engine, f"A-{number}", who, due - timedelta(hours=3), amount=Decimal("10"))
        refs.append(add_touch(engine, who, "birthday", "birthday:2027", due))
        refs.append(add_touch(engine, who, "order_thanks", f"order:A-{number}", due))
        refs.append(add_touch(engine, who, "follow_up", f"follow_up:A-{number}", due))
    with counted_statements(engine) as first:
        one = contexts_for(engine, refs[:1])
    with counted_statements(engine) as creating:
        found = contexts_for(engine, refs)
    with counted_statements(engine) as reading:
        again = contexts_for(engine, refs)
    assert len(found) == 300
    assert found == again
    assert all(context["order"] is not None for context in found.values() if "order" in context)
    assert len(one) == 1
    # customers, orders, lifetime values, tokens (read, create, read back), and BEGIN on SQLite
    assert len(first) <= 8
    assert len(creating) <= 8
    assert len(reading) <= 6
    assert token_rows(engine) == 100


def test_more_than_a_batch_is_read_in_batches(engine: Engine) -> None:
    who = add_customer(engine, "C-1")
    due = datetime(2027, 6, 15, 9, tzinfo=UTC)
    refs = [TouchRef(n, who, "check_in", f"check_in:{2000 + n}-01", due) for n in range(1, 1201)]
    with counted_statements(engine) as statements:
        found = contexts_for(engine, refs)
    assert len(found) == 1200
    assert len(statements) <= 3 * 4 + 1  # three batches of at most four statements


def test_without_an_unsubscribe_url_no_token_is_made(
    engine: Engine, story: dict[str, TouchRef]
) -> None:
    plain = Settings(business=SETTINGS.business.model_copy(update={"unsubscribe_url": ""}))
    found = contexts_for(engine, [story["birthday"]], plain)
    assert found[story["birthday"].id]["unsubscribe_url"] is None
    assert token_rows(engine) == 0


def test_a_preview_writes_nothing_and_shows_a_placeholder(
    engine: Engine, story: dict[str, TouchRef]
) -> None:
    found = contexts_for(engine, [story["birthday"]], create_tokens=False)
    assert found[story["birthday"].id]["unsubscribe_url"] == (
        f"https://ada.example/unsubscribe?t={PREVIEW_TOKEN}"
    )
    assert token_rows(engine) == 0
    made = tokens_for_one(engine, story["birthday"].customer_id)
    found = contexts_for(engine, [story["birthday"]], create_tokens=False)
    assert found[story["birthday"].id]["unsubscribe_url"].endswith(f"?t={made}")


def test_a_touch_whose_customer_is_gone_is_left_out(engine: Engine) -> None:
    ghost = TouchRef(1, 999, "birthday", "birthday:2027", NOW)
    assert contexts_for(engine, [ghost]) == {}


def test_whole_years_count_the_anniversary_day_by_the_feb29_policy() -> None:
    leap = date(2024, 2, 29)
    assert whole_years(leap, date(2025, 2, 27)) == 0
    assert whole_years(leap, date(2025, 2, 28)) == 1
    assert whole_years(leap, date(2025, 2, 28), "mar1") == 0
    assert whole_years(leap, date(2025, 3, 1), "mar1") == 1
    assert whole_years(date(2030, 1, 1), date(2027, 1, 1)) == 0


# Unsubscribe tokens -------------------------------------------------------------------------


def test_a_token_is_made_once_and_kept(engine: Engine) -> None:
    ids = [add_customer(engine, f"C-{n}") for n in range(3)]
    with write_transaction(engine) as connection:
        first = tokens_for(connection, ids[:2])
    with write_transaction(engine) as connection:
        later = tokens_for(connection, [*ids, ids[0]])
    assert later[ids[0]] == first[ids[0]]
    assert later[ids[1]] == first[ids[1]]
    assert set(later) == set(ids)
    assert len(set(later.values())) == 3
    assert all(len(token) == 32 for token in later.values())
    assert token_rows(engine) == 3


def test_senders_racing_for_the_same_tokens_agree(engine: Engine) -> None:
    ids = [add_customer(engine, f"C-{n}") for n in range(40)]

    def make(offset: int) -> dict[int, str]:
        with write_transaction(engine) as connection:
            return tokens_for(connection, ids[offset:] + ids[:offset])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(make, [0, 10, 20, 30]))
    assert all(result == results[0] for result in results)
    assert token_rows(engine) == 40


def test_a_token_stored_by_another_sender_meanwhile_wins(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = add_customer(engine, "C-1")
    with engine.begin() as connection:
        connection.execute(insert(tokens_table).values(customer_id=ann, token="theirs"))
    reads: list[int] = []
    real_read = unsubscribe.read_tokens

    def stale_first_read(connection: Connection, ids: Any) -> dict[int, str]:
        reads.append(1)
        return {} if len(reads) == 1 else real_read(connection, ids)

    monkeypatch.setattr(unsubscribe, "read_tokens", stale_first_read)
    with write_transaction(engine) as connection:
        assert tokens_for(connection, [ann]) == {ann: "theirs"}  # insert conflicted, read back
    assert token_rows(engine) == 1


def test_the_link_carries_the_token_url_quoted() -> None:
    assert unsubscribe_link(SETTINGS, "a b/c") == "https://ada.example/unsubscribe?t=a%20b%2Fc"
    plain = Settings(business=SETTINGS.business.model_copy(update={"unsubscribe_url": ""}))
    assert unsubscribe_link(plain, "abc") is None


def test_dates_at_the_calendars_edges_are_not_on_record(engine: Engine) -> None:
    """Rows another application dated 9999-12-31 or 0001-01-01: each such fact is None (as if
    unknown), never an OverflowError for the whole batch; the note still writes."""
    end, start = datetime(9999, 12, 31, 23, 59, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)
    odd = add_customer(
        engine,
        "C-odd",
        timezone="Pacific/Kiritimati",  # UTC+14: 9999-12-31 23:59 UTC is past the calendar
        birth_year=1,
        birth_month=6,
        birth_day=15,
        customer_since=date(9999, 12, 31),
        first_met_on=date(1, 1, 1),
    )
    west = add_customer(engine, "C-west", timezone="America/Los_Angeles", name="West")
    add_order(engine, "A-end", odd, end, amount=Decimal("5"))
    add_order(engine, "A-start", west, start, amount=Decimal("5"))
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["referrals"]).values(
                referrer_id=odd, referred_id=west, referred_on=date(9999, 12, 31)
            )
        )
        connection.execute(
            insert(metadata.tables["meetings"]).values(customer_id=west, met_at=start)
        )
    due = datetime(2027, 6, 15, 9, tzinfo=UTC)
    refs = {
        "birthday": add_touch(engine, odd, "birthday", "birthday:2027", due),
        "order_thanks": add_touch(engine, odd, "order_thanks", "order:A-end", due),
        "follow_up": add_touch(engine, west, "follow_up", "follow_up:A-start", due),
        "referral_thanks": add_touch(engine, odd, "referral_thanks", "referral:C-west", due),
        "first_meeting": add_touch(engine, west, "first_meeting", "first_meeting", due),
        "anniversary": add_touch(engine, odd, "anniversary", "anniversary:3", due),
    }
    found = contexts_for(engine, list(refs.values()))
    birthday = found[refs["birthday"].id]
    assert birthday["customer"]["birthday"] is None
    assert birthday["occasion"]["age"] is None
    assert birthday["customer"]["customer_since"] is None
    assert birthday["customer"]["years_as_customer"] is None
    assert found[refs["order_thanks"].id]["order"]["placed_at"] is None
    assert found[refs["follow_up"].id]["order"]["placed_at"] is None
    assert found[refs["referral_thanks"].id]["referral"]["referred_on"] is None
    assert found[refs["first_meeting"].id]["meeting"] == {"met_on": None}
    renderer = NoteRenderer(TEMPLATES)
    for kind, ref in refs.items():
        note = renderer.render(kind, None, found[ref.id])  # type: ignore[arg-type]
        assert note.subject, kind
