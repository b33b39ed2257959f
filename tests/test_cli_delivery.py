"""`appreciate send`, `log`, `show` and `retry`, as an owner runs them, with a real SMTP server."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from scheduler.store.db import create_store_engine
from tests.conftest import Workspace, run_cli
from tests.smtp_servers import Faulty, Recorder, running
from tests.test_delivery import add_due

STARTERS = Path(__file__).parent.parent / "templates"
NOW = "2027-06-15T10:00:00+00:00"
LATER = "2027-06-15T12:00:00+00:00"


def point_at(workspace: Workspace, port: int) -> None:
    """Send through the test server on `port`, in plain text (a local sink)."""
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
        config.write("timeout_seconds = 2.0\nconnections = 2\n")


@pytest.fixture
def shop(migrated_workspace: Workspace) -> tuple[Workspace, list[int]]:
    """A workspace with the starter templates and two birthday notes due at NOW."""
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        ids = [
            add_due(engine, "C-1", name="Ann Lee", email="ann@example.com"),
            add_due(engine, "C-2", name="Bob Stone", email="bob@example.com"),
        ]
    finally:
        engine.dispose()
    return migrated_workspace, ids


def cli(workspace: Workspace, *args: str) -> tuple[int, str, str]:
    result = run_cli("--config", workspace.path, *args)
    return result.exit_code, result.stdout, result.stderr


def test_send_delivers_the_due_notes_and_reports_them(shop: tuple[Workspace, list[int]]) -> None:
    workspace, _ = shop
    recorder = Recorder()
    with running(recorder) as port:
        point_at(workspace, port)
        code, stdout, _ = cli(workspace, "send", "--now", NOW, "--format", "json")
    assert code == 0
    assert json.loads(stdout) == {"outcomes": {"sent": 2}, "paused": None}
    assert sorted(r.rcpt_tos[0] for r in recorder.received) == [
        "ann@example.com",
        "bob@example.com",
    ]
    first = recorder.received[0].message
    assert first["From"] == "Ada <ada@example.com>"
    assert first["Subject"]


def test_the_log_lists_every_note_with_its_fate(shop: tuple[Workspace, list[int]]) -> None:
    workspace, ids = shop
    with running(Recorder()) as port:
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)
    code, stdout, _ = cli(workspace, "log", "--format", "json")
    assert code == 0
    rows = json.loads(stdout)
    assert sorted(row["id"] for row in rows) == sorted(ids)
    assert set(rows[0]) == {
        "id",
        "customer_id",
        "kind",
        "occasion_key",
        "status",
        "channel",
        "reason",
        "subject",
        "message_id",
        "due_at",
        "sent_at",
        "attempts",
        "last_reply",
        "replied_at",
        "updated_at",
    }
    assert {row["status"] for row in rows} == {"sent"}
    assert all(row["message_id"].startswith("<") and row["last_reply"] for row in rows)

    code, stdout, _ = cli(workspace, "log", "--customer", "C-2", "--format", "csv")
    found = list(csv.DictReader(io.StringIO(stdout)))
    assert [row["customer_id"] for row in found] == ["C-2"]

    code, stdout, _ = cli(workspace, "log")
    assert code == 0
    assert "Sent-log: 2 notes" in stdout

    _, stdout, _ = cli(workspace, "log", "--status", "failed", "--format", "json")
    assert json.loads(stdout) == []
    _, stdout, _ = cli(workspace, "log", "--until", "2027-06-14", "--format", "json")
    assert json.loads(stdout) == []
    code, stdout, _ = cli(workspace, "log", "--until", "9999-12-31", "--format", "json")
    assert (code, len(json.loads(stdout))) == (0, 2)  # the calendar's last day: no end


def test_the_log_refuses_an_unknown_status_by_name(shop: tuple[Workspace, list[int]]) -> None:
    workspace, _ = shop
    code, _, stderr = cli(workspace, "log", "--status", "lost")
    assert code == 2
    assert '"lost" is not one of' in stderr


def test_show_prints_the_note_as_sent_and_its_history(shop: tuple[Workspace, list[int]]) -> None:
    workspace, ids = shop
    with running(Recorder()) as port:
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)
    code, stdout, _ = cli(workspace, "show", str(ids[0]))
    assert code == 0
    assert "To: Ann Lee <ann@example.com>" in stdout
    assert "Message-ID: <" in stdout
    assert "History:" in stdout
    assert "sent" in stdout.split("History:")[1]

    code, _, stderr = cli(workspace, "show", "999")
    assert code != 0
    assert "no note has the id 999" in stderr


def test_retry_sends_a_failed_note_again_at_once(shop: tuple[Workspace, list[int]]) -> None:
    workspace, ids = shop
    refusing = Faulty(step="rcpt", reply="550 5.1.1 no such mailbox", times=2)
    with running(refusing) as port:
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)
        _, stdout, _ = cli(workspace, "log", "--status", "failed", "--format", "json")
        assert sorted(row["id"] for row in json.loads(stdout)) == sorted(ids)

        code, stdout, _ = cli(workspace, "retry", str(ids[0]), "--now", LATER, "-f", "json")
    assert code == 0
    assert json.loads(stdout) == [
        {
            "id": ids[0],
            "customer_id": "C-1",
            "kind": "birthday",
            "was": "failed",
            "status": "sent",
            "reason": None,
        }
    ]
    assert [r.rcpt_tos for r in refusing.received] == [["ann@example.com"]]
    _, stdout, _ = cli(workspace, "log", "--format", "json")
    assert {row["id"]: row["status"] for row in json.loads(stdout)} == {
        ids[0]: "sent",
        ids[1]: "failed",  # only the note named was sent again
    }

    code, _, stderr = cli(workspace, "retry", str(ids[0]), "--now", LATER)
    assert code != 0
    assert "is sent; only failed, unknown, held notes can be sent again" in stderr


def test_retry_takes_several_notes_by_status_and_date(shop: tuple[Workspace, list[int]]) -> None:
    workspace, ids = shop
    refusing = Faulty(step="rcpt", reply="550 5.1.1 no such mailbox", times=2)
    with running(refusing) as port:  # refuses both notes, then takes what comes
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)
        code, _, stderr = cli(workspace, "retry", "--since", "2027-06-01")
        assert code == 2
        assert "--status" in stderr
        code, _, stderr = cli(workspace, "retry", "--status", "sent")
        assert code == 2
        code, stdout, _ = cli(workspace, "retry", "--status", "failed", "--since", "2027-06-16")
        assert code == 0
        assert "No note matches" in stdout
        code, stdout, _ = cli(workspace, "retry", "--status", "failed", "--queue", "--now", LATER)
        assert code == 0
        assert "2 notes are queued again" in stdout
        code, stdout, stderr = cli(workspace, "send", "--now", LATER, "--format", "json")
    assert code == 0, stderr
    assert json.loads(stdout)["outcomes"] == {"sent": 2}
    assert len(refusing.received) == 2

    code, _, stderr = cli(workspace, "retry", str(ids[0]), "999")
    assert code != 0
    assert "no note has the id 999" in stderr
    unknown = [str(1000 + n) for n in range(20_000)]
    code, _, stderr = cli(workspace, "retry", str(ids[0]), *unknown, "999", "1000")
    assert code != 0
    assert stderr.strip().endswith(
        "no note has the ids 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008"
        " and 19,991 more"
    )


def test_the_log_shows_the_latest_activity_first_in_80_columns(
    shop: tuple[Workspace, list[int]],
) -> None:
    workspace, _ = shop
    with running(Faulty(step="rcpt", reply="550 5.1.1 no such mailbox", times=1)) as port:
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)  # one note fails, the other is sent
        _, stdout, _ = cli(workspace, "log", "--status", "failed", "--format", "json")
        [failed] = [row["id"] for row in json.loads(stdout)]
        cli(workspace, "retry", str(failed), "--now", LATER)
    _, stdout, _ = cli(workspace, "log", "--format", "json")
    assert json.loads(stdout)[0]["id"] == failed  # retried last: first
    _, stdout, _ = cli(workspace, "log")
    assert max(len(line) for line in stdout.splitlines()) <= 80
    assert "06-15 12:00" in stdout  # LATER, as the note's latest activity


def test_no_command_prints_control_characters_from_customer_data(
    migrated_workspace: Workspace,
) -> None:
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        evil = "Eve\x1b]0;pwned\x07\x1b[2J\u202eLee"
        touch = add_due(engine, "C-\x1b[31m1", name=evil, email="eve@example.com")
    finally:
        engine.dispose()
    with running(Recorder()) as port:
        point_at(migrated_workspace, port)
        cli(migrated_workspace, "send", "--now", NOW)
    for command in (
        ("show", str(touch)),
        ("log",),
        ("log", "--format", "csv"),
        ("log", "--format", "json"),
        ("plan", "--now", NOW),
    ):
        code, stdout, stderr = cli(migrated_workspace, *command)
        assert code == 0, stderr
        assert not {"\x1b", "\x07", "\u202e"} & set(stdout + stderr), command
    _, stdout, _ = cli(migrated_workspace, "show", str(touch))
    assert "Eve\\x1b]0;pwned" in stdout


def test_brackets_and_colons_in_customer_data_show_as_written(
    migrated_workspace: Workspace,
) -> None:
    """Rich markup and emoji codes in a name or id are text: `[/b]` once made `log` fail with
    a traceback, `[red]` vanished and `:smile:` became an emoji."""
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        touch = add_due(engine, "C-[/b]", name="Ann [red]Lee[/red] :smile:", email="a@example.com")
    finally:
        engine.dispose()
    with running(Recorder()) as port:
        point_at(migrated_workspace, port)
        cli(migrated_workspace, "send", "--now", NOW)
    for command in (("log",), ("show", str(touch)), ("plan", "--now", NOW), ("status",)):
        code, stdout, stderr = cli(migrated_workspace, *command)
        assert code == 0, (command, stderr)
    _, stdout, _ = cli(migrated_workspace, "log")
    assert "C-[/b]" in stdout
    _, stdout, _ = cli(migrated_workspace, "show", str(touch))
    assert "[red]Lee[/red] :smile:" in stdout


def test_a_refused_login_pauses_until_the_owner_resumes(
    shop: tuple[Workspace, list[int]],
) -> None:
    workspace, _ = shop
    refusing = Faulty(step="mail", reply="530 5.7.0 Authentication required", times=1)
    with running(refusing) as port:
        point_at(workspace, port)
        code, _, stderr = cli(workspace, "send", "--now", NOW)
        assert code == 1
        assert "SENDING IS PAUSED" in stderr
        assert "appreciate send --resume" in stderr
        code, _, stderr = cli(workspace, "send", "--now", NOW)
        assert code == 1  # still paused: nothing is tried
        code, stdout, stderr = cli(workspace, "send", "--resume", "--now", NOW, "--format", "json")
    assert code == 0
    assert "Sending resumed" in stderr
    assert json.loads(stdout)["paused"] is None
    # the note refused at login went back to the queue untouched and went out after the resume
    assert sorted(r.rcpt_tos[0] for r in refusing.received) == [
        "ann@example.com",
        "bob@example.com",
    ]
    _, stdout, _ = cli(workspace, "log", "--format", "json")
    assert [(row["status"], row["attempts"]) for row in json.loads(stdout)] == [("sent", 1)] * 2


def test_attributes_that_are_no_json_object_count_as_none(
    shop: tuple[Workspace, list[int]], tmp_path: Path
) -> None:
    """The business's own application may store a list, a string or (SQLite) text that is no
    JSON in `customers.attributes`: `send` stopped with a traceback and left every note of the
    batch claimed, `preview` and `import customers` failed on that customer."""
    workspace, _ = shop
    engine = create_store_engine(workspace.database_url)
    wrong = ["[1, 2]", '"VIP"'] + (["{not json"] if engine.dialect.name == "sqlite" else [])
    try:
        for number, value in enumerate(wrong, start=3):
            add_due(engine, f"C-{number}", email=f"c{number}@example.com")
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "UPDATE customers SET attributes = "
                    + ("?" if engine.dialect.name == "sqlite" else "%s::json")
                    + f" WHERE external_id = 'C-{number}'",
                    (value,),
                )
    finally:
        engine.dispose()
    recorder = Recorder()
    with running(recorder) as port:
        point_at(workspace, port)
        code, stdout, stderr = cli(workspace, "send", "--now", NOW, "--format", "json")
    assert (code, stderr) == (0, "")
    assert json.loads(stdout) == {"outcomes": {"sent": 2 + len(wrong)}, "paused": None}
    code, shown, _ = cli(workspace, "preview", "birthday", "--customer", "C-3", "--now", NOW)
    assert code == 0
    assert "Happy birthday" in shown
    update = tmp_path / "customers.csv"
    update.write_text("id,name,email,pet_name\nC-3,C-3,c3@example.com,Biscuit\n")
    code, _, stderr = cli(workspace, "import", "customers", str(update))
    assert code == 0, stderr
    code, shown, _ = cli(workspace, "preview", "birthday", "--customer", "C-3", "--now", NOW)
    assert code == 0
