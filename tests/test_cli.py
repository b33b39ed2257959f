"""The command line as a person uses it: help everywhere, clean errors, exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import func, select, text
from typer.main import get_command

from scheduler.cli.app import app
from scheduler.config.file import load_config
from scheduler.progress import file_progress
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CONFIG_TEMPLATE, Workspace, run_cli


def _command_paths() -> Iterator[list[str]]:
    root: Any = get_command(app)

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(root, [])


COMMANDS = list(_command_paths())


def count_rows(database_url: str, table: str) -> int:
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            count: int = connection.execute(
                select(func.count()).select_from(metadata.tables[table])
            ).scalar_one()
    finally:
        engine.dispose()
    return count


def test_the_command_tree_is_the_documented_one() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"init", "demo", "config check", "db upgrade", "db status", "import"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "appreciate")
def test_every_command_has_help(path: list[str]) -> None:
    result = run_cli(*path, "--help")
    assert result.exit_code == 0
    assert "Usage: appreciate" in result.stdout
    description = result.stdout.split("\n\n", 2)[1].strip()
    assert len(description) > 15, f"{' '.join(path)} has no help text"


def test_python_dash_m_scheduler_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("appreciate ")


def test_a_missing_config_is_a_clean_error(tmp_path: Path) -> None:
    result = run_cli("--config", tmp_path / "nope.toml", "config", "check")
    assert result.exit_code == 2
    assert "error: no config file found" in result.stderr
    assert "appreciate init" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_prints_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[business]\nname = "x"\n\n[smtp]\nport = "abc"\n', encoding="utf-8")
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 2
    assert f'{path}:5: smtp.port: expected an integer, got "abc"' in result.stderr
    assert f"{path}:1: business.sender_name: required but missing" in result.stderr


def test_config_check_refuses_a_database_other_than_sqlite_or_postgresql(tmp_path: Path) -> None:
    """A MySQL URL, or one that is no URL, passed `config check` as ok (exit 0, a warning);
    every command then refused it."""
    path = tmp_path / "appreciate.toml"
    path.write_text(CONFIG_TEMPLATE.format(url="mysql://ada@db.internal/shop"), encoding="utf-8")
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 2
    assert (
        f"{path}:3: database.url: appreciate supports SQLite and PostgreSQL only "
        "(e.g. sqlite:///appreciate.db or postgresql://user@host/database)"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    path.write_text(CONFIG_TEMPLATE.format(url="not a url"), encoding="utf-8")
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 2
    assert f"{path}:3: database.url: not a database URL" in result.stderr


def test_config_check_accepts_a_good_config(migrated_workspace: Workspace) -> None:
    result = run_cli(
        "--config",
        migrated_workspace.path,
        "config",
        "check",
        env={"APPRECIATE_SMTP_PASSWORD": "x"},
    )
    assert result.exit_code == 0
    assert f"{migrated_workspace.path}: ok" in result.stdout


def write_config(tmp_path: Path, extra: str, sender: str = "ada@example.com") -> Path:
    path = tmp_path / "appreciate.toml"
    path.write_text(
        "[business]\n"
        'name = "Ada\'s Bakery"\nsender_name = "Ada"\n'
        f'sender_email = "{sender}"\n' + extra,
        encoding="utf-8",
    )
    return path


def test_config_check_warns_about_what_works_but_should_not_stay(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("hunter2\n", encoding="utf-8")
    secret.chmod(0o644)
    path = write_config(
        tmp_path,
        '\n[smtp]\nsecurity = "none"\nusername = "ada"\npassword_env = ""\n'
        'password_file = "smtp-password"\n',
        sender="alex@example.com",
    )
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: business.sender_email is still the example's alex@example.com: set the "
        "address your notes come from",
        'warning: smtp.username is set with security = "none": the password would cross the '
        'network in the clear; use "starttls" or "tls"',
        f"warning: smtp.password_file: {secret} (the SMTP password) can be read by every user "
        f"of this machine; run `chmod 600 {secret}`",
        NO_OPT_OUT,
    ]
    assert "hunter2" not in result.stdout + result.stderr
    secret.chmod(0o600)
    calm = write_config(
        tmp_path,
        '\n[smtp]\nusername = "ada"\npassword_env = ""\npassword_file = "smtp-password"\n'
        '[web]\npublic_url = "https://thanks.example.com"\n',
    )
    assert run_cli("--config", calm, "config", "check").stderr == ""


def test_config_check_refuses_named_pipes_as_secrets_at_once(tmp_path: Path) -> None:
    """A password or key file that is a named pipe nobody writes to (a leftover of a script,
    a mistyped credential path) kept `config check` (and `run`, and a reload) waiting for
    ever. Now each is refused at once, naming its key and the path; a link to a pipe too."""
    for name in ("smtp-password", "imap-password", "password-hash", "dkim.pem"):
        os.mkfifo(tmp_path / name)
    (tmp_path / "imap-link").symlink_to(tmp_path / "imap-password")
    smtp = '\n[smtp]\nusername = "ada"\npassword_env = ""\npassword_file = "smtp-password"\n'
    path = write_config(
        tmp_path,
        smtp + '[inbound]\nimap_host = "127.0.0.1"\nimap_user = "x"\n'
        'imap_password_file = "imap-link"\n[web]\npassword_hash_file = "password-hash"\n',
    )
    passwords = check_in_a_process(path)
    assert passwords.returncode == 0, passwords.stderr
    for key, name in (
        ("smtp.password_file", "smtp-password"),
        ("inbound.imap_password_file", "imap-link"),
        ("web.password_hash_file", "password-hash"),
    ):
        assert f"{key}: {tmp_path / name} is not a regular file (it is a named pipe)" in (
            passwords.stderr
        )
    signed = 'dkim_key_file = "dkim.pem"\ndkim_selector = "s"\ndkim_domain = "example.com"\n'
    signing = check_in_a_process(write_config(tmp_path, smtp + signed))
    assert signing.returncode == 2
    assert f"smtp.dkim_key_file: {tmp_path / 'dkim.pem'} is not a regular file" in signing.stderr


def check_in_a_process(path: Path) -> subprocess.CompletedProcess[str]:
    """`appreciate config check` in a process of its own, ended if it waits (a hang fails the
    test rather than stopping the run)."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "--config", str(path), "config", "check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


NO_OPT_OUT = (
    "warning: notes would go out with no way to unsubscribe: set [web] public_url to the https "
    "address where `appreciate web` (or `run` with [web] enabled) is reached, or "
    "business.unsubscribe_url to your own page, or business.unsubscribe_email"
)


@pytest.mark.parametrize(
    "way_out",
    [
        '[web]\npublic_url = "https://thanks.example.com/"\n',
        'unsubscribe_url = "https://ada.example/stop/{token}"\n',
        'unsubscribe_email = "stop@ada.example"\n',
    ],
)
def test_config_check_warns_when_notes_would_have_no_way_to_unsubscribe(
    tmp_path: Path, way_out: str
) -> None:
    assert NO_OPT_OUT in run_cli("--config", write_config(tmp_path, ""), "config", "check").stderr
    path = write_config(tmp_path, way_out)
    result = run_cli("--config", path, "config", "check")
    assert (result.exit_code, result.stderr) == (0, "")


def test_the_unsubscribe_link_is_the_page_appreciate_serves_unless_the_owner_names_another(
    tmp_path: Path,
) -> None:
    served = load_config(write_config(tmp_path, '[web]\npublic_url = "https://t.example/x/"\n'))
    assert served.settings.unsubscribe_url == "https://t.example/x/u/{token}"
    own = load_config(
        write_config(
            tmp_path,
            'unsubscribe_url = "https://ada.example/stop/{token}"\n'
            '[web]\npublic_url = "https://t.example"\n',
        )
    )
    assert own.settings.unsubscribe_url == "https://ada.example/stop/{token}"
    assert load_config(write_config(tmp_path, "")).settings.unsubscribe_url == ""


@pytest.mark.parametrize(
    "public_url", ["http://thanks.example.com", "thanks.example.com", "https://t.example/?a=1"]
)
def test_a_public_url_that_is_not_https_is_refused_with_its_key(
    tmp_path: Path, public_url: str
) -> None:
    path = write_config(tmp_path, f'[web]\npublic_url = "{public_url}"\n')
    result = run_cli("--config", path, "config", "check")
    assert result.exit_code != 0
    assert "web.public_url" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_wants_no_password_without_a_username(tmp_path: Path) -> None:
    """The example names APPRECIATE_SMTP_PASSWORD; with no login it is not needed."""
    path = write_config(tmp_path, '\n[smtp]\nusername = ""\n')
    result = run_cli("--config", path, "config", "check", env={"APPRECIATE_SMTP_PASSWORD": None})
    assert result.exit_code == 0
    assert "password" not in result.stderr


def test_config_check_warns_about_a_store_others_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    (tmp_path / "appreciate.db").write_bytes(b"")
    (tmp_path / "appreciate.db").chmod(0o644)
    result = run_cli("--config", path, "config", "check")
    assert "(the customer store) can be read by every user of this machine" in result.stderr


def test_a_database_url_with_a_password_is_never_printed(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[database]\nurl_env = "APPRECIATE_DB"\n')
    for url, expected in (
        ("postgres//ada:TopSecret2@db/x", "does not hold a database URL"),
        ("postgresql://ada:TopSecret2@127.0.0.1:1/x", "the store could not be used"),
    ):
        for command in (("log",), ("db", "upgrade"), ("db", "status"), ("config", "check")):
            result = run_cli("--config", path, *command, env={"APPRECIATE_DB": url})
            assert "TopSecret2" not in result.stdout + result.stderr, command
            assert "Traceback" not in result.stderr, command
            if command != ("config", "check"):
                assert result.exit_code != 0, command
                assert expected in result.stderr, (command, result.stderr)


def test_the_config_is_found_through_the_environment(migrated_workspace: Workspace) -> None:
    result = run_cli("config", "check", env={"APPRECIATE_CONFIG": str(migrated_workspace.path)})
    assert result.exit_code == 0
    assert str(migrated_workspace.path) in result.stdout


def test_init_creates_a_working_workspace(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    result = run_cli("init", folder)
    assert result.exit_code == 0
    assert (folder / "appreciate.toml").is_file()
    assert (folder / "templates" / "birthday.j2").is_file()
    assert "Next:" in result.stdout
    status = run_cli("--config", folder / "appreciate.toml", "db", "status")
    assert status.exit_code == 0


def test_init_never_overwrites_the_owners_files(tmp_path: Path) -> None:
    assert run_cli("init", tmp_path).exit_code == 0
    (tmp_path / "templates" / "birthday.j2").write_text("mine", encoding="utf-8")
    again = run_cli("init", tmp_path)
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    forced = run_cli("init", tmp_path, "--force")
    assert forced.exit_code == 0
    assert (tmp_path / "templates" / "birthday.j2").read_text(encoding="utf-8") == "mine"


def test_an_upgraded_workspace_gets_the_new_starters_and_keeps_its_own(tmp_path: Path) -> None:
    """A workspace made before review notes existed: `templates check` names the missing
    starter and the command that adds it; `templates add` adds only what is missing and never
    touches the owner's edited templates; a name that is no starter copies nothing."""
    assert run_cli("init", tmp_path).exit_code == 0
    config = tmp_path / "appreciate.toml"
    templates = tmp_path / "templates"
    (templates / "review_thanks.j2").unlink()
    (templates / "card.j2").unlink()
    mine = (templates / "birthday.j2").read_text(encoding="utf-8") + "{# edited by the owner #}\n"
    (templates / "birthday.j2").write_text(mine, encoding="utf-8")
    assert run_cli("--config", config, "db", "upgrade").exit_code == 0

    check = run_cli("--config", config, "templates", "check")
    assert check.exit_code == 1
    assert "review_thanks.j2: error: missing" in check.stdout
    assert "`appreciate templates add review_thanks`" in check.stdout

    unknown = run_cli("--config", config, "templates", "add", "review_thanks", "../appreciate.toml")
    assert unknown.exit_code == 1
    assert '"../appreciate.toml" is not a starter template' in unknown.stderr
    assert not (templates / "review_thanks.j2").exists()

    named = run_cli("--config", config, "templates", "add", "review_thanks", "birthday")
    assert named.exit_code == 0
    assert "Added 1 starter template" in named.stdout
    assert "1 of yours kept" in named.stdout
    assert not (templates / "card.j2").exists()

    everything = run_cli("--config", config, "templates", "add", "--format", "json")
    assert everything.exit_code == 0
    results = {row["template"]: row["result"] for row in json.loads(everything.stdout)}
    assert results["card.j2"] == "added"
    assert results["birthday.j2"] == results["review_thanks.j2"] == "kept"
    assert (templates / "birthday.j2").read_text(encoding="utf-8") == mine
    assert run_cli("--config", config, "templates", "check").exit_code == 0
    nothing = run_cli("--config", config, "templates", "add")
    assert "Nothing to add" in nothing.stdout


def test_templates_that_cannot_be_written_are_a_clean_error(tmp_path: Path) -> None:
    assert run_cli("init", tmp_path).exit_code == 0
    config = tmp_path / "appreciate.toml"
    shutil.rmtree(tmp_path / "templates")
    (tmp_path / "templates").write_text("not a folder", encoding="utf-8")
    result = run_cli("--config", config, "templates", "add")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'templates'} is not a folder")
    assert "Traceback" not in result.stderr


def test_a_folder_where_a_template_goes_is_named_not_kept(tmp_path: Path) -> None:
    """A folder named review_thanks.j2 was reported "kept as it is" while `templates check`
    called the template missing and every review note failed; now `templates add` names it
    and copies nothing, and adds the starter once it is moved away."""
    assert run_cli("init", tmp_path).exit_code == 0
    config = tmp_path / "appreciate.toml"
    templates = tmp_path / "templates"
    (templates / "review_thanks.j2").unlink()
    (templates / "card.j2").unlink()
    (templates / "review_thanks.j2").mkdir()
    result = run_cli("--config", config, "templates", "add")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {templates / 'review_thanks.j2'} is not a file: move it away and run "
        "`appreciate templates add` again (nothing was added)\n"
    )
    assert not (templates / "card.j2").exists()
    (templates / "review_thanks.j2").rmdir()
    result = run_cli("--config", config, "templates", "add", "--format", "csv")
    assert result.exit_code == 0
    assert "review_thanks.j2,added" in result.stdout
    assert (templates / "review_thanks.j2").is_file()


def test_commands_refuse_an_unmigrated_store(workspace: Workspace, tmp_path: Path) -> None:
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("id,name\nC-1,Ann\n", encoding="utf-8")
    result = run_cli("--config", workspace.path, "import", "customers", csv_file)
    assert result.exit_code == 1
    assert "appreciate db upgrade" in result.stderr
    status = run_cli("--config", workspace.path, "db", "status")
    assert status.exit_code == 1
    upgraded = run_cli("--config", workspace.path, "db", "upgrade")
    assert upgraded.exit_code == 0
    assert "upgraded from schema none" in upgraded.stdout
    assert run_cli("--config", workspace.path, "import", "customers", csv_file).exit_code == 0


def test_import_reports_and_exits_one_on_rejects(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "id,name,email\nC-1,Ann,ann@example.com\nC-2,,bob@example.com\nC-3,Cat,not-an-address\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    result = run_cli(
        "--config",
        migrated_workspace.path,
        "import",
        "customers",
        csv_file,
        "--rejects",
        rejects,
        "--now",
        "2026-11-23T12:00:00Z",
    )
    assert result.exit_code == 1
    assert "3 rows: 2 new, 0 updated, 0 unchanged, 1 rejected, 1 with warnings." in result.stdout
    rejected, warned = result.stderr.split("Imported with warnings")
    assert f"{csv_file}:3: name: is empty" in rejected
    assert f'{csv_file}:4: email: "not-an-address" is not a single valid' in warned
    assert rejects.read_text(encoding="utf-8").splitlines()[0] == "id,name,email,reason"


def test_import_with_warnings_only_exits_zero(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("id,name,email\nC-1,Ann,ann-at-example.com\n", encoding="utf-8")
    result = run_cli("--config", migrated_workspace.path, "import", "customers", csv_file)
    assert result.exit_code == 0
    assert "1 rows: 1 new, 0 updated, 0 unchanged, 0 rejected, 1 with warnings." in result.stdout
    assert "Imported with warnings:" in result.stderr
    assert "Rejected rows" not in result.stderr


def test_import_json_report(migrated_workspace: Workspace, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("id,name,shoe size\nC-1,Ann,38\n", encoding="utf-8")
    result = run_cli(
        "--config", migrated_workspace.path, "import", "customers", csv_file, "--format", "json"
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report == {
        "kind": "customers",
        "file": str(csv_file),
        "dry_run": False,
        "rows": 1,
        "inserted": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected_count": 0,
        "rejected": [],
        "warning_count": 0,
        "warnings": [],
        "ignored_columns": [],
        "mapping": [],
        "encoding": "UTF-8",
    }


def test_import_dry_run_writes_nothing(migrated_workspace: Workspace, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("id,name\nC-1,Ann\n", encoding="utf-8")
    result = run_cli(
        "--config", migrated_workspace.path, "import", "customers", csv_file, "--dry-run"
    )
    assert result.exit_code == 0
    assert "1 would be new" in result.stdout
    assert count_rows(migrated_workspace.database_url, "customers") == 0


def test_a_file_missing_a_required_column_is_refused(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("id,customer_id,amount\nA-1,C-1,10\n", encoding="utf-8")
    result = run_cli("--config", migrated_workspace.path, "import", "orders", csv_file)
    assert result.exit_code == 2
    assert f"{csv_file}:1: missing required column(s) placed_at" in result.stderr


def test_now_must_carry_an_offset(migrated_workspace: Workspace, tmp_path: Path) -> None:
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("id,name\nC-1,Ann\n", encoding="utf-8")
    result = run_cli(
        "--config",
        migrated_workspace.path,
        "import",
        "customers",
        csv_file,
        "--now",
        "2026-11-23T12:00:00",
    )
    assert result.exit_code == 2
    assert "needs an offset" in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["detect", "--now", "9999-12-31T23:59:59Z"], "--now"),
        (["run", "--once", "--now", "1899-12-31T23:00:00+00:00"], "--now"),
        (["cards", "--date", "9999-12-31"], "--date"),
        (["calls", "--date", "0001-01-01"], "--date"),
        (["ltv", "--as-of", "9999-12-31"], "--as-of"),
    ],
)
def test_moments_outside_the_years_appreciate_reads_are_refused_by_option(
    migrated_workspace: Workspace, args: list[str], option: str
) -> None:
    """A far-off `--now` or day was a traceback (a day's arithmetic left the calendar); now it
    is refused, naming the option and the years, and nothing is recorded."""
    result = run_cli("--config", migrated_workspace.path, *args)
    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.stderr
    assert "outside the years 1900 to 2200" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    store = create_store_engine(migrated_workspace.database_url)
    with store.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM touches")).scalar_one() == 0
    store.dispose()


def test_the_last_year_appreciate_reads_still_works(migrated_workspace: Workspace) -> None:
    late = "2200-12-31T23:59:59-12:00"  # already 2201 in UTC
    result = run_cli("--config", migrated_workspace.path, "detect", "--now", late)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["show", "99999999999999999999"],
        ["retry", "1", "99999999999999999999", "--queue"],
        ["calls", "done", "99999999999999999999"],
        ["log", "--limit", "99999999999999999999"],
        ["inbound", "list", "--limit", "99999999999999999999"],
        ["ltv", "--top", "99999999999999999999"],
    ],
)
def test_ids_and_counts_beyond_64_bits_are_refused_by_name(
    migrated_workspace: Workspace, args: list[str]
) -> None:
    """Such a number was a traceback from the store (an OverflowError on SQLite)."""
    result = run_cli("--config", migrated_workspace.path, *args)
    assert result.exit_code == 2
    assert "99999999999999999999 is not in the range" in result.stderr
    assert "9223372036854775807" in result.stderr


def test_log_filters_take_any_year(migrated_workspace: Workspace) -> None:
    for option, day in (("--until", "9999-12-31"), ("--since", "0001-01-01")):
        result = run_cli("--config", migrated_workspace.path, "log", option, day, "-f", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == []


def test_long_imports_show_a_progress_bar_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with file_progress(console, "Importing customers") as progress:
        assert progress is not None
        progress(512, 1024)
    assert "Importing customers" in buffer.getvalue()


def test_no_progress_bar_when_output_is_not_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with file_progress(console, "Importing customers") as progress:
        assert progress is None
