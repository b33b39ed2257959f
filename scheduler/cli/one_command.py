"""Build only what the words typed need: typer makes a click command of every command's
signature at each start (about a fifth of `appreciate log`'s start-up), though one runs.

Rules:
- The first word that is not a root `--config` option (`--config PATH`, `-c PATH`,
  `--config=PATH`, `-cPATH`) decides.
- A command's or group's name: the app with that command or group alone. The root's callback,
  options and settings stay, so the command's own help, errors and exit codes are unchanged.
- Nothing, `--help` or `--version`: the root's help (or the version, answered before any
  command), which needs each command's name and docstring only: every command keeps its help
  but none of its options are built (`tests/test_one_command.py` holds the output the same as
  the whole app's).
- Anything else (an unknown option, a name that is no command): the whole app, so
  click's own answers ("No such command", with its suggestion) are exactly as before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

ROOT_OPTIONS_WITH_VALUE = ("--config", "-c")
LISTING_ONLY = frozenset({"--help", "--version"})
"""Root options that need no command's options: the help lists names, the version is eager."""


def first_word(args: Sequence[str]) -> str | None:
    """The first of `args` (the words after `appreciate`) that is not a root `--config` option
    or its value; None when there is none."""
    remaining = iter(args)
    for word in remaining:
        if word in ROOT_OPTIONS_WITH_VALUE:
            if next(remaining, None) is None:
                return None
            continue
        if word.startswith(("--config=", "-c")):
            continue
        return word
    return None


def only_command(app: typer.Typer, args: Sequence[str]) -> typer.Typer:
    """`app` with only what `args` need built (see the module's rules)."""
    word = first_word(args)
    if word is None or word in LISTING_ONLY:
        return _help_only(app)
    if word.startswith("-"):
        return app
    commands = [command for command in app.registered_commands if _name(command) == word]
    groups = [group for group in app.registered_groups if group.name == word]
    if not commands and not groups:
        return app
    lean = copy.copy(app)
    lean.registered_commands = commands
    lean.registered_groups = groups
    return lean


def _name(command: CommandInfo) -> str:
    return command.name or get_command_name(getattr(command.callback, "__name__", ""))


def _help_only(app: typer.Typer) -> typer.Typer:
    """`app` whose commands keep their names and help but take no options, and whose groups
    hold no commands: enough to list them."""
    skeleton = copy.copy(app)
    skeleton.registered_commands = [
        _without_options(command) for command in app.registered_commands
    ]
    skeleton.registered_groups = []
    for group in app.registered_groups:
        empty = copy.copy(group)
        if group.typer_instance is not None:
            empty.typer_instance = copy.copy(group.typer_instance)
            empty.typer_instance.registered_commands = []
            empty.typer_instance.registered_groups = []
        skeleton.registered_groups.append(empty)
    return skeleton


def _without_options(command: CommandInfo) -> CommandInfo:
    callback: Callable[..., Any] | None = command.callback

    def takes_nothing() -> None:  # pragma: no cover - the root's help never runs a command
        """Stands in for a command when only its name and help are needed."""

    takes_nothing.__name__ = getattr(callback, "__name__", "command")
    takes_nothing.__doc__ = getattr(callback, "__doc__", None)
    stand_in = copy.copy(command)
    stand_in.callback = takes_nothing
    return stand_in
