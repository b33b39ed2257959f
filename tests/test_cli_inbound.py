"""`appreciate inbound`, as a mail server runs it (a file or standard input, exit 0 once
recorded, 75 when it must try again) and as the owner reads what came back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.test_delivery import state
from tests.test_inbound import SentNote, send_one
from tests.test_inbound_reading import RECIPIENT, corpus, nested

inbound = metadata.tables["inbound_messages"]

LATER = "2027-06-15T12:00:00+00:00"


@pytest.fixture
def tagged(migrated_workspace: Workspace) -> Workspace:
    with migrated_workspace.path.open("a", encoding="utf-8") as config:
        config.write('unsubscribe_email = "unsubscribe@example.com"\n')
        config.write('\n[inbound]\nbounce_address = "bounces+{tag}@example.com"\n')
    return migrated_workspace


@pytest.fixture
def store(tagged: Workspace) -> Iterator[Engine]:
    engine = create_store_engine(tagged.database_url)
    yield engine
    engine.dispose()


def message_file(folder: Path, name: str, sent: SentNote) -> Path:
    raw = corpus(name, tag=sent.tag, message_id=sent.message_id)
    path = folder / name
    path.write_bytes(raw.replace(RECIPIENT.encode(), sent.address.encode()))
    return path


def test_a_bounce_given_as_a_file_is_recorded_and_reading_it_again_changes_nothing(
    tagged: Workspace, store: Engine
) -> None:
    sent = send_one(store)
    bounce = message_file(tagged.folder, "postfix_dsn_user_unknown.eml", sent)
    first = run_cli("--config", tagged.path, "inbound", bounce, "--now", LATER)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith(f"bounce (note {sent.touch_id}): 5.1.1 550 5.1.1")
    again = run_cli("--config", tagged.path, "inbound", bounce, "--now", LATER, "-f", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["kind"] == "duplicate"
    assert state(store, sent.touch_id)["status"] == "bounced"


def test_a_message_piped_on_standard_input_is_recorded(tagged: Workspace, store: Engine) -> None:
    sent = send_one(store)
    reply = message_file(tagged.folder, "reply_english.eml", sent).read_text(encoding="utf-8")
    done = run_cli("--config", tagged.path, "inbound", "--now", LATER, input=reply)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith(f"reply (note {sent.touch_id}): Thank you so much")
    assert state(store, sent.touch_id)["replied_at"] is not None


def test_unmatched_messages_are_listed_for_the_owner(tagged: Workspace, store: Engine) -> None:
    sent = send_one(store)
    run_cli("--config", tagged.path, "inbound", "-", "--now", LATER, input="not a message")
    reply = message_file(tagged.folder, "reply_english.eml", sent)
    run_cli("--config", tagged.path, "inbound", reply, "--now", LATER)
    listed = run_cli("--config", tagged.path, "inbound", "list", "--unmatched", "-f", "json")
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["kind"], row["seen_as"]) == ("unmatched", "unreadable")
    everything = run_cli("--config", tagged.path, "inbound", "list")
    assert "Inbound: 2 messages" in everything.stdout
    assert "reply" in everything.stdout


def test_a_store_that_cannot_be_used_exits_75_so_the_mail_server_tries_again(
    workspace: Workspace, tmp_path: Path
) -> None:
    message = tmp_path / "reply.eml"
    message.write_bytes(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n")
    done = run_cli("--config", workspace.path, "inbound", message)  # never migrated
    assert done.exit_code == 75
    assert done.stderr.startswith("error: not recorded")


def test_a_message_nested_too_deeply_is_kept_as_unmatched_and_exits_0(tagged: Workspace) -> None:
    message = tagged.folder / "deep.eml"
    message.write_bytes(nested(5000, "message"))
    done = run_cli("--config", tagged.path, "inbound", message, "--now", LATER)
    assert (done.exit_code, done.stderr) == (0, "")
    assert done.stdout == "unmatched: its parts are nested too deeply to read\n"


def test_a_missing_file_exits_75_and_names_it(tagged: Workspace) -> None:
    done = run_cli("--config", tagged.path, "inbound", tagged.folder / "nowhere.eml")
    assert done.exit_code == 75
    assert "nowhere.eml" in done.stderr


def test_a_source_that_never_ends_is_refused_without_filling_memory(
    tagged: Workspace, store: Engine
) -> None:
    """Was: `inbound /dev/zero` read until a MemoryError. Now the first 64 MiB and one byte
    more are read, and the message is refused for good (65: the mail server bounces it)."""
    done = run_cli("--config", tagged.path, "inbound", "/dev/zero")
    assert done.exit_code == 65
    assert done.stderr == (
        "error: not recorded: /dev/zero holds more than 64 MiB, far more than a message that "
        "comes back\n"
    )
    with store.connect() as connection:
        assert connection.execute(select(func.count()).select_from(inbound)).scalar() == 0


def test_a_closed_standard_input_exits_75_and_says_so(tagged: Workspace) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "--config", str(tagged.path), "inbound"],
        preexec_fn=lambda: os.close(0),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (75, "error: standard input is closed\n")


def test_a_bounce_detector_tripping_on_odd_mail_prints_no_traceback(tagged: Workspace) -> None:
    message = tagged.folder / "odd.eml"
    message.write_bytes(b"Return-Path: <>\r\nFrom:\r\nSubject: Undelivered\r\n\r\nSorry.\r\n")
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "--config", str(tagged.path), "inbound", str(message)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("unmatched: no note matches it")


def test_list_refuses_a_kind_it_does_not_know(tagged: Workspace) -> None:
    done = run_cli("--config", tagged.path, "inbound", "list", "--kind", "spam")
    assert done.exit_code == 2
    assert "is not one of" in done.stderr


def test_a_reply_shows_in_show_log_and_status(tagged: Workspace, store: Engine) -> None:
    answered = send_one(store, "C-1")
    send_one(store, "C-2")
    reply = message_file(tagged.folder, "reply_english.eml", answered)
    run_cli("--config", tagged.path, "inbound", reply, "--now", LATER)
    shown = run_cli("--config", tagged.path, "show", str(answered.touch_id))
    assert "What came back:" in shown.stdout
    assert "reply: Thank you so much, that made my day!" in shown.stdout
    logged = run_cli("--config", tagged.path, "log", "--replied", "-f", "json")
    assert [row["id"] for row in json.loads(logged.stdout)] == [answered.touch_id]
    status = run_cli("--config", tagged.path, "status", "-f", "json")
    assert json.loads(status.stdout)["replies"] == {"birthday": 1}
    table = run_cli("--config", tagged.path, "status")
    assert "Notes customers answered: 1 birthday" in table.stdout
