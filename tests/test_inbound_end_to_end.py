"""What comes back, end to end with real mail servers on loopback: a note to an address that
does not exist goes through Postfix, which bounces it for real to the note's tagged return
path, into a Dovecot mailbox; one `appreciate run --once` later the note is `bounced` and that
customer's next note is suppressed. A person's reply, delivered to the same mailbox, is noted
on its note. Skipped, saying why, where Postfix or Dovecot cannot be started."""

from __future__ import annotations

import json
import pwd
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import update

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.dovecot_server import PASSWORD, Dovecot, DovecotUnavailable, private_dovecot
from tests.postfix_server import Postfix, PostfixUnavailable, private_postfix
from tests.test_delivery import NOW, TEMPLATES, add_due, state

touches = metadata.tables["touches"]
MAILBOX = "bounces"
ARRIVES_WITHIN = 60.0
"""Seconds a real bounce or reply may take to reach the mailbox (Postfix's queue manager)."""
SERVICES = "local unix - n n - - local\nvirtual unix - n n - - virtual\n"


@dataclass(frozen=True)
class MailServers:
    postfix: Postfix
    dovecot: Dovecot


@pytest.fixture(scope="module")
def servers() -> Iterator[MailServers]:
    """Postfix that delivers customers.example.net locally (where no one exists: every note
    bounces), discards friends.example.net, and delivers appreciate.example.org (the return
    path) into Dovecot's Maildir for `bounces`."""
    try:
        with private_dovecot() as dovecot:
            dovecot.maildir(MAILBOX)
            mail = pwd.getpwnam("mail")
            settings = {
                "mydestination": "customers.example.net",
                "local_recipient_maps": "",
                "local_transport": "local",
                "transport_maps": "inline:{ friends.example.net=discard: }",
                "virtual_transport": "virtual",
                "virtual_mailbox_domains": "appreciate.example.org",
                "virtual_mailbox_base": f"{dovecot.folder}/mail",
                "virtual_mailbox_maps": f"static:{MAILBOX}/Maildir/",
                "virtual_uid_maps": f"static:{mail.pw_uid}",
                "virtual_gid_maps": f"static:{mail.pw_gid}",
                "virtual_minimum_uid": str(mail.pw_uid),
                "recipient_delimiter": "+",
            }
            with private_postfix(settings=settings, services=SERVICES) as postfix:
                yield MailServers(postfix, dovecot)
    except (PostfixUnavailable, DovecotUnavailable) as error:
        pytest.skip(f"no mail servers for the end-to-end test: {error}")


def configure(workspace: Workspace, servers: MailServers) -> None:
    (workspace.folder / "imap-password").write_text(PASSWORD, encoding="utf-8")
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(
            f"""
[templates]
directory = "{TEMPLATES}"

[smtp]
host = "127.0.0.1"
port = {servers.postfix.port}
security = "none"

[inbound]
bounce_address = "bounces+{{tag}}@appreciate.example.org"
imap_host = "127.0.0.1"
imap_port = {servers.dovecot.port}
imap_security = "none"
imap_user = "{MAILBOX}"
imap_password_file = "imap-password"
"""
        )


def wait_for_mail(dovecot: Dovecot, count: int, postfix: Postfix) -> None:
    """Until the mailbox holds `count` new messages (Postfix delivers on its own time)."""
    deadline = time.monotonic() + ARRIVES_WITHIN
    while len(dovecot.messages(MAILBOX)) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"no mail arrived in time; Postfix said:\n{postfix.log[-3000:]}")
        time.sleep(0.1)


def run_once(workspace: Workspace, at: str) -> dict[str, object]:
    done = run_cli("--config", workspace.path, "run", "--once", "--now", at, "-f", "json")
    assert done.exit_code == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_a_real_bounce_marks_the_note_and_stops_the_next_one(
    migrated_workspace: Workspace, servers: MailServers
) -> None:
    configure(migrated_workspace, servers)
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        note = add_due(engine, "C-1", email="nobody-here@customers.example.net")
        next_note = add_due(
            engine, "C-9", due=NOW + timedelta(days=20), birth_month=None, birth_day=None
        )
        with engine.begin() as connection:  # the same customer's next note, not yet due
            connection.execute(
                update(touches)
                .where(touches.c.id == next_note)
                .values(customer_id=state(engine, note)["customer_id"], occasion_key="x:1")
            )
        processed = len(servers.dovecot.messages(MAILBOX, "processed"))
        first = run_once(migrated_workspace, NOW.isoformat())
        assert first["outcomes"] == {"sent": 1}
        wait_for_mail(servers.dovecot, 1, servers.postfix)
        second = run_once(migrated_workspace, (NOW + timedelta(minutes=30)).isoformat())
        assert second["came_back"] == {"bounce": 1}
        bounced = state(engine, note)
        assert bounced["status"] == "bounced"
        assert "5.1.1" in bounced["reason"]
        assert state(engine, next_note)["status"] == "suppressed"
        assert "nobody-here@customers.example.net bounced" in state(engine, next_note)["reason"]
        assert len(servers.dovecot.messages(MAILBOX, "processed")) == processed + 1  # moved
    finally:
        engine.dispose()


def test_a_real_reply_is_noted_on_its_note(
    migrated_workspace: Workspace, servers: MailServers
) -> None:
    configure(migrated_workspace, servers)
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        note = add_due(engine, "C-2", email="dana@friends.example.net")
        assert run_once(migrated_workspace, NOW.isoformat())["outcomes"] == {"sent": 1}
        reply = EmailMessage()
        reply["From"] = "Dana <dana@friends.example.net>"
        reply["To"] = "bounces@appreciate.example.org"
        reply["Subject"] = "Re: Happy birthday"
        reply["In-Reply-To"] = state(engine, note)["message_id"]
        reply["Message-ID"] = "<reply-e2e@friends.example.net>"
        reply.set_content("That made my day, thank you!\n\n> Happy birthday")
        before = len(servers.dovecot.messages(MAILBOX))
        with smtplib.SMTP("127.0.0.1", servers.postfix.port, timeout=30) as smtp:
            smtp.send_message(reply)
        wait_for_mail(servers.dovecot, before + 1, servers.postfix)
        later = run_once(migrated_workspace, (NOW + timedelta(hours=1)).isoformat())
        assert later["came_back"] == {"reply": 1}
        assert state(engine, note)["replied_at"] is not None
        shown = run_cli("--config", migrated_workspace.path, "show", str(note))
        assert "reply: That made my day, thank you!" in shown.stdout
    finally:
        engine.dispose()


def test_the_mailbox_password_is_read_from_its_file(tmp_path: Path) -> None:
    """(A sanity check of the fixture's config: a missing password file stops the service at
    start with the key named, before anything is sent.)"""
    config = tmp_path / "appreciate.toml"
    config.write_text(
        '[business]\nname = "A"\nsender_name = "A"\nsender_email = "a@example.com"\n'
        '[inbound]\nimap_host = "127.0.0.1"\nimap_user = "x"\nimap_password_file = "gone"\n',
        encoding="utf-8",
    )
    done = run_cli("--config", config, "run", "--once")
    assert done.exit_code == 2
    assert "inbound.imap_password_file" in done.stderr
