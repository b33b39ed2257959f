"""One customer in the console, on both databases: their facts and timeline escaped, their
value when known, and Opt out / Resubscribe that act at once and are audited as the owner's."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from scheduler.config.settings import Settings
from scheduler.inbound.record import InboundRules, record_message
from scheduler.service.valuation import refresh_values
from scheduler.store.models import metadata
from scheduler.web.app import create_app
from tests.conftest import adas_bakery
from tests.test_detection import add_customer, add_order
from tests.test_inbound_reading import RECIPIENT, corpus
from tests.test_owner_login import HASH, MovableClock, csrf_of, log_in

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
opt_outs = metadata.tables["opt_outs"]
referrals = metadata.tables["referrals"]
SETTINGS = Settings(business=adas_bakery())
HOSTILE = "<script>alert(1)</script>"


def client(engine: Engine) -> TestClient:
    site = TestClient(
        create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0), follow_redirects=False
    )
    assert log_in(site)[0] == 303
    return site


def story(engine: Engine) -> int:
    """Ann (id `A/1 &x`, odd on purpose), who ordered, referred Bo, and has a note pending."""
    ann = add_customer(engine, "A/1 &x", name=f"Ann {HOSTILE}", birth_month=2, birth_day=29)
    bo = add_customer(engine, "B-2", name="Bo")
    add_order(engine, "O-1", ann, NOW - timedelta(days=3), amount=Decimal("42.50"))
    with engine.begin() as connection:
        connection.execute(
            insert(referrals).values(referrer_id=ann, referred_id=bo, referred_on=date(2027, 6, 1))
        )
        connection.execute(
            insert(touches).values(
                customer_id=ann,
                kind="birthday",
                occasion_key="birthday:2028",
                status="pending",
                due_at=NOW + timedelta(hours=1),
                expires_at=NOW + timedelta(days=3),
            )
        )
    return ann


def test_a_customer_page_tells_their_story_escaped(engine: Engine) -> None:
    story(engine)
    page = client(engine).get("/customer?id=" + quote("A/1 &x"))
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "Ann &lt;script&gt;" in page.text
    assert "--02-29" in page.text
    assert "O-1: 42.50" in page.text
    assert "referred Bo (B-2)" in page.text
    assert "note: birthday" in page.text
    assert "Not valued yet" in page.text
    assert "gets notes" in page.text


def test_a_customers_review_shows_in_their_timeline_as_text(engine: Engine) -> None:
    ann = story(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["reviews"]).values(
                external_id="G-1",
                customer_id=ann,
                reviewed_at=NOW - timedelta(days=1),
                site="Google",
                rating=5,
                text=f"Lovely {HOSTILE} see https://spam.example/x",
                url="https://maps.example.com/r/G-1",
            )
        )
    page = client(engine).get("/customer?id=" + quote("A/1 &x")).text
    assert "on Google 5/5: Lovely &lt;script&gt;" in page
    assert HOSTILE not in page
    assert 'href="https://spam.example' not in page


def test_an_unknown_customer_is_a_404(engine: Engine) -> None:
    assert client(engine).get("/customer?id=nobody").status_code == 404


def test_an_id_with_a_nul_is_no_customer_on_either_database(engine: Engine) -> None:
    """PostgreSQL's text cannot hold a NUL: such an id names nobody, as an unknown one."""
    story(engine)
    site = client(engine)
    assert site.get("/customer?id=A%00").status_code == 404
    csrf = csrf_of(site.get("/customer?id=" + quote("A/1 &x")).text)
    for action in ("opt-out", "resubscribe", "works-again"):
        answer = site.post(
            f"/customer/{action}", data={"csrf": csrf, "id": "A\x00", "confirm": "yes"}
        )
        assert answer.status_code == 404


def test_the_owner_opts_a_customer_out_and_back_in(engine: Engine) -> None:
    ann = story(engine)
    site = client(engine)
    page = site.get("/customer?id=" + quote("A/1 &x")).text
    csrf = csrf_of(page)
    unticked = site.post("/customer/opt-out", data={"csrf": csrf, "id": "A/1 &x"})
    assert unticked.headers["location"].endswith("&told=confirm")
    done = site.post("/customer/opt-out", data={"csrf": csrf, "id": "A/1 &x", "confirm": "yes"})
    assert done.status_code == 303
    assert "Opted out" in site.get(done.headers["location"].replace("../", "/")).text
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(customers.c.opted_out_at).where(customers.c.id == ann)
            ).scalar_one()
            == NOW
        )
        assert connection.execute(select(touches.c.status)).scalar_one() == "suppressed"
        assert connection.execute(select(opt_outs.c.source)).scalars().all() == ["console"]
    again = site.post(
        "/customer/resubscribe", data={"csrf": csrf, "id": "A/1 &x", "confirm": "yes"}
    )
    assert again.headers["location"].endswith("&told=resubscribed")
    with engine.connect() as connection:
        assert connection.execute(select(touches.c.status)).scalar_one() == "pending"


def test_a_customer_id_cannot_forge_a_log_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An imported id may hold line breaks: the log shows them escaped, one line per event."""
    add_customer(engine, "A-1\n<3>forged")
    site = client(engine)
    csrf = csrf_of(site.get("/customer?id=" + quote("A-1\n<3>forged")).text)
    with caplog.at_level(logging.INFO, logger="appreciate"):
        site.post(
            "/customer/opt-out", data={"csrf": csrf, "id": "A-1\n<3>forged", "confirm": "yes"}
        )
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["customer A-1\\x0a<3>forged: opted-out by the owner (0 notes)"]


def test_the_choice_needs_the_pages_token(engine: Engine) -> None:
    story(engine)
    site = client(engine)
    forged = site.post("/customer/opt-out", data={"csrf": "x", "id": "A/1 &x", "confirm": "yes"})
    assert forged.status_code == 403
    with engine.connect() as connection:
        assert connection.execute(select(opt_outs.c.id)).all() == []


def test_what_came_back_shows_and_a_bounced_address_can_be_sent_to_again(
    engine: Engine,
) -> None:
    ann = story(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=ann,
                kind="order_thanks",
                occasion_key="order:O-1",
                status="sent",
                message_id="<sent-1@example.com>",
                due_at=NOW - timedelta(days=2),
            )
        )
    reply = (
        b"From: a-1@example.com\r\nSubject: Re: thanks\r\nIn-Reply-To: <sent-1@example.com>\r\n"
        b"Message-ID: <r1@x.example>\r\n\r\nLovely " + HOSTILE.encode() + b"\r\n"
    )
    bounce = corpus("exim_text_bounce.eml", message_id="<sent-1@example.com>").replace(
        RECIPIENT.encode(), b"a/1 &x@example.com"
    )
    record_message(engine, reply, InboundRules(), NOW - timedelta(days=1))
    record_message(engine, bounce, InboundRules(), NOW - timedelta(hours=5))
    site = client(engine)
    page = site.get("/customer?id=" + quote("A/1 &x")).text
    assert "came back: reply" in page
    assert "Lovely &lt;script&gt;" in page
    assert HOSTILE not in page
    assert "came back: bounce" in page
    assert "address bounced" in page
    done = site.post(
        "/customer/works-again", data={"csrf": csrf_of(page), "id": "A/1 &x", "confirm": "yes"}
    )
    assert done.headers["location"].endswith("&told=works-again")
    after = site.get("/customer?id=" + quote("A/1 &x")).text
    assert "address bounced" not in after
    assert "gets notes" in after


def test_a_valued_customer_shows_their_goodwill_and_the_acquisition_budget(
    engine: Engine,
) -> None:
    story(engine)
    refresh_values(engine, SETTINGS, NOW)
    page = client(engine).get("/customer?id=" + quote("A/1 &x"))
    assert page.status_code == 200
    text = " ".join(page.text.split())
    total = Decimal(text.split('<th>total</th><td class="number">')[1].split("<")[0])
    goodwill = (total / 10).quantize(Decimal("0.01"))
    assert f'<th>goodwill allowance</th><td class="number">{goodwill}</td>' in text
    assert "10% of their value, what it is worth conceding to keep them" in text
    # Ann is the only customer who bought: a new customer is worth what she is worth.
    budget = (total * Decimal(repr(1 / 3))).quantize(Decimal("0.01"))
    assert f"Acquisition budget: {budget} to win a new customer" in text
    today = " ".join(client(engine).get("/").text.split())
    assert "<h2>Acquisition budget</h2>" in today
    assert (
        f'<td>any new customer</td><td class="number">{total}</td><td class="number">{budget}'
        in (today)
    )


def test_the_budget_follows_each_new_refresh(engine: Engine) -> None:
    story(engine)
    refresh_values(engine, SETTINGS, NOW)
    site = client(engine)
    assert "who have bought (1)" in " ".join(site.get("/").text.split())
    with engine.connect() as connection:
        bo = connection.execute(
            select(customers.c.id).where(customers.c.external_id == "B-2")
        ).scalar_one()
    add_order(engine, "O-2", bo, NOW - timedelta(days=1), amount=Decimal("10.00"))
    assert "who have bought (1)" in " ".join(site.get("/").text.split())  # until the refresh
    refresh_values(engine, SETTINGS, NOW)
    assert "who have bought (2)" in " ".join(site.get("/").text.split())
