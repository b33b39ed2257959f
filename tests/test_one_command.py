"""Only what the typed words need is built (scheduler.cli.one_command): every answer a person
can see stays exactly what the whole app gives."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from scheduler.cli.app import app
from scheduler.cli.one_command import first_word, only_command

COMMANDS = sorted(
    {command.name or command.callback.__name__ for command in app.registered_commands}  # type: ignore[union-attr]
    | {group.name for group in app.registered_groups if isinstance(group.name, str)}
)


def answer(built: typer.Typer, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(built, args, prog_name="appreciate", env={"COLUMNS": "100"})
    return result.exit_code, result.output


def test_every_command_is_named_in_the_app() -> None:
    assert {"init", "log", "status", "run", "import", "ltv", "config", "templates"} <= set(COMMANDS)


@pytest.mark.parametrize(
    "args", [[], ["--help"], ["-c", "x.toml", "--help"], ["-cx.toml", "--help"]]
)
def test_the_root_help_lists_every_command_as_the_whole_app_does(args: list[str]) -> None:
    lean = only_command(app, args)
    assert lean is not app
    assert answer(lean, args) == answer(app, args)
    listed = answer(lean, args)[1].split("Commands:")[1].split()
    assert set(COMMANDS) <= set(listed)


def test_the_config_option_alone_asks_for_a_command_as_before() -> None:
    args = ["--config=x.toml"]
    assert answer(only_command(app, args), args) == answer(app, args)
    assert "Missing command" in answer(app, args)[1]


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_alone_gives_its_own_help_unchanged(name: str) -> None:
    lean = only_command(app, [name, "--help"])
    assert len(lean.registered_commands) + len(lean.registered_groups) == 1
    assert answer(lean, [name, "--help"]) == answer(app, [name, "--help"])


@pytest.mark.parametrize(
    "args",
    [
        ["log", "--bogus"],
        ["log", "--limit", "minus"],
        ["ltv", "nonsense"],
        ["-c", "missing.toml", "status"],
    ],
)
def test_mistakes_get_the_same_answer_and_exit_code(args: list[str]) -> None:
    assert answer(only_command(app, args), args) == answer(app, args)
    assert answer(app, args)[0] != 0


def test_the_version_is_answered_as_before() -> None:
    assert answer(only_command(app, ["--version"]), ["--version"]) == answer(app, ["--version"])
    assert answer(app, ["--version"])[1].startswith("appreciate ")


@pytest.mark.parametrize("args", [["lgo"], ["--bogus", "log"], ["-c"]])
def test_anything_else_is_left_to_the_whole_app(args: list[str]) -> None:
    assert only_command(app, args) is app or first_word(args) is None


def test_a_misspelt_command_still_gets_a_suggestion() -> None:
    code, output = answer(only_command(app, ["lgo"]), ["lgo"])
    assert code == 2
    assert "Did you mean 'log'?" in output


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["log"], "log"),
        (["--config", "a.toml", "log", "--limit", "3"], "log"),
        (["-c", "a.toml", "status"], "status"),
        (["--config=a.toml", "ltv", "show"], "ltv"),
        (["-ca.toml", "run"], "run"),
        (["--version"], "--version"),
        (["-c"], None),
        ([], None),
    ],
)
def test_the_first_word_skips_only_the_config_option(args: list[str], word: str | None) -> None:
    assert first_word(args) == word
