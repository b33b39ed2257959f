"""One note in the console, on both databases: behind the login, what `appreciate show` shows
(escaped), its HTML in a frame that can run nothing, and Retry only with a confirmation and
the page's token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from scheduler.config.settings import Settings
from scheduler.inbound.record import InboundRules, record_message
from scheduler.store.models import metadata
from scheduler.web.app import create_app
from tests.conftest import adas_bakery
from tests.test_detection import add_customer
from tests.test_owner_login import HASH, MovableClock, csrf_of, log_in

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
SETTINGS = Settings(business=adas_bakery())
HOSTILE = "<script>alert(1)</script>"


def add_note(engine: Engine, status: str = "failed", **values: object) -> int:
    who = add_customer(engine, f"C-{status}", name=HOSTILE)
    row = {
        "customer_id": who,
        "kind": "birthday",
        "occasion_key": "birthday:2027",
        "status": status,
        "reason": "550 5.1.1 user unknown" if status == "failed" else None,
        "subject": f"Happy birthday, {HOSTILE}",
        "headers": f"Subject: Happy birthday, {HOSTILE}\r\nTo: c@example.com",
        "body_text": f"Dear {HOSTILE},\nHappy birthday!",
        "body_html": '<p style="color: #333">Dear friend</p><script>alert(2)</script>',
        "due_at": NOW - timedelta(hours=1),
        "attempts": 3,
        **values,
    }
    with engine.begin() as connection:
        touch_id: int = connection.execute(insert(touches).values(**row)).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


def client(engine: Engine, logged_in: bool = True) -> TestClient:
    site = TestClient(
        create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0), follow_redirects=False
    )
    if logged_in:
        assert log_in(site)[0] == 303
    return site


def status_of(engine: Engine, touch_id: int) -> str:
    with engine.connect() as connection:
        found: str = connection.execute(
            select(touches.c.status).where(touches.c.id == touch_id)
        ).scalar_one()
    return found


def test_a_note_is_behind_the_login(engine: Engine) -> None:
    touch_id = add_note(engine)
    anonymous = client(engine, logged_in=False)
    answer = anonymous.get(f"/notes/{touch_id}")
    assert (answer.status_code, answer.headers["location"]) == (303, "../login")
    assert anonymous.get(f"/notes/{touch_id}/html").status_code == 401
    assert anonymous.post(f"/notes/{touch_id}/retry", data={"confirm": "yes"}).status_code == 401
    assert status_of(engine, touch_id) == "failed"


def test_a_note_shows_what_was_sent_escaped(engine: Engine) -> None:
    touch_id = add_note(engine)
    answer = client(engine).get(f"/notes/{touch_id}")
    assert answer.status_code == 200
    assert HOSTILE not in answer.text
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt;," in answer.text
    assert "550 5.1.1 user unknown" in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-src 'self'" in answer.headers["content-security-policy"]  # or no frame shows
    frame = re.search(r"<iframe[^>]*>", answer.text)
    assert frame is not None
    assert 'sandbox=""' in frame.group(0)
    assert f'src="{touch_id}/html"' in frame.group(0)


def test_the_notes_html_is_served_for_the_frame_alone(engine: Engine) -> None:
    touch_id = add_note(engine)
    answer = client(engine).get(f"/notes/{touch_id}/html")
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # so scripts fall back to 'none'
    assert "frame-ancestors 'self'" in policy
    assert answer.headers["x-frame-options"] == "SAMEORIGIN"


def test_an_unknown_note_is_a_404(engine: Engine) -> None:
    site = client(engine)
    assert site.get("/notes/999").status_code == 404
    assert site.get("/notes/999/html").status_code == 404


def test_an_id_beyond_any_stored_one_is_a_404_not_a_crash(engine: Engine) -> None:
    """Ids are 64-bit: a longer number in the address names no note, on either database."""
    site = client(engine)
    csrf = csrf_of(site.get("/log").text)
    for too_big in (str(2**63), "9" * 40):
        assert site.get(f"/notes/{too_big}").status_code == 404
        assert site.get(f"/notes/{too_big}/html").status_code == 404
        retry = site.post(f"/notes/{too_big}/retry", data={"csrf": csrf, "confirm": "yes"})
        assert retry.status_code == 404


def test_retry_needs_the_box_ticked_and_the_pages_token(engine: Engine) -> None:
    touch_id = add_note(engine)
    site = client(engine)
    csrf = csrf_of(site.get(f"/notes/{touch_id}").text)
    forged = site.post(f"/notes/{touch_id}/retry", data={"csrf": "x", "confirm": "yes"})
    assert forged.status_code == 403
    unticked = site.post(f"/notes/{touch_id}/retry", data={"csrf": csrf})
    assert (unticked.status_code, unticked.headers["location"]) == (
        303,
        f"../{touch_id}?told=confirm",
    )
    assert "Tick the box" in site.get(unticked.headers["location"].replace("..", "/notes")).text
    assert status_of(engine, touch_id) == "failed"
    done = site.post(f"/notes/{touch_id}/retry", data={"csrf": csrf, "confirm": "yes"})
    assert done.headers["location"] == f"../{touch_id}?told=queued"
    assert status_of(engine, touch_id) == "pending"
    shown = site.get(f"/notes/{touch_id}?told=queued").text
    assert "Queued again" in shown
    assert "re-queued by hand (it was failed)" in shown


def test_a_sent_note_offers_no_retry_and_refuses_one(engine: Engine) -> None:
    touch_id = add_note(engine, status="sent", sent_at=NOW)
    site = client(engine)
    page = site.get(f"/notes/{touch_id}").text
    assert "/retry" not in page
    csrf = csrf_of(page)
    answer = site.post(f"/notes/{touch_id}/retry", data={"csrf": csrf, "confirm": "yes"})
    assert answer.headers["location"] == f"../{touch_id}?told=not-retryable"
    assert status_of(engine, touch_id) == "sent"


def test_a_note_shows_what_came_back_about_it_escaped(engine: Engine) -> None:
    touch_id = add_note(engine, "sent", message_id="<n1@example.com>")
    reply = (
        b"From: c@example.com\r\nSubject: Re: hi\r\nIn-Reply-To: <n1@example.com>\r\n\r\n"
        + HOSTILE.encode()
        + b" thanks!\r\n"
    )
    record_message(engine, reply, InboundRules(), NOW + timedelta(hours=2))
    answer = client(engine).get(f"/notes/{touch_id}")
    assert "What came back" in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; thanks!" in answer.text
    assert HOSTILE not in answer.text
