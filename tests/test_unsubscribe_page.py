"""The unsubscribe page customers reach from their notes, on both databases: a click (or the
mail app's one-click button) opts the customer out at once and stops their open notes; a GET
never does; tokens cannot be probed; nothing leaks."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from scheduler.clock import FixedClock
from scheduler.config.settings import Settings, WebSettings
from scheduler.delivery.claims import claim, mark_sending
from scheduler.notes.unsubscribe import tokens_for
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.models import metadata
from scheduler.web.app import create_app
from scheduler.web.serve import EmbeddedWeb, bind
from scheduler.web.unsubscribe import mask_address
from tests.conftest import adas_bakery
from tests.test_delivery import add_due
from tests.test_owner_login import HASH, log_in
from tests.test_owner_login import SETTINGS as PLAIN_HTTP

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
SETTINGS = Settings(
    business=adas_bakery(), web=WebSettings(public_url="https://thanks.example.com")
)
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
opt_outs = metadata.tables["opt_outs"]
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def client(engine: Engine, at: datetime = NOW, settings: Settings = SETTINGS) -> TestClient:
    return TestClient(create_app(engine, settings, FixedClock(at)), follow_redirects=False)


def token_of(engine: Engine, customer_id: int) -> str:
    with write_transaction(engine) as connection:
        return tokens_for(connection, [customer_id])[customer_id]


def customer_of(engine: Engine, touch_id: int) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(
            select(touches.c.customer_id).where(touches.c.id == touch_id)
        ).scalar_one()
    return found


def note(engine: Engine, touch_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(touches).where(touches.c.id == touch_id)).one()


def opted_out_at(engine: Engine, customer_id: int) -> datetime | None:
    with engine.connect() as connection:
        found: datetime | None = connection.execute(
            select(customers.c.opted_out_at).where(customers.c.id == customer_id)
        ).scalar_one()
    return found


def audit(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(opt_outs.c.action, opt_outs.c.source).order_by("id"))
        return [(row.action, row.source) for row in rows]


@pytest.fixture
def due(engine: Engine) -> tuple[int, int, str]:
    """A customer with a note due: (touch id, customer id, token)."""
    touch_id = add_due(engine, "C-1", email="dana.brooks@example.org")
    customer_id = customer_of(engine, touch_id)
    return touch_id, customer_id, token_of(engine, customer_id)


def test_opening_the_link_asks_first_and_changes_nothing(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, customer_id, token = due
    answer = client(engine).get(f"/u/{token}")
    assert answer.status_code == 200
    assert "Stop notes from Ada&#39;s Bakery?" in answer.text
    assert "d***@example.org" in answer.text
    assert "dana.brooks" not in answer.text
    assert opted_out_at(engine, customer_id) is None
    assert note(engine, touch_id).status == "pending"
    assert audit(engine) == []


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_the_one_click_button_opts_out_at_once_and_stops_the_open_notes(
    engine: Engine, due: tuple[int, int, str], encoding: str
) -> None:
    touch_id, customer_id, token = due
    sent = client(engine)
    if encoding == "form":
        answer = sent.post(f"/u/{token}", data=ONE_CLICK)
    else:
        answer = sent.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert "unsubscribed" in answer.text
    assert "set-cookie" not in answer.headers
    assert opted_out_at(engine, customer_id) == NOW
    stopped = note(engine, touch_id)
    assert (stopped.status, stopped.reason) == ("suppressed", "opted out on 2027-06-15 (one-click)")
    assert audit(engine) == [("opt_out", "one_click")]


def test_the_pages_button_opts_out_and_offers_to_change_ones_mind(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, _, token = due
    answer = client(engine).post(f"/u/{token}", data={"action": "unsubscribe"})
    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text
    assert 'value="resubscribe"' in answer.text
    assert note(engine, touch_id).status == "suppressed"
    assert audit(engine) == [("opt_out", "page")]
    assert "You are unsubscribed" in client(engine).get(f"/u/{token}").text


def test_changing_ones_mind_resubscribes_and_gives_the_notes_back(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, customer_id, token = due
    client(engine).post(f"/u/{token}", data={"action": "unsubscribe"})
    answer = client(engine, at=NOW + timedelta(minutes=1)).post(
        f"/u/{token}", data={"action": "resubscribe"}
    )
    assert answer.status_code == 200
    assert "Welcome back" in answer.text
    assert opted_out_at(engine, customer_id) is None
    assert (note(engine, touch_id).status, note(engine, touch_id).reason) == ("pending", None)
    assert audit(engine) == [("opt_out", "page"), ("resubscribe", "page")]
    assert "Stop notes from" in client(engine).get(f"/u/{token}").text


def test_a_note_past_its_time_is_not_given_back(engine: Engine, due: tuple[int, int, str]) -> None:
    touch_id, _, token = due
    client(engine).post(f"/u/{token}", data=ONE_CLICK)
    client(engine, at=NOW + timedelta(days=4)).post(f"/u/{token}", data={"action": "resubscribe"})
    assert note(engine, touch_id).status == "suppressed"  # expired meanwhile: stays stopped


def test_clicking_again_changes_nothing(engine: Engine, due: tuple[int, int, str]) -> None:
    _, customer_id, token = due
    first = client(engine).post(f"/u/{token}", data=ONE_CLICK)
    again = client(engine, at=LATER).post(f"/u/{token}", data=ONE_CLICK)
    assert (again.status_code, again.text) == (first.status_code, first.text)
    assert opted_out_at(engine, customer_id) == NOW  # the first click's time is kept
    assert audit(engine) == [("opt_out", "one_click")]


def test_an_unknown_token_looks_exactly_like_a_used_one(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    _, _, token = due
    site = client(engine)
    site.post(f"/u/{token}", data={"action": "unsubscribe"})
    unknown = "x" * len(token)
    for method, data in (("GET", None), ("POST", ONE_CLICK), ("POST", {"action": "unsubscribe"})):
        used = site.request(method, f"/u/{token}", data=data)
        probe = site.request(method, f"/u/{unknown}", data=data)
        assert (probe.status_code, probe.text) == (used.status_code, used.text)
    resubscribed_unknown = site.post(f"/u/{unknown}", data={"action": "resubscribe"})
    assert resubscribed_unknown.status_code == 200
    assert site.get(f"/u/{'y' * 500}").status_code == 200  # too long for any token: the same


def test_a_token_with_a_nul_is_unknown_on_either_database(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    """PostgreSQL's text cannot hold a NUL: such a token is an unknown one (not a 500 for a
    GET, nor a 503 asking a mail app to retry what can never work)."""
    _, _, token = due
    site = client(engine)
    site.post(f"/u/{token}", data={"action": "unsubscribe"})
    for method, data in (("GET", None), ("POST", ONE_CLICK), ("POST", {"action": "unsubscribe"})):
        used = site.request(method, f"/u/{token}", data=data)
        probe = site.request(method, f"/u/{token}%00", data=data)
        assert (probe.status_code, probe.text) == (used.status_code, used.text)


def test_a_note_already_claimed_by_a_sender_never_goes(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, _, token = due
    with write_transaction(engine) as connection:
        [claimed] = claim(connection, "sender-1", NOW, timedelta(minutes=5), limit=10)
    assert claimed.id == touch_id
    client(engine).post(f"/u/{token}", data=ONE_CLICK)
    assert note(engine, touch_id).status == "suppressed"
    with write_transaction(engine) as connection:
        assert not mark_sending(connection, touch_id, "sender-1", NOW, timedelta(minutes=5))


def test_a_note_being_handed_to_the_server_is_left_as_it_is(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, customer_id, token = due
    with engine.begin() as connection:
        connection.execute(update(touches).values(status="sending", lease_owner="sender-1"))
    client(engine).post(f"/u/{token}", data=ONE_CLICK)
    assert note(engine, touch_id).status == "sending"
    assert opted_out_at(engine, customer_id) == NOW


def test_every_answer_keeps_the_token_private_and_the_page_inert(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    _, _, token = due
    answer = client(engine).get(f"/u/{token}")
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "<script" not in answer.text
    assert 'href="../static/style.css"' in answer.text
    style = client(engine).get("/static/style.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


def test_the_business_name_is_escaped(engine: Engine, due: tuple[int, int, str]) -> None:
    _, _, token = due
    hostile = Settings(business=adas_bakery(name="<script>alert(1)</script> & Co"))
    answer = client(engine, settings=hostile).get(f"/u/{token}")
    assert "<script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in answer.text


def test_a_post_that_is_neither_button_is_refused(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    touch_id, customer_id, token = due
    site = client(engine)
    assert site.post(f"/u/{token}", data={"action": "delete everything"}).status_code == 400
    assert site.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click").status_code == 400
    assert site.post(f"/u/{token}", data={"List-Unsubscribe": "yes"}).status_code == 400
    assert opted_out_at(engine, customer_id) is None
    assert note(engine, touch_id).status == "pending"


def test_a_huge_body_is_refused_before_it_is_read(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    site = client(engine)
    huge = {"List-Unsubscribe": "One-Click", "padding": "x" * 100_000}
    assert site.post(f"/u/{token}", data=huge).status_code == 413

    def chunks() -> Any:  # no declared length
        yield b"List-Unsubscribe=One-Click&padding="
        for _ in range(20):
            yield b"x" * 10_000

    form = {"content-type": "application/x-www-form-urlencoded"}
    assert site.post(f"/u/{token}", content=chunks(), headers=form).status_code == 413
    assert opted_out_at(engine, customer_id) is None


def test_the_log_names_the_customer_never_the_token(
    engine: Engine, due: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, _, token = due
    with caplog.at_level(logging.INFO, logger="appreciate"):
        client(engine).post(f"/u/{token}", data=ONE_CLICK)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["customer C-1 opted out (one-click): 1 open notes suppressed"]
    assert not any(token in line for line in lines)


def test_a_customer_id_cannot_forge_a_log_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An imported id may hold line breaks: the log shows them escaped, one line per event."""
    customer_id = customer_of(engine, add_due(engine, "C-1\r\n<3>forged", email="e@example.org"))
    token = token_of(engine, customer_id)
    with caplog.at_level(logging.INFO, logger="appreciate"):
        client(engine).post(f"/u/{token}", data=ONE_CLICK)
        client(engine).post(f"/u/{token}", data={"action": "resubscribe"})
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "customer C-1\\x0d\\x0a<3>forged opted out (one-click): 1 open notes suppressed",
        "customer C-1\\x0d\\x0a<3>forged opted back in (page): 1 notes back in the queue",
    ]


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("dana@example.org", "d***@example.org"),
        ("a@b.example", "a***@b.example"),
        ("josé@exämple.de", "j***@exämple.de"),
        (None, "this address"),
        ("", "this address"),
    ],
)
def test_an_address_is_shown_masked(address: str | None, masked: str) -> None:
    assert mask_address(address) == masked


async def test_the_page_is_served_over_a_real_socket_inside_an_event_loop(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    web = EmbeddedWeb(create_app(engine, SETTINGS, FixedClock(NOW)), "127.0.0.1", 0)
    try:
        url = f"http://{web.address}/u/{token}"
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert b"d***@example.org" in page
        request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        answer = await asyncio.to_thread(
            lambda: urllib.request.urlopen(request, timeout=5)  # noqa: S310 - http on loopback
        )
        assert answer.status == 200
        assert "server" not in {name.lower() for name in answer.headers}
    finally:
        await web.stop()
    assert opted_out_at(engine, customer_id) == NOW


def test_a_store_that_is_down_is_a_page_asking_to_try_again_for_the_link_and_the_console(
    engine: Engine, due: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Was a bare 500 ("Internal Server Error", none of the pages' headers) for the link in a
    note and for every page of the console."""
    _, _, token = due
    app = create_app(engine, PLAIN_HTTP, FixedClock(NOW), HASH, 0)  # the cookie without TLS
    owner = TestClient(app, follow_redirects=False)
    assert log_in(owner)[0] == 303
    gone = create_store_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    app.state.web = replace(app.state.web, engine=gone)
    try:
        with caplog.at_level(logging.ERROR, logger="appreciate.web"):
            answers = [
                TestClient(app).get(f"/u/{token}"),
                owner.get("/log"),
                owner.get("/customer?id=C-1"),
            ]
    finally:
        gone.dispose()
    for answer in answers:
        assert answer.status_code == 503
        assert "Please try again in a minute." in answer.text
        assert answer.headers["retry-after"] == "60"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert 'href="../static/' in answers[0].text  # the style sheet, from /u/TOKEN
    assert token not in caplog.text
    assert "could not reach the store (OperationalError)" in caplog.text


def test_an_unforeseen_failure_is_a_plain_page_logged_by_kind_and_place_only(
    engine: Engine, due: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A page that fails in a way nobody foresaw (here a route added to fail, naming a token
    in its error) answers the 500 page with every header; the web server is never handed the
    failure (it would log its text: TestClient raises what reaches it), and the next request
    is served as before."""
    _, customer_id, token = due
    app = create_app(engine, SETTINGS, FixedClock(NOW))

    async def broken(request: Request) -> Response:
        raise RuntimeError(f"nobody foresaw {request.path_params['token']}")

    app.router.routes.insert(0, Route("/broken/{token}", broken))
    site = TestClient(app, follow_redirects=False)
    with caplog.at_level(logging.ERROR, logger="appreciate.web"):
        answer = site.get(f"/broken/{token}")
    assert answer.status_code == 500
    assert "This did not work. Please try again later." in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert 'href="../static/' in answer.text
    assert token not in caplog.text
    assert "a web request failed (RuntimeError at tests/test_unsubscribe_page.py:" in caplog.text
    assert site.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert opted_out_at(engine, customer_id) == NOW


def test_a_port_already_taken_is_an_error_the_caller_can_handle() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="in use"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_a_store_that_cannot_be_written_asks_to_try_again(
    engine: Engine, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    site = client(engine)
    if engine.dialect.name == "sqlite":  # another writer holds the lock past the busy timeout
        locked = create_store_engine(str(engine.url), busy_timeout=0.0)
        web = TestClient(create_app(locked, SETTINGS, FixedClock(NOW)))
        with write_transaction(engine):
            answer = web.post(f"/u/{token}", data=ONE_CLICK)
        locked.dispose()
    else:  # the server is gone
        gone = create_store_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        app = create_app(engine, SETTINGS, FixedClock(NOW))
        app.state.web = replace(app.state.web, engine=gone)
        answer = TestClient(app).post(f"/u/{token}", data=ONE_CLICK)
        gone.dispose()
    assert answer.status_code == 503
    assert "try again" in answer.text
    assert opted_out_at(engine, customer_id) is None
    assert site.post(f"/u/{token}", data=ONE_CLICK).status_code == 200  # and then it works
