"""An opt-out that arrives while the store cannot take it is kept on disk and recorded, as made
when it arrived, before anything is sent: nothing says a mail app sends a one-click POST twice.
On both databases, against a real SMTP server for the delivery runs."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.delivery.claims import pause
from scheduler.errors import OptOutsUnreadable
from scheduler.store import opt_out_spool
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.opt_out_spool import OptOutSpool, SpoolFull
from scheduler.store.opt_outs import opt_out, resubscribe
from scheduler.web.app import create_app
from scheduler.web.opt_out_replays import Replays
from scheduler.web.unsubscribe import ONE_CLICK_TEXT
from tests.smtp_servers import Recorder, running
from tests.test_delivery import add_due, run, sender_for, server, state
from tests.test_unsubscribe_page import (
    NOW,
    ONE_CLICK,
    SETTINGS,
    audit,
    customer_of,
    opt_outs,
    opted_out_at,
    token_of,
)

LATER = NOW + timedelta(minutes=20)
EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


@pytest.fixture
def spool(tmp_path: Path) -> OptOutSpool:
    return OptOutSpool(tmp_path / "appreciate.db.opt-outs")


@pytest.fixture
def due(engine: Engine) -> tuple[int, int, str]:
    """A customer with a birthday note due now: (touch id, customer id, token)."""
    touch_id = add_due(engine, "C-1", email="dana.brooks@example.org")
    customer_id = customer_of(engine, touch_id)
    return touch_id, customer_id, token_of(engine, customer_id)


@contextmanager
def unavailable_store(
    engine: Engine, spool: OptOutSpool | None, at: datetime
) -> Iterator[Starlette]:
    """The web application while its store cannot be written: SQLite locked by another writer
    past the busy timeout, or a PostgreSQL server that is gone."""
    if engine.dialect.name == "sqlite":
        locked = create_store_engine(str(engine.url), busy_timeout=0.0)
        app = create_app(locked, SETTINGS, FixedClock(at), spool=spool)  # reads its secret
        try:
            with write_transaction(engine):
                yield app
        finally:
            locked.dispose()
    else:
        gone = create_store_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        app = create_app(engine, SETTINGS, FixedClock(at), spool=spool)
        app.state.web = replace(app.state.web, engine=gone)
        try:
            yield app
        finally:
            gone.dispose()


def click_while_unavailable(
    engine: Engine, spool: OptOutSpool | None, token: str, data: dict[str, str] = ONE_CLICK
) -> tuple[int, str]:
    with unavailable_store(engine, spool, NOW) as app:
        answer = TestClient(app).post(f"/u/{token}", data=data)
    return answer.status_code, answer.text


def details(engine: Engine) -> list[str | None]:
    with engine.connect() as connection:
        return list(connection.execute(select(opt_outs.c.detail).order_by("id")).scalars())


def test_a_one_click_opt_out_while_the_store_is_down_is_kept_and_stops_the_next_send(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    """Was a 503 "try again": a one-click POST that is never sent again was lost, and the
    customer kept getting notes."""
    touch_id, customer_id, token = due
    assert click_while_unavailable(engine, spool, token) == (200, ONE_CLICK_TEXT)
    assert spool.waiting() == 1
    assert opted_out_at(engine, customer_id) is None  # not yet: the store was down
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port), LATER, spool=spool)
    assert recorder.received == []  # the note never went
    assert report.paused is None
    assert opted_out_at(engine, customer_id) == NOW  # as made when the customer asked
    assert state(engine, touch_id)["status"] == "suppressed"
    assert audit(engine) == [("opt_out", "one_click")]
    assert details(engine) == [
        "kept on disk while the store was unavailable, recorded at 2027-06-15 09:20:00 UTC"
    ]
    assert spool.waiting() == 0


def test_the_pages_button_is_kept_too_and_the_page_says_it_is_done(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    code, text = click_while_unavailable(engine, spool, token, {"action": "unsubscribe"})
    assert code == 200
    assert "unsubscribed" in text.lower()
    # The store is back: opening the link again records it before the page is shown.
    site = TestClient(create_app(engine, SETTINGS, FixedClock(LATER), spool=spool))
    assert "unsubscribed" in site.get(f"/u/{token}").text.lower()
    assert opted_out_at(engine, customer_id) == NOW
    assert audit(engine) == [("opt_out", "page")]


def test_the_page_still_opens_while_the_store_is_locked_and_opt_outs_wait(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    """Was a 503 "try again" for every page opened while one opt-out waited: the page read the
    store only after the replay, which a write lock refuses, though SQLite reads on."""
    if engine.dialect.name != "sqlite":
        pytest.skip("a PostgreSQL server that is gone cannot be read either")
    *_, token = due
    spool.add("s" * 43, NOW, "one_click")  # someone else's, kept during this outage
    with unavailable_store(engine, spool, NOW) as app:
        answer = TestClient(app).get(f"/u/{token}")
    assert answer.status_code == 200
    assert "d***@example.org" in answer.text
    assert spool.waiting() == 1  # recorded once the store takes it


def test_changing_ones_mind_once_the_store_is_back_comes_after_the_kept_opt_out(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    touch_id, customer_id, token = due
    click_while_unavailable(engine, spool, token, {"action": "unsubscribe"})
    site = TestClient(create_app(engine, SETTINGS, FixedClock(LATER), spool=spool))
    assert site.post(f"/u/{token}", data={"action": "resubscribe"}).status_code == 200
    assert opted_out_at(engine, customer_id) is None
    assert audit(engine) == [("opt_out", "page"), ("resubscribe", "page")]
    assert state(engine, touch_id)["status"] == "pending"  # given back
    assert spool.waiting() == 0


def test_a_later_choice_recorded_elsewhere_wins_over_a_kept_opt_out(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    """The owner's console (or another instance) recorded a choice after the click."""
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    with write_transaction(engine) as connection:
        opt_out(connection, customer_id, LATER, "console")
        resubscribe(connection, customer_id, LATER + timedelta(minutes=1), "console")
    replayed = spool.replay(engine, LATER + timedelta(minutes=2))
    assert replayed.outcomes == {"later_choice": 1}
    assert opted_out_at(engine, customer_id) is None
    assert spool.waiting() == 0


def test_a_replay_cut_short_after_its_commit_changes_nothing_when_run_again(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str], tmp_path: Path
) -> None:
    """A crash after the transaction committed and before the files were removed."""
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    copy = tmp_path / "copy"
    shutil.copytree(spool.folder, copy)
    assert spool.replay(engine, LATER).recorded == 1
    shutil.rmtree(spool.folder)
    copy.rename(spool.folder)
    assert spool.replay(engine, LATER + timedelta(hours=1)).outcomes == {"already": 1}
    assert opted_out_at(engine, customer_id) == NOW
    assert audit(engine) == [("opt_out", "one_click")]


def test_a_store_still_down_keeps_every_opt_out_for_the_next_try(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    with unavailable_store(engine, spool, LATER) as app:
        replays = Replays(app.state.web)
        with caplog.at_level(logging.WARNING, logger="appreciate.web"):
            replays.once()
            replays.once()
    assert spool.waiting() == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "appreciate.web"]
    assert len(warnings) == 1  # once per outage, not at every try
    assert "opt-outs wait for the store" in warnings[0]
    site = create_app(engine, SETTINGS, FixedClock(LATER), spool=spool)
    Replays(site.state.web).once()  # the store is back
    assert opted_out_at(engine, customer_id) == NOW
    assert spool.waiting() == 0


def test_an_unknown_token_is_answered_as_a_known_one_and_dropped_on_replay(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    _, _, token = due
    assert click_while_unavailable(engine, spool, "x" * len(token)) == (200, ONE_CLICK_TEXT)
    assert click_while_unavailable(engine, spool, "y" * 500) == (200, ONE_CLICK_TEXT)
    assert spool.waiting() == 1  # the one that could be a token
    assert spool.replay(engine, LATER).outcomes == {"no_customer": 1}
    assert audit(engine) == []


def test_a_file_that_is_no_opt_out_is_kept_aside_and_never_stops_the_others(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    edited = spool.folder / "0000000001.000000-by-hand.json"
    edited.write_text('{"token": "abc", "at": "yesterday"}')
    with caplog.at_level(logging.ERROR, logger="appreciate.opt_outs"):
        replayed = spool.replay(engine, LATER)
    assert replayed.recorded == 1
    assert opted_out_at(engine, customer_id) == NOW
    kept = edited.with_name(edited.name + ".unreadable")
    assert replayed.unreadable == [kept]
    assert kept.read_text() == '{"token": "abc", "at": "yesterday"}'
    assert "record it by hand" in caplog.text
    assert spool.waiting() == 0


def test_a_file_nested_too_deep_for_json_is_kept_aside_too(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    deep = spool.folder / "0000000001.000000-deep.json"
    deep.write_text("[" * 3000)  # under the size limit, past the JSON parser's depth
    replayed = spool.replay(engine, LATER)
    assert replayed.recorded == 1
    assert replayed.unreadable == [deep.with_name(deep.name + ".unreadable")]
    assert opted_out_at(engine, customer_id) == NOW


def test_a_spool_that_cannot_be_read_sends_nothing_and_says_why(
    engine: Engine, tmp_path: Path, due: tuple[int, int, str]
) -> None:
    """Somebody who asked to stop may be waiting in it: no note goes out meanwhile."""
    touch_id, _, _ = due
    not_a_folder = tmp_path / "opt-outs"
    not_a_folder.write_text("")
    recorder = Recorder()
    with running(recorder) as port, pytest.raises(OptOutsUnreadable) as raised:
        run(engine, server(port), spool=OptOutSpool(not_a_folder))
    assert recorder.received == []
    assert str(raised.value) == (
        f"opt-outs waiting in {not_a_folder} cannot be read (Not a directory): nothing is sent "
        "until they can be"
    )
    assert state(engine, touch_id)["status"] == "pending"


def test_when_it_cannot_be_kept_either_the_page_asks_to_try_again(
    engine: Engine, tmp_path: Path, due: tuple[int, int, str]
) -> None:
    _, customer_id, token = due
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for spool in (None, OptOutSpool(blocked / "opt-outs")):
        code, text = click_while_unavailable(engine, spool, token)
        assert code == 503
        assert "try again" in text
    assert opted_out_at(engine, customer_id) is None


def test_a_resubscription_is_never_kept_it_asks_to_try_again(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    _, _, token = due
    code, _ = click_while_unavailable(engine, spool, token, {"action": "resubscribe"})
    assert code == 503
    assert spool.waiting() == 0


def test_a_flood_of_requests_cannot_fill_the_disk(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, token = due
    monkeypatch.setattr(opt_out_spool, "MAX_WAITING", 3)
    for _ in range(3):
        spool.add(token, NOW, "one_click")
    with pytest.raises(SpoolFull):
        spool.add(token, NOW, "one_click")
    assert click_while_unavailable(engine, spool, token)[0] == 503
    assert spool.waiting() == 3


def test_the_files_are_private_whole_and_leave_no_temporary_behind(
    spool: OptOutSpool,
) -> None:
    spool.add("a-token", NOW, "one_click")
    assert stat.S_IMODE(spool.folder.stat().st_mode) == 0o700
    (kept,) = os.listdir(spool.folder)
    assert kept.endswith(".json")
    assert stat.S_IMODE((spool.folder / kept).stat().st_mode) == 0o600


def test_waiting_opt_outs_are_recorded_in_the_order_they_came(
    engine: Engine, spool: OptOutSpool
) -> None:
    first = customer_of(engine, add_due(engine, "C-1"))
    second = customer_of(engine, add_due(engine, "C-2"))
    spool.add(token_of(engine, second), LATER, "page")
    spool.add(token_of(engine, first), NOW, "one_click")
    assert spool.replay(engine, LATER).recorded == 2
    with engine.connect() as connection:
        order = list(connection.execute(select(opt_outs.c.customer_id).order_by("id")).scalars())
    assert order == [first, second]


def test_the_service_records_what_waits_before_its_first_send(
    engine: Engine, spool: OptOutSpool, due: tuple[int, int, str]
) -> None:
    """A paused sender still records them (the owner sees the customer opted out)."""
    _, customer_id, token = due
    spool.add(token, NOW, "one_click")
    recorder = Recorder()
    with running(recorder) as port:
        sender = sender_for(engine, server(port), LATER, spool=spool)
        with write_transaction(engine) as connection:
            pause(connection, "the server refused the login", LATER)
        report = asyncio.run(sender.run())
    assert report.paused is not None
    assert opted_out_at(engine, customer_id) == NOW


@pytest.mark.parametrize(
    ("named", "url", "environ", "expected"),
    [
        ("waiting", "", {}, "{config}/waiting"),
        ("", "", {}, "{config}/appreciate.db.opt-outs"),
        ("", "sqlite:///{tmp}/store/shop.db", {}, "{tmp}/store/shop.db.opt-outs"),
        (
            "",
            "postgresql://u@h/db",
            {"STATE_DIRECTORY": "/var/lib/a:/x"},
            "/var/lib/a/appreciate.opt-outs",
        ),
        ("", "postgresql://u@h/db", {}, "{config}/appreciate.opt-outs"),
    ],
)
def test_where_the_spool_is(
    tmp_path: Path, named: str, url: str, environ: dict[str, str], expected: str
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    path = config_dir / "appreciate.toml"
    url = url.format(tmp=tmp_path)
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('\nurl = ""', f'\nurl = "{url}"', 1)
    path.write_text(text.replace('opt_out_spool = ""', f'opt_out_spool = "{named}"'))
    spool = OptOutSpool.of(load_config(path), environ)
    assert spool.folder == Path(expected.format(config=config_dir, tmp=tmp_path))


def test_the_replays_thread_stops_when_asked(engine: Engine, spool: OptOutSpool) -> None:
    app = create_app(engine, SETTINGS, FixedClock(NOW), spool=spool)
    replays = Replays(app.state.web, every=3600).start()
    replays.stop()  # returns at once, not after an hour


def test_the_click_time_is_kept_across_time_zones(engine: Engine, spool: OptOutSpool) -> None:
    customer_id = customer_of(engine, add_due(engine, "C-9"))
    spool.add(token_of(engine, customer_id), datetime(2027, 6, 15, 23, 59, 59, 999999, UTC), "page")
    spool.replay(engine, LATER)
    assert opted_out_at(engine, customer_id) == datetime(2027, 6, 15, 23, 59, 59, 999999, UTC)


def test_during_an_outage_later_clicks_are_kept_at_once_without_trying_the_store_again(
    engine: Engine, spool: OptOutSpool
) -> None:
    """Was: every click waited out the store's busy timeout (10 s) in turn, so the last of a
    burst of one-click POSTs came far past a mail provider's patience."""
    tokens = [token_of(engine, customer_of(engine, add_due(engine, f"C-{n}"))) for n in (1, 2, 3)]
    refusals: list[object] = []
    with unavailable_store(engine, spool, NOW) as app:
        event.listen(app.state.web.engine, "handle_error", refusals.append)
        site = TestClient(app)
        first = site.post(f"/u/{tokens[0]}", data=ONE_CLICK)
        tried = len(refusals)
        later = [site.post(f"/u/{token}", data=ONE_CLICK) for token in tokens[1:]]
        asked_again = len(refusals) - tried
        opened = site.get(f"/u/{tokens[1]}")  # the customer looks again: it is done
    assert tried >= 1
    assert asked_again == 0
    assert [a.status_code for a in (first, *later)] == [200, 200, 200]
    assert "unsubscribed" in opened.text.lower()
    assert spool.waiting() == 3
    assert spool.replay(engine, LATER).recorded == 3
