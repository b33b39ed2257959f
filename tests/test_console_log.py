"""The sent-log in the console, on both databases: behind the login, the filters of
`appreciate log`, newest activity first, keyset pages that cover every note once, customer text
escaped, and a CSV of the filtered view that is safe in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from scheduler.config.settings import Settings
from scheduler.store.models import metadata
from scheduler.web import log_pages
from scheduler.web.app import create_app
from scheduler.web.log_pages import PAGE
from tests.conftest import adas_bakery
from tests.test_detection import add_customer
from tests.test_owner_login import HASH, MovableClock, log_in

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
SETTINGS = Settings(business=adas_bakery())
HOSTILE = "<script>alert(1)</script>"


def add_notes(engine: Engine, count: int, *, status: str = "sent", kind: str = "birthday") -> None:
    """`count` notes of one customer each, the later ones changed later."""
    for n in range(count):
        who = add_customer(engine, f"{kind[:2].upper()}{status[:2]}-{n:03d}")
        with engine.begin() as connection:
            connection.execute(
                insert(touches).values(
                    customer_id=who,
                    kind=kind,
                    occasion_key=f"{kind}:{n}",
                    status=status,
                    reason=None if status == "sent" else f"why {n}",
                    subject=f"Note {n}",
                    due_at=NOW - timedelta(days=n % 40),
                    updated_at=NOW + timedelta(minutes=n // 3),  # ties on purpose
                )
            )


def add_one_note(engine: Engine, external_id: str, *, status: str = "failed", **note: Any) -> None:
    """A customer named by their id, with one birthday note (failed unless `status` says)."""
    who = add_customer(engine, external_id)
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=who,
                kind="birthday",
                occasion_key="birthday:1",
                status=status,
                due_at=NOW,
                **note,
            )
        )


def owner_site(engine: Engine) -> TestClient:
    client = TestClient(
        create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0), follow_redirects=False
    )
    assert log_in(client)[0] == 303
    return client


def subjects(page: str) -> list[str]:
    return re.findall(r"<td>(Note \d+|why \d+)</td>", page)


def test_the_sent_log_is_behind_the_login(engine: Engine) -> None:
    anonymous = TestClient(create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0))
    for path in ("/log", "/log.csv?status=sent"):
        answer = anonymous.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "login")


def test_pages_go_back_through_every_note_once_newest_first(engine: Engine) -> None:
    add_notes(engine, PAGE * 2 + 7)
    client = owner_site(engine)
    seen: list[str] = []
    url = "/log"
    pages = 0
    while url:
        answer = client.get(url)
        assert answer.status_code == 200
        seen += subjects(answer.text)
        found = re.search(r'<a href="(log\?[^"]+)">Older activity', answer.text)
        url = "/" + found.group(1).replace("&amp;", "&") if found else ""
        pages += 1
    assert pages == 3
    expected = [f"Note {n}" for n in sorted(range(PAGE * 2 + 7), key=lambda n: (n // 3, n))]
    assert seen == expected[::-1]


def test_the_filters_are_those_of_appreciate_log(engine: Engine) -> None:
    add_notes(engine, 5)
    add_notes(engine, 3, status="failed", kind="order_thanks")
    client = owner_site(engine)
    failed = client.get("/log?status=failed&kind=order_thanks").text
    assert sorted(subjects(failed)) == ["why 0", "why 1", "why 2"]
    one = client.get("/log?customer=BIse-002").text
    assert subjects(one) == ["Note 2"]
    dated = client.get("/log?since=2027-06-14&until=2027-06-15&status=sent").text
    assert sorted(subjects(dated)) == ["Note 0", "Note 1"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=lost", "status:"),
        ("kind=wedding", "kind:"),
        ("since=15/06/2027", "since: expected a date as YYYY-MM-DD"),
        ("after_at=yesterday&after_id=3", "after_at/after_id"),
        ("after_at=2027-01-01T00:00:00%2B00:00&after_id=9223372036854775808", "after_at/after_id"),
        ("after_at=0001-01-01T00:00:00%2B05:00&after_id=3", "after_at/after_id"),
        ("after_at=9999-12-31T23:59:59-05:00&after_id=3", "after_at/after_id"),
        ("customer=A%001", "holds a NUL character"),
    ],
)
def test_a_bad_filter_is_named_and_the_form_stays(engine: Engine, query: str, named: str) -> None:
    answer = owner_site(engine).get(f"/log?{query}")
    assert answer.status_code == 400
    assert named in answer.text
    assert '<form method="get" action="log"' in answer.text


def test_a_nul_in_the_customer_filter_is_a_bad_filter_for_the_csv_too(engine: Engine) -> None:
    """PostgreSQL's text cannot hold a NUL: such a filter is refused alike on both databases."""
    answer = owner_site(engine).get("/log.csv?customer=%00")
    assert answer.status_code == 400
    assert "holds a NUL character" in answer.text


def test_customer_text_is_escaped(engine: Engine) -> None:
    add_one_note(engine, HOSTILE, status="sent", subject=f"Happy birthday, {HOSTILE}")
    page = owner_site(engine).get("/log").text
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_control_characters_in_customer_text_show_as_escapes(engine: Engine) -> None:
    """A bidi override in an id or a server's words reversed what follows it on the page
    ("evil" read as "live", the rest of the row backwards), as it did not on the command line."""
    add_one_note(
        engine, "C-\u202eevil\u202c", reason="550 mailbox \u202eelbaliavanu\r\nX-Forged: yes"
    )
    page = owner_site(engine).get("/log").text
    assert "\u202e" not in page
    assert "\r" not in page
    assert ">C-\\u202eevil\\u202c</a>" in page
    assert "550 mailbox \\u202eelbaliavanu\\x0d" in page


def test_the_csv_holds_the_whole_filtered_view_safely(engine: Engine) -> None:
    add_notes(engine, 5)
    add_notes(engine, 4, status="failed")
    add_one_note(engine, "C-X", reason='=HYPERLINK("http://evil.example","x")')
    answer = owner_site(engine).get("/log.csv?status=failed")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 5
    assert {row["status"] for row in rows} == {"failed"}
    assert '\'=HYPERLINK("http://evil.example","x")' in {row["reason"] for row in rows}


def test_the_csv_is_written_a_page_at_a_time_without_losing_a_row(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_notes(engine, 11)  # ties in updated_at across page ends
    monkeypatch.setattr(log_pages, "CSV_PAGE", 2)
    rows = list(csv.DictReader(io.StringIO(owner_site(engine).get("/log.csv").text)))
    assert sorted(row["subject"] for row in rows) == sorted(f"Note {n}" for n in range(11))


def test_the_calendars_last_day_is_a_filter_like_any_other(engine: Engine) -> None:
    add_notes(engine, 3)
    page = owner_site(engine).get("/log?since=0001-01-01&until=9999-12-31")
    assert page.status_code == 200
    assert sorted(subjects(page.text)) == ["Note 0", "Note 1", "Note 2"]
