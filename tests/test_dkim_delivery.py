"""DKIM end to end: notes delivered to a real SMTP server (aiosmtpd) from a real store (SQLite
and PostgreSQL) arrive signed and verify; the commands refuse to start with a key that cannot
sign, naming it and never quoting it; `config check` shows the key and the DNS record, and
`config dkim-key` makes one."""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scheduler.clock import FixedClock
from scheduler.config.dkim_key import load_dkim_key
from scheduler.config.settings import Settings, SmtpSettings
from scheduler.delivery.deliver import Sender
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.message import build_message
from scheduler.notes.render import NoteRenderer
from scheduler.store.db import create_store_engine
from tests.conftest import Workspace, adas_bakery, run_cli
from tests.smtp_servers import Faulty, Recorder, running
from tests.test_cli_delivery import LATER, NOW, STARTERS, point_at
from tests.test_delivery import NOW as SEND_AT
from tests.test_delivery import TEMPLATES, add_due, run, server, state
from tests.test_dkim import (
    DOMAIN,
    MARKER,
    SELECTOR,
    key_file,
    note,
    pem,
    public_pem,
    published,
    rsa_key,
    signed_headers,
    verifies,
)

SIGNING = Settings(
    business=adas_bakery(
        reply_to="hello@example.com", unsubscribe_url="https://thanks.example.com/u/{token}"
    ),
    smtp=SmtpSettings(
        connections=2, dkim_key_file="dkim.pem", dkim_selector=SELECTOR, dkim_domain=DOMAIN
    ),
)


def secret_lines(key_pem: bytes) -> list[str]:
    """The lines of a PKCS#1 PEM that hold only private material: past the first eight (the
    version, the modulus and the public exponent, which the DNS record shows too), the private
    exponent and the primes."""
    lines = [line.decode() for line in key_pem.splitlines() if b"-----" not in line]
    assert len(lines) > 12
    return lines[8:]


def assert_nothing_of(key_pem: bytes, *texts: str) -> None:
    for line in secret_lines(key_pem):
        for text in texts:
            assert line not in text


def test_a_delivered_note_arrives_signed_and_verifies(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key())))
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    touch_id = add_due(engine, "C-1", name="Zoë Ångström", email="zoe@example.org")
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port), SEND_AT, config=SIGNING, signer=signer)
    assert report.counts == {"sent": 1}
    (received,) = recorder.received
    assert received.data.startswith(b"DKIM-Signature: ")
    assert verifies(received.data, key)
    names = signed_headers(received.data)
    expected = {"from", "to", "subject", "date", "message-id"}
    expected |= {"reply-to", "list-unsubscribe", "list-unsubscribe-post"}
    assert expected <= set(names)
    assert b"multipart/alternative" in received.data  # the starter templates write html too
    note = state(engine, touch_id)
    assert note["status"] == "sent"
    assert note["headers"].startswith("DKIM-Signature: ")  # kept as sent: `show` shows it
    assert f"d={DOMAIN};" in note["headers"]
    assert_nothing_of(key.pem, received.data.decode("utf-8"), note["headers"], caplog.text)


def test_a_retry_is_signed_anew_with_the_same_message_id(engine: Engine, tmp_path: Path) -> None:
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key(1024))))
    touch_id = add_due(engine, "C-1")
    faulty = Faulty(step="data", reply="451 4.3.0 Try later", times=1)
    with running(faulty) as port:
        for minutes in (0, 10):
            at = SEND_AT.replace(minute=minutes)
            run(engine, server(port), at, config=SIGNING, signer=DkimSigner(key, SELECTOR, DOMAIN))
    (received,) = faulty.received
    assert verifies(received.data, key)
    assert received.message["Message-ID"] == state(engine, touch_id)["message_id"]
    assert received.data.count(b"DKIM-Signature:") == 1


@pytest.mark.parametrize(
    ("inside", "why"),
    [
        (f"MIIB{MARKER}", "dkimpy failed (binascii.Error)"),
        (base64.b64encode(MARKER.encode() * 3).decode(), "the key could not be used"),
    ],
    ids=["not-base64", "not-a-key"],
)
def test_a_note_that_cannot_be_signed_fails_and_nothing_goes_unsigned(
    engine: Engine, tmp_path: Path, inside: str, why: str
) -> None:
    """Signing failing after a good start (here the key in memory garbled): that note fails
    with the reason, and nothing reaches the server."""
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key(1024))))
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    garbled = f"-----BEGIN RSA PRIVATE KEY-----\n{inside}\n-----END RSA PRIVATE KEY-----\n"
    signer.key = replace(key, pem=garbled.encode())
    touch_id = add_due(engine, "C-1")
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port), SEND_AT, config=SIGNING, signer=signer)
    assert report.counts == {"failed": 1}
    assert recorder.received == []
    reason = state(engine, touch_id)["reason"]
    assert reason == f"cannot build the message: it could not be signed with DKIM: {why}"
    assert MARKER not in reason


def test_a_sender_for_a_signing_config_needs_its_signer(engine: Engine) -> None:
    with pytest.raises(ValueError, match="DkimSigner"):
        Sender(
            engine,
            SIGNING,
            server(25),
            NoteRenderer(TEMPLATES),
            FixedClock(SEND_AT),
            owner="test-1",
        )


# The commands ----------------------------------------------------------------------------------


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


def sign_with(workspace: Workspace, key_file_name: str, domain: str = DOMAIN) -> None:
    """Point `[smtp]` (written last by `point_at`, or here) at the key."""
    text = workspace.path.read_text(encoding="utf-8")
    if "[smtp]" not in text:
        text += "\n[smtp]\n"
    text += (
        f'dkim_key_file = "{key_file_name}"\ndkim_selector = "{SELECTOR}"\n'
        f'dkim_domain = "{domain}"\n'
    )
    workspace.path.write_text(text, encoding="utf-8")


def cli(workspace: Workspace, *args: str) -> tuple[int, str, str]:
    result = run_cli("--config", workspace.path, *args)
    return result.exit_code, result.stdout, result.stderr


def statuses(workspace: Workspace) -> dict[int, str]:
    _, stdout, _ = cli(workspace, "log", "--format", "json")
    return {row["id"]: row["status"] for row in json.loads(stdout)}


def test_send_signs_every_note(shop: tuple[Workspace, list[int]]) -> None:
    workspace, _ = shop
    key = load_dkim_key(key_file(workspace.folder, pem(rsa_key())))
    recorder = Recorder()
    with running(recorder) as port:
        point_at(workspace, port)
        sign_with(workspace, "dkim.pem")
        code, stdout, stderr = cli(workspace, "send", "--now", NOW, "--format", "json")
    assert code == 0, stderr
    assert json.loads(stdout)["outcomes"] == {"sent": 2}
    assert len(recorder.received) == 2
    assert all(verifies(received.data, key) for received in recorder.received)
    assert_nothing_of(key.pem, stdout, stderr)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (f"-----BEGIN PRIVATE KEY-----\n{MARKER}\n-----END PRIVATE KEY-----\n", "holds no private"),
        (f"my key is {MARKER}\n", "is not a PEM private key"),
        ("public", "holds a public key or a certificate, not the private key"),
    ],
    ids=["missing", "garbled", "not-a-key", "public-key"],
)
def test_the_commands_that_send_refuse_to_start_with_a_key_that_cannot_sign(
    shop: tuple[Workspace, list[int]], content: str | None, expected: str
) -> None:
    workspace, ids = shop
    path = workspace.folder / "dkim.pem"
    if content == "public":
        path.write_bytes(public_pem())
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    refusing = Faulty(step="rcpt", reply="550 5.1.1 no such mailbox", times=2)
    with running(refusing) as port:
        point_at(workspace, port)
        cli(workspace, "send", "--now", NOW)  # not signed yet: both notes are refused
        assert set(statuses(workspace).values()) == {"failed"}
        sign_with(workspace, "dkim.pem")
        for command in (
            ("send", "--now", LATER),
            ("run", "--once", "--now", LATER),
            ("retry", str(ids[0]), "--now", LATER),
        ):
            code, stdout, stderr = cli(workspace, *command)
            assert code == 2, (command, stdout, stderr)
            line = key_line(workspace.path)
            assert f"{workspace.path}:{line}: smtp.dkim_key_file: " in stderr, command
            assert expected.format(path=path) in stderr, command
            assert MARKER not in stdout + stderr
            assert "Traceback" not in stderr
    assert refusing.received == []
    assert set(statuses(workspace).values()) == {"failed"}  # nothing sent, nothing requeued


def test_config_check_shows_the_key_and_the_record_that_verifies_its_signatures(
    tmp_path: Path,
) -> None:
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key())))
    path = tmp_path / "appreciate.toml"
    path.write_text(
        '[business]\nname = "Ada"\nsender_name = "Ada"\nsender_email = "ada@mail.example.com"\n'
        'unsubscribe_email = "stop@example.com"\n'
        f'[smtp]\ndkim_key_file = "dkim.pem"\ndkim_selector = "{SELECTOR}"\n'
        f'dkim_domain = "{DOMAIN}"\n',
        encoding="utf-8",
    )
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 0, result.stderr
    assert (
        f"  dkim      signed as {DOMAIN}, selector {SELECTOR}: RSA 2048-bit key in {key.path}"
        in result.stdout
    )
    (record,) = [line for line in result.stdout.splitlines() if "._domainkey." in line]
    assert record.strip().startswith(f"{SELECTOR}._domainkey.{DOMAIN} TXT ")
    assert published(record) == key.txt_value.encode()
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    assert verifies(signer.sign(build_message(note())).data, key)
    assert result.stderr == ""  # a parent domain of the sender's aligns: no warning
    assert_nothing_of(key.pem, result.stdout, result.stderr)


def write_signing_config(tmp_path: Path, sender: str, domain: str, key: bytes) -> Path:
    key_file(tmp_path, key)
    path = tmp_path / "appreciate.toml"
    path.write_text(
        f'[business]\nname = "Ada"\nsender_name = "Ada"\nsender_email = "{sender}"\n'
        'unsubscribe_email = "stop@example.com"\n'
        f'[smtp]\ndkim_key_file = "dkim.pem"\ndkim_selector = "{SELECTOR}"\n'
        f'dkim_domain = "{domain}"\n',
        encoding="utf-8",
    )
    return path


def test_config_check_warns_about_a_weak_key_others_can_read_signing_for_another_domain(
    tmp_path: Path,
) -> None:
    path = write_signing_config(tmp_path, "ada@example.com", "other.example", pem(rsa_key(1024)))
    (tmp_path / "dkim.pem").chmod(0o644)
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    key = tmp_path / "dkim.pem"
    assert warnings == [
        f"warning: smtp.dkim_key_file: {key} (the DKIM private key) can be read by every user of "
        f"this machine; run `chmod 600 {key}`",
        f"warning: smtp.dkim_key_file: {key} is a 1024-bit RSA key: receivers still accept it, "
        "but 2048 bits is the norm; make one with `appreciate config dkim-key` and publish its "
        "record",
        "warning: smtp.dkim_domain other.example is neither the domain of business.sender_email "
        "(ada@example.com) nor a parent of it: receivers would not count the signature for "
        "DMARC; sign as example.com (or a domain it is part of)",
    ]
    aligned = write_signing_config(tmp_path, "ada@Example.com", "example.com", pem(rsa_key()))
    assert run_cli("--config", aligned, "config", "check").stderr == ""
    child = write_signing_config(tmp_path, "ada@example.com", "mail.example.com", pem(rsa_key()))
    assert (
        "smtp.dkim_domain mail.example.com is neither"
        in run_cli("--config", child, "config", "check").stderr
    )


def key_line(config: Path) -> int:
    """The line of `config` that sets dkim_key_file (what a problem with the key names)."""
    lines = config.read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.startswith("dkim_key_file"))


def test_config_check_fails_on_a_key_that_cannot_sign_and_warns_on_one_it_cannot_read(
    tmp_path: Path,
) -> None:
    path = write_signing_config(
        tmp_path, "ada@example.com", DOMAIN, f"not a key {MARKER}\n".encode()
    )
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 2
    line = key_line(path)
    assert f"error: {path}:{line}: smtp.dkim_key_file: {tmp_path / 'dkim.pem'} is not a PEM" in (
        result.stderr
    )
    assert MARKER not in result.stdout + result.stderr
    (tmp_path / "dkim.pem").unlink()  # e.g. a systemd credential: there only for the service
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 0
    assert "cannot be read here" in result.stdout
    assert f"smtp.dkim_key_file: cannot read {tmp_path / 'dkim.pem'}" in result.stderr


def test_config_check_says_when_notes_are_not_signed(migrated_workspace: Workspace) -> None:
    result = run_cli("--config", migrated_workspace.path, "config", "check")
    assert "  dkim      off" in result.stdout
    assert "_domainkey" not in result.stdout


def test_dkim_key_makes_a_key_and_prints_the_record_and_the_settings(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "dkim.pem"
    out.parent.mkdir()
    result = run_cli(
        "config", "dkim-key", "--selector", "Mail2026", "--domain", "Example.com", "--out", out
    )
    assert result.exit_code == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    key = load_dkim_key(out)
    assert key.bits == 2048
    (record,) = [line for line in result.stdout.splitlines() if "._domainkey." in line]
    assert record.strip().startswith("mail2026._domainkey.example.com TXT ")
    assert published(record) == key.txt_value.encode()
    assert f'  dkim_key_file = "{out}"' in result.stdout
    assert '  dkim_selector = "mail2026"\n  dkim_domain = "example.com"' in result.stdout
    assert_nothing_of(key.pem, result.stdout, result.stderr)
    settings = re.findall(r"^  (dkim_\w+ = .*)$", result.stdout, flags=re.MULTILINE)
    config = tmp_path / "appreciate.toml"
    config.write_text(
        '[business]\nname = "Ada"\nsender_name = "Ada"\nsender_email = "ada@example.com"\n'
        "[smtp]\n" + "\n".join(settings) + "\n",
        encoding="utf-8",
    )
    check = run_cli("--config", config, "config", "check")
    assert check.exit_code == 0, check.stderr
    assert record in check.stdout

    again = run_cli(
        "config", "dkim-key", "--selector", "s", "--domain", "example.com", "--out", out
    )
    assert again.exit_code == 2
    assert "exists already" in again.stderr
    assert load_dkim_key(out).public_key == key.public_key


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--selector", "a b", "--domain", "example.com"], "expected a DKIM selector"),
        (["--selector", "s", "--domain", "localhost"], "expected a domain name"),
        (["--selector", "s", "--domain", "example.com", "--bits", "1024"], "not one of 2048"),
    ],
)
def test_dkim_key_checks_what_it_is_given(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_cli("config", "dkim-key", *args, "--out", tmp_path / "k.pem")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert not (tmp_path / "k.pem").exists()
