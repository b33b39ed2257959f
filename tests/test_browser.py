"""The console and the unsubscribe page in real headless Chromium, on both databases: the
owner logs in, filters the sent-log and pages on, opens a note and retries it after a real
server refused it, and a customer follows the unsubscribe link of a note `appreciate sink`
received, confirms, and changes their mind, while the owner watches their notes stop and come
back. Each page is saved as a screenshot (see tests/browser_site.py)."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import Engine, insert, select

from scheduler.clock import FixedClock
from scheduler.config.file import load_config
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.web.log_pages import PAGE
from tests.browser_site import (
    PASSWORD,
    PHONE,
    ROOT,
    chromium,
    log_in,
    serving,
    shoot,
    watched,
)
from tests.conftest import Workspace
from tests.smtp_servers import Scripted, running
from tests.test_console_log import add_notes
from tests.test_console_note import status_of
from tests.test_delivery import add_due
from tests.test_sink import WAIT, Output

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in London: in the send window
DAY = timedelta(days=1)
customers = metadata.tables["customers"]
touches = metadata.tables["touches"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_owner_logs_in_and_a_wrong_password_is_refused(
    browser: Browser, migrated_workspace: Workspace
) -> None:
    with serving(migrated_workspace, FixedClock(NOW)) as site, watched(browser, site) as page:
        page.goto("/")
        expect(page).to_have_url(f"{site.url}/login")
        expect(page.get_by_role("heading", name="Ada's Bakery")).to_be_visible()
        shoot(page, "login")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("That password is not right.")
        expect(page).to_have_url(f"{site.url}/login")

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        expect(page.get_by_text("The service has not run a cycle yet.")).to_be_visible()
        [cookie] = page.context.cookies()
        assert (cookie["name"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
            "appreciate_session",
            True,
            True,
            "Strict",
        )

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{site.url}/login")
        page.goto("/log")
        expect(page).to_have_url(f"{site.url}/login")
        log_in(page)


def test_the_owner_filters_the_sent_log_and_pages_on(
    browser: Browser, migrated_workspace: Workspace
) -> None:
    with serving(migrated_workspace, FixedClock(NOW)) as site:
        add_notes(site.engine, PAGE + 4)  # sent birthday notes, customers BIse-000...
        add_notes(site.engine, 3, status="failed", kind="order_thanks")  # ORfa-000...
        with watched(browser, site) as page:
            log_in(page)
            expect(page.get_by_text("3 notes need you")).to_be_visible()
            shoot(page, "today")
            page.get_by_role("link", name="Sent-log").click()
            rows = page.locator("table.log tbody tr")
            expect(rows).to_have_count(PAGE)
            shoot(page, "sent-log")
            first_page = note_links(page)
            page.get_by_role("link", name="Older activity →").click()
            expect(rows).to_have_count(7)
            expect(page.get_by_text("That is everything.")).to_be_visible()
            assert not set(first_page) & set(note_links(page))
            assert len(set(first_page + note_links(page))) == PAGE + 7

            page.get_by_label("Status").select_option("failed")
            page.get_by_role("button", name="Filter").click()
            expect(rows).to_have_count(3)
            expect(rows.locator(".status")).to_have_text(["failed"] * 3)
            expect(rows.locator("td:nth-child(5)")).to_have_text(["why 2", "why 1", "why 0"])
            expect(page.get_by_label("Status")).to_have_value("failed")  # the form keeps it

            page.get_by_label("Status").select_option("")
            page.get_by_label("Customer").fill("BIse-002")
            page.get_by_role("button", name="Filter").click()
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("BIse-002")
            expect(rows.first).to_contain_text("Note 2")

            page.get_by_label("Status").select_option("failed")
            page.get_by_role("button", name="Filter").click()
            expect(page.get_by_text("No notes match.")).to_be_visible()

            page.goto("/log")
            expect(rows).to_have_count(PAGE)
            on_a_phone(page, "sent-log")
            readable(page, "table.log a", "button.secondary", ".quiet", "td")
            shoot(page, "sent-log-dark")
            page.goto("/")
            readable(page, ".problem", "td")
            page.emulate_media(color_scheme="light")
            on_a_phone(page, "today")


READABLE = 4.5
"""The least contrast for text against its background (WCAG 2's AA level for normal text)."""


def readable(page: Page, *selectors: str) -> None:
    """The text of each selector's first element stands out from the page in light and in
    dark mode (as the owner's system is set); the page is left in dark mode. Read once its
    stylesheets have loaded (before, the body's background is still transparent: ratio 1)."""
    page.wait_for_load_state("load")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for selector in selectors:
            assert contrast(page, selector) >= READABLE, f"{selector} in {scheme} mode"


def contrast(page: Page, selector: str) -> float:
    """The contrast ratio (1 to 21) of the first `selector`'s text against the page's
    background (WCAG 2's formula; the page and card backgrounds are one colour)."""
    text, background = page.locator(selector).first.evaluate(
        """element => [getComputedStyle(element).color,
                       getComputedStyle(document.body).backgroundColor]"""
    )
    lighter, darker = sorted((luminance(text), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def luminance(colour: str) -> float:
    """The relative luminance of a CSS `rgb(r, g, b)` colour."""
    channels = [int(part) / 255 for part in re.findall(r"\d+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def note_links(page: Page) -> list[str]:
    """The addresses of the notes listed on a sent-log page."""
    links = page.locator("table.log td.when a")
    return [links.nth(n).get_attribute("href") or "" for n in range(links.count())]


REFUSED = "550 5.1.1 <bo@example.com>: Recipient address rejected: User unknown"
A_SCRIPT_RAN = "a script in the note ran"
SANDBOXED = "frame is sandboxed and the 'allow-scripts' permission is not set"
"""Chromium's console error for a script in a frame whose sandbox does not allow scripts."""


def test_the_owner_opens_a_refused_note_and_retries_it(
    browser: Browser, migrated_workspace: Workspace
) -> None:
    layout = migrated_workspace.folder / "templates" / "_layout.j2"
    server = Scripted(rcpt={"bo@example.com": REFUSED})
    with running(server) as smtp_port:
        smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        with serving(migrated_workspace, FixedClock(NOW), smtp) as site:
            # The owner's HTML carries a script (customers' mail apps would not run it either).
            html = layout.read_text(encoding="utf-8")
            script = f'<script>document.body.textContent = "{A_SCRIPT_RAN}";</script>\n</body>'
            layout.write_text(html.replace("</body>", script), encoding="utf-8")
            add_due(site.engine, "C-ann", name="Ann Lee", email="ann@example.com")
            bo = add_due(site.engine, "C-bo", name="Bo Park", email="bo@example.com")
            appreciate("--config", site.workspace.path, "send", "--now", NOW.isoformat())
            with watched(browser, site, expected=(SANDBOXED,)) as page:
                log_in(page)
                page.get_by_role("link", name="see the failed ones").click()
                rows = page.locator("table.log tbody tr")
                expect(rows).to_have_count(1)
                expect(rows).to_contain_text("Recipient address rejected")
                rows.get_by_role("link", name="2027-06-15").click()

                expect(page).to_have_url(f"{site.url}/notes/{bo}")
                expect(page.get_by_role("heading", level=1)).to_have_text("birthday for C-bo")
                facts = page.locator("table").first
                expect(facts).to_contain_text(f"failed: the server refused it: {REFUSED}")
                expect(facts).to_contain_text(f"the server said{REFUSED}")
                headers = page.locator("h2:text-is('Headers') + pre")
                expect(headers).to_contain_text("To: Bo Park <bo@example.com>")
                expect(headers).to_contain_text("Subject: Happy birthday, Bo")
                expect(page.locator("h2:text-is('Text') + pre")).to_contain_text("Hi Bo,")
                frame = page.locator("iframe.note")
                expect(frame).to_have_attribute("sandbox", "")  # no allow-scripts, nothing
                shown = page.frame_locator("iframe.note").locator("body")
                expect(shown).to_contain_text("Hi Bo,")
                expect(shown).to_contain_text("You can opt out here")
                expect(shown).not_to_contain_text(A_SCRIPT_RAN)
                shoot(page, "note-failed")

                retry = page.get_by_role("button", name="Retry")
                retry.click()  # the box is not ticked: the browser asks for it, sends nothing
                expect(page).to_have_url(f"{site.url}/notes/{bo}")
                box = page.get_by_label("Yes, send this note again")
                assert box.evaluate("box => box.validity.valueMissing")
                box.check()
                retry.click()
                expect(page.get_by_role("status")).to_have_text(
                    "Queued again: the service sends it on its next delivery."
                )
                expect(facts.locator(".status")).to_have_text("pending")
                expect(page.get_by_role("button", name="Retry")).to_have_count(0)

                server.rcpt = {}  # Bo's mailbox is back
                appreciate("--config", site.workspace.path, "send", "--now", NOW.isoformat())
                page.reload()
                expect(facts.locator(".status")).to_have_text("sent")
                history = page.locator("h2:text-is('History') + table tbody tr td:nth-child(2)")
                expect(history).to_have_text(["failed", "pending", "sent"])
                shoot(page, "note-sent")
                on_a_phone(page, "note")

                page.get_by_role("link", name="C-bo").click()
                expect(page.get_by_role("heading", level=1)).to_have_text("Bo Park")
                expect(page.get_by_text("gets notes")).to_be_visible()
                expect(page.get_by_role("link", name="note: birthday")).to_be_visible()
                expect(page.locator("p.quiet code")).to_have_text("appreciate ltv refresh")
                shoot(page, "customer")
                on_a_phone(page, "customer")

                page.get_by_role("link", name="Today").click()
                expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
                page.get_by_role("link", name="Templates").click()
                expect(page.locator("table")).to_contain_text("birthday")
                page.get_by_label("Occasion").select_option("birthday")
                page.get_by_label("Customer").fill("C-ann")
                page.get_by_role("button", name="Preview").click()
                expect(page.locator("pre")).to_contain_text("Subject: Happy birthday, Ann")
                preview = page.frame_locator("iframe.note").locator("body")
                expect(preview).to_contain_text("Hi Ann,")
                shoot(page, "templates")
                on_a_phone(page, "templates")
    assert [message.rcpt_tos for message in server.received] == [
        ["ann@example.com"],
        ["bo@example.com"],
    ]


def appreciate(*args: str | Path) -> str:
    """`appreciate ARGS` as the owner runs it, in a process of its own (Playwright keeps an
    event loop running in this thread, and the command needs the main thread of a process for
    its signal handlers); its output, once it has succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_customer_unsubscribes_from_a_delivered_note_and_changes_their_mind(
    browser: Browser, migrated_workspace: Workspace, tmp_path: Path
) -> None:
    with running_sink_command(tmp_path / "sink") as (smtp_port, maildir):
        smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        with serving(migrated_workspace, FixedClock(NOW), smtp) as site:
            birthday = add_due(
                site.engine, "C-dana", name="Dana Brooks", email="dana.brooks@example.org"
            )
            follow_up = add_open_note(site.engine, "C-dana", "follow_up:A-7", NOW + DAY * 2)
            appreciate("--config", site.workspace.path, "send", "--now", NOW.isoformat())
            [eml] = (maildir / "new").iterdir()
            note = message_from_bytes(eml.read_bytes(), policy=policy.default)
            assert isinstance(note, EmailMessage)
            assert note["To"] == "Dana Brooks <dana.brooks@example.org>"
            html, text = note.get_body(("html",)), note.get_body(("plain",))
            assert html is not None
            assert text is not None
            link = re.search(rf"{re.escape(site.url)}/u/[\w-]+", text.get_content())
            assert link is not None, text.get_content()
            assert note["List-Unsubscribe"] == f"<{link.group(0)}>"

            with watched(browser, site, PHONE) as mail, watched(browser, site) as console:
                # The customer opens the note in their mail app and clicks the link in it.
                mail.set_content(html.get_content())
                mail.get_by_role("link", name="You can opt out here").click()
                expect(mail).to_have_url(link.group(0))
                expect(mail.get_by_role("heading", level=1)).to_have_text(
                    "Stop notes from Ada's Bakery?"
                )
                expect(mail.get_by_text("d***@example.org will get no more")).to_be_visible()
                expect(mail.get_by_text("dana.brooks")).to_have_count(0)
                fits_the_screen(mail)
                readable(mail, "h1", "p", ".quiet")
                shoot(mail, "unsubscribe-phone-dark")
                mail.emulate_media(color_scheme="light")
                shoot(mail, "unsubscribe-phone")
                assert status_of(site.engine, follow_up) == "pending"  # a look changes nothing

                mail.get_by_role("button", name="Unsubscribe").click()
                expect(mail.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
                fits_the_screen(mail)
                readable(mail, "button.secondary")
                mail.emulate_media(color_scheme="light")
                shoot(mail, "unsubscribed-phone")

                log_in(console)
                console.goto("/customer?id=C-dana")
                facts = console.locator("table").first
                expect(facts).to_contain_text("opted out on 2027-06-15 10:00 (page)")
                timeline = console.locator("h2:text-is('Timeline') + table")
                expect(timeline.locator("tr", has_text="follow_up")).to_contain_text("suppressed")
                expect(timeline.locator("tr", has_text="note: birthday")).to_contain_text("sent")
                shoot(console, "customer-opted-out")
                console.get_by_role("link", name="note: follow_up").click()
                expect(console.locator("table").first).to_contain_text(
                    "suppressed: opted out on 2027-06-15 (page)"
                )
                assert status_of(site.engine, follow_up) == "suppressed"
                assert status_of(site.engine, birthday) == "sent"

                mail.get_by_role("button", name="I changed my mind").click()
                expect(mail.get_by_role("heading", level=1)).to_have_text("Welcome back")
                fits_the_screen(mail)
                shoot(mail, "resubscribed-phone")
                console.go_back()
                console.reload()
                expect(facts).to_contain_text("gets notes")
                expect(timeline.locator("tr", has_text="follow_up")).to_contain_text("pending")
                assert status_of(site.engine, follow_up) == "pending"


@contextmanager
def running_sink_command(maildir: Path) -> Iterator[tuple[int, Path]]:
    """`appreciate sink` on a free port, as an owner runs it; (its port, its Maildir)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "sink", "--port", "0", "--maildir", str(maildir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        stderr = Output(process.stderr)
        port = int(stderr.until(r"Sink listening on 127\.0\.0\.1:(\d+);").group(1))
        stderr.until(r"Stop with Ctrl-C\.")
        yield port, maildir
        process.terminate()
        assert process.wait(timeout=WAIT) == 0
        assert stderr.rest().endswith(f"Sink stopped: 1 message kept in {maildir / 'new'}.\n")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def add_open_note(engine: Engine, external_id: str, occasion_key: str, due: datetime) -> int:
    """A note still to come for the customer `external_id`; its id."""
    with engine.begin() as connection:
        who = connection.execute(
            select(customers.c.id).where(customers.c.external_id == external_id)
        ).scalar_one()
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=who,
                kind=occasion_key.partition(":")[0],
                occasion_key=occasion_key,
                status="pending",
                due_at=due,
                expires_at=due + DAY * 5,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


def on_a_phone(page: Page, name: str) -> None:
    """The page on a phone's screen fits it; saved as NAME-phone.png."""
    viewport = page.viewport_size
    assert viewport is not None
    page.set_viewport_size(PHONE)
    try:
        fits_the_screen(page)
        shoot(page, f"{name}-phone")
    finally:
        page.set_viewport_size(viewport)


def fits_the_screen(page: Page) -> None:
    """The page needs no sideways scrolling at its viewport's width (else: what sticks out)."""
    viewport = page.viewport_size
    assert viewport is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    sticking_out = page.evaluate(STICKING_OUT, viewport["width"])
    assert width <= viewport["width"], (
        f"{page.url} is {width}px wide on a {viewport['width']}px screen: {sticking_out}"
    )


STICKING_OUT = """width => [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > width)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} (${e.textContent.trim().slice(0, 30)})`)
    .slice(-5)"""


def test_the_console_on_the_demos_data_for_the_readme(browser: Browser, tmp_path: Path) -> None:
    """Today as the README shows it: `appreciate demo`'s made-up customers, values and cycle,
    with 90 days of made-up history. APPRECIATE_UPDATE_README_SCREENSHOT=1 writes it to
    docs/console-today.png (see the README's "The console")."""
    folder = tmp_path / "demo"
    appreciate("demo", "--dir", folder, "--now", NOW.isoformat())
    config = load_config(folder / "appreciate.toml")
    workspace = Workspace(folder / "appreciate.toml", config.database_url())
    engine = create_store_engine(workspace.database_url)
    try:
        add_history(engine, days=90)
    finally:
        engine.dispose()
    with serving(workspace, FixedClock(NOW)) as site, watched(browser, site, README_VIEW) as page:
        log_in(page)
        expect(page.get_by_text("notes need you")).to_be_visible()
        expect(page.locator("svg.chart").first).to_be_visible()
        shot = shoot(page, "readme-today")
    assert shot.stat().st_size < README_SCREENSHOT_LIMIT
    if os.environ.get("APPRECIATE_UPDATE_README_SCREENSHOT"):
        shutil.copyfile(shot, README_SCREENSHOT)


README_SCREENSHOT = ROOT / "docs" / "console-today.png"
README_SCREENSHOT_LIMIT = 200_000
README_VIEW: ViewportSize = {"width": 1000, "height": 700}
HISTORY_KINDS = ("order_thanks", "follow_up", "birthday", "check_in", "anniversary")


def add_history(engine: Engine, days: int) -> None:
    """Made-up notes for the store's customers over the `days` before NOW: mostly sent, a few
    refused by the server, expired or stopped by an opt-out (seeded, so always the same)."""
    chance = random.Random(14)
    with engine.begin() as connection:
        people = connection.execute(select(customers.c.id)).scalars().all()
        rows = []
        for back in range(days, 0, -1):
            day = NOW - DAY * back
            for n in range(chance.choice((0, 1, 2, 2, 3, 3, 4, 5))):
                status = chance.choices(
                    ("sent", "failed", "expired", "suppressed"), weights=(40, 1, 2, 1)
                )[0]
                at = day + timedelta(minutes=chance.randrange(8 * 60))
                rows.append(
                    {
                        "customer_id": chance.choice(people),
                        "kind": chance.choice(HISTORY_KINDS),
                        "occasion_key": f"history:{back}:{n}",
                        "status": status,
                        "reason": REASONS.get(status),
                        "subject": "Thank you!" if status == "sent" else None,
                        "due_at": at,
                        "sent_at": at if status == "sent" else None,
                        "updated_at": at,
                    }
                )
        connection.execute(insert(touches), rows)


REASONS = {
    "failed": "the server refused it: 550 5.1.1 user unknown",
    "expired": "too late to be kind",
    "suppressed": "opted out",
}
