"""The owner's login, on both databases: nothing behind it without a session, a password kept
only as a hash, CSRF on every owner POST, a delay and a lockout against guessing, and the
refusal to serve beyond this machine without a password."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from scheduler.config.settings import Settings, WebSettings
from scheduler.delivery.claims import pause, paused_reason
from scheduler.service.cycle import CycleReport
from scheduler.service.last_cycle import save_cycle
from scheduler.service.queue_status import queue_status
from scheduler.store.models import metadata
from scheduler.web.app import create_app
from scheduler.web.login import (
    LOCKOUT,
    MAX_FAILURES,
    hash_password,
    needs_password,
    password_matches,
)
from tests.conftest import adas_bakery, run_cli
from tests.test_cli import write_config

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"  # noqa: S105 - the tests' own
HASH = hash_password(PASSWORD)
SETTINGS = Settings(business=adas_bakery())


class MovableClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def site(
    engine: Engine,
    clock: MovableClock | None = None,
    settings: Settings = SETTINGS,
    delay: float = 0.0,
    password_hash: str | None = HASH,
) -> TestClient:
    app = create_app(engine, settings, clock or MovableClock(NOW), password_hash, delay)
    return TestClient(app, follow_redirects=False)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: TestClient, password: str = PASSWORD) -> tuple[int, str]:
    csrf = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": csrf, "password": password})
    return answer.status_code, answer.text


def test_the_console_is_behind_the_login(engine: Engine) -> None:
    client = site(engine)
    answer = client.get("/")
    assert (answer.status_code, answer.headers["location"]) == (303, "login")
    assert client.post("/logout", data={"csrf": "x"}).status_code == 401


def test_the_right_password_opens_a_session_with_a_safe_cookie(engine: Engine) -> None:
    client = site(engine)
    csrf = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": csrf, "password": PASSWORD})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith("appreciate_session=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # no https public address
    today = client.get("/")
    assert today.status_code == 200
    assert "<h1>Today</h1>" in today.text
    assert "The service has not run a cycle yet." in today.text


def test_the_cookie_is_secure_when_the_public_address_is_https(engine: Engine) -> None:
    public = Settings(
        business=adas_bakery(), web=WebSettings(public_url="https://thanks.example.com")
    )
    client = site(engine, settings=public)
    csrf = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": csrf, "password": PASSWORD})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_password_is_refused_after_a_delay(engine: Engine) -> None:
    client = site(engine, delay=0.5)
    started = time.monotonic()
    status, text = log_in(client, "hunter2")
    assert time.monotonic() - started >= 0.5
    assert status == 401
    assert "That password is not right." in text
    assert client.get("/").status_code == 303


def test_a_login_without_the_pages_token_is_refused(engine: Engine) -> None:
    client = site(engine)
    client.get("/login")
    answer = client.post("/login", data={"csrf": "forged", "password": PASSWORD})
    assert answer.status_code == 403
    assert client.get("/").status_code == 303


def test_logging_out_needs_the_token_and_ends_the_session(engine: Engine) -> None:
    client = site(engine)
    log_in(client)
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/").status_code == 200
    csrf = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/").status_code == 303


def test_many_wrong_passwords_lock_the_login_for_a_while(engine: Engine) -> None:
    clock = MovableClock(NOW)
    client = site(engine, clock)
    for _ in range(MAX_FAILURES):
        assert log_in(client, "guess")[0] == 401
    status, text = log_in(client)  # the right one, too late
    assert status == 429
    assert "Too many wrong passwords: try again in 15 minutes." in text
    clock.moment = NOW + LOCKOUT - timedelta(seconds=1)
    assert log_in(client)[0] == 429
    clock.moment = NOW + LOCKOUT
    assert log_in(client)[0] == 303


async def test_guesses_sent_all_at_once_are_held_to_the_same_limit(engine: Engine) -> None:
    """A guess counts against the limit from the moment it is checked: guesses sent at once,
    each waiting for its hash to be checked, cannot get past MAX_FAILURES together."""
    app = create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        csrf = csrf_of((await client.get("/login")).text)
        answers = await asyncio.gather(
            *(
                client.post("/login", data={"csrf": csrf, "password": f"guess {n}"})
                for n in range(3 * MAX_FAILURES)
            )
        )
    codes = [answer.status_code for answer in answers]
    assert (codes.count(401), codes.count(429)) == (MAX_FAILURES, 2 * MAX_FAILURES)


def test_without_a_password_set_nobody_can_log_in(engine: Engine) -> None:
    unset = site(engine, password_hash=None)
    page = unset.get("/login").text
    assert "appreciate web hash-password" in page
    assert 'type="password"' not in page
    # a script with a valid session and token (sessions are signed by the store's key)
    scripted = site(engine, password_hash=None)
    helper = site(engine)
    csrf = csrf_of(helper.get("/login").text)
    scripted.cookies = helper.cookies
    assert scripted.post("/login", data={"csrf": csrf, "password": PASSWORD}).status_code == 401
    assert scripted.get("/").status_code == 303


def test_the_public_pages_set_no_cookie(engine: Engine) -> None:
    client = site(engine)
    assert "set-cookie" not in client.get("/u/unknown-token").headers


@pytest.mark.parametrize(
    ("host", "needed"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True)],  # noqa: S104
)
def test_a_password_is_needed_beyond_this_machine(host: str, needed: bool) -> None:
    assert needs_password(host) is needed


def test_serving_beyond_this_machine_without_a_password_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    result = run_cli("--config", path, "web", "--host", "0.0.0.0")  # noqa: S104
    assert result.exit_code == 1
    assert "without an owner password" in result.stderr
    assert "appreciate web hash-password" in result.stderr
    enabled = write_config(tmp_path, '[web]\nenabled = true\nhost = "0.0.0.0"\n')
    result = run_cli("--config", enabled, "run")
    assert result.exit_code == 1
    assert "without an owner password" in result.stderr


def test_hash_password_asks_twice_and_prints_only_the_hash() -> None:
    result = run_cli("web", "hash-password", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("$argon2")]
    assert PASSWORD not in result.stdout + result.stderr
    assert create_hash_matches(line)
    short = run_cli("web", "hash-password", input="short\nshort\n")
    assert (short.exit_code, "Too short" in short.stderr) == (1, True)
    different = run_cli("web", "hash-password", input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert (different.exit_code, "did not match" in different.stderr) == (1, True)


def create_hash_matches(line: str) -> bool:
    return password_matches(line, PASSWORD) and not password_matches(line, "other")


def test_a_password_put_where_its_hash_belongs_is_refused_unshown(tmp_path: Path) -> None:
    (tmp_path / "owner.hash").write_text(PASSWORD + "\n", encoding="utf-8")
    path = write_config(tmp_path, '[web]\npassword_hash_file = "owner.hash"\n')
    result = run_cli("--config", path, "config", "check")
    assert "web.password_hash_file" in result.stderr
    assert "does not hold a password hash" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_paused_sender_is_shown_and_resumed_from_today(engine: Engine) -> None:
    with engine.begin() as connection:
        pause(connection, "535 5.7.8 authentication failed", NOW)
    client = site(engine)
    log_in(client)
    today = client.get("/").text
    assert "Sending is paused:" in today
    assert "535 5.7.8 authentication failed" in today
    assert client.post("/resume", data={"csrf": "forged"}).status_code == 403
    answer = client.post("/resume", data={"csrf": csrf_of(today)})
    assert (answer.status_code, answer.headers["location"]) == (303, "./?told=resumed")
    after = client.get("/?told=resumed").text
    assert "Sending resumed" in after
    assert "Sending is paused:" not in after
    with engine.connect() as connection:
        assert paused_reason(connection) is None


def test_today_tells_the_last_cycle_in_the_business_time_with_what_came_back(
    engine: Engine,
) -> None:
    report = CycleReport(NOW)  # 09:00 UTC: 10:00 in London (summer)
    report.outcomes.update({"sent": 9})
    report.came_back.update({"soft_bounce": 1, "reply": 2})
    save_cycle(engine, report)
    client = site(engine)
    csrf = csrf_of(client.get("/login").text)
    client.post("/login", data={"csrf": csrf, "password": PASSWORD})
    today = client.get("/").text
    assert "2027-06-15 10:00: 0 notes added;\n9 sent; came back: 2 reply, 1 soft bounce." in today


@pytest.mark.parametrize(
    "saved",
    [
        '{"at": "2027-06-15T08:59:00+00:00", "added": {"birthday": 3}, "outcomes": {"sent": 3},'
        ' "paused": null, "throttled": null}',
        "not a cycle",
        '["a list"]',
        '{"at": "yesterday", "added": {}}',
    ],
    ids=["before-came-back", "garbage", "no-object", "no-moment"],
)
def test_today_shows_a_last_cycle_saved_by_an_older_version_or_none_for_garbage(
    engine: Engine, saved: str
) -> None:
    """Was a 500 (an undefined `came_back`) until the service's next cycle after an upgrade."""
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["app_state"]).values(
                name="last_cycle", value=saved, updated_at=NOW
            )
        )
    client = site(engine)
    csrf = csrf_of(client.get("/login").text)
    client.post("/login", data={"csrf": csrf, "password": PASSWORD})
    today = client.get("/")
    assert today.status_code == 200
    if saved.startswith('{"at": "2027'):
        assert "2027-06-15 09:59: 3 notes added;\n3 sent." in today.text
    else:
        assert "The service has not run a cycle yet." in today.text
    with engine.connect() as connection:
        cycle = queue_status(connection).last_cycle  # what `appreciate status` shows
    assert (cycle is not None) == saved.startswith('{"at": "2027')


def test_today_says_which_cards_and_calls_wait_for_the_owner(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["customers"]).values(
                external_id="C-1", name="Ann Lee", attributes={}
            )
        )
        connection.execute(
            insert(metadata.tables["touches"]),
            [
                {
                    "customer_id": 1,
                    "kind": "birthday",
                    "occasion_key": f"birthday:{year}",
                    "status": status,
                    "channel": "card",
                    "due_at": NOW,
                }
                for year, status in ((2027, "pending"), (2026, "printed"))
            ],
        )
    client = site(engine)
    log_in(client)
    assert "Waiting for you: 1 card to print (appreciate cards)." in client.get("/").text
