"""What every command shares: the consoles, the global options' state, parsing of --now,
--as-of and --format, and turning AppreciateError into a clean message and exit code."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from typer.core import TyperGroup

from scheduler.clock import MAX_YEAR, MIN_YEAR, FixedClock, SystemClock, within_years
from scheduler.errors import AppreciateError, StoreError
from scheduler.output import OutputFormat, printable

if TYPE_CHECKING:
    import sqlite3

    from rich.console import Console
    from sqlalchemy import Engine

    from scheduler.config.file import Config


class AppreciateGroup(TyperGroup):
    """Turns AppreciateError into a message and an exit code, for every subcommand; so too a
    store that cannot be reached or used (never a traceback, never a statement's values)."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type differs by version
        try:
            return super().invoke(ctx)
        except AppreciateError as error:
            typer.echo(f"error: {printable(str(error))}", err=True)
            raise typer.Exit(error.exit_code) from None
        except Exception as error:
            from scheduler.store.db import store_failure

            reason = store_failure(error)
            if reason is None:
                raise
            typer.echo(f"error: the store could not be used: {printable(reason)}", err=True)
            raise typer.Exit(StoreError.exit_code) from None


class _LazyConsole:
    """A rich Console made when first used: loading rich takes a while, and `--help` or a
    command that fails early needs none. Off a terminal (a file, a pipe) it is `piped_width`
    wide when that is set, so tables are not squeezed into 80 columns."""

    piped_width: int | None = None

    def __init__(self, **options: Any) -> None:
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_console", None)

    def _made(self) -> Console:
        console: Console | None = object.__getattribute__(self, "_console")
        if console is None:
            from rich.console import Console

            console = Console(**object.__getattribute__(self, "_options"))
            if _LazyConsole.piped_width and not console.is_terminal:
                console.width = _LazyConsole.piped_width
            object.__setattr__(self, "_console", console)
        return console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._made(), name, value)


out = cast("Console", _LazyConsole(highlight=False, soft_wrap=True, emoji=False))
err = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True, emoji=False))


def widen_when_piped(width: int) -> None:
    """Give the consoles `width` columns when they write to a file or a pipe."""
    _LazyConsole.piped_width = width


@dataclass
class CliState:
    """What the global options say, shared with every command."""

    config_option: Path | None

    def config(self) -> Config:
        from scheduler.config.file import find_config, load_config

        return load_config(find_config(self.config_option, os.environ, Path.cwd()))


def cli_state(ctx: typer.Context) -> CliState:
    state = ctx.find_root().obj
    if not isinstance(state, CliState):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("the root command did not run")
    return state


def one_of(choices: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """An option callback that accepts only `choices` (or nothing)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f'"{value}" is not one of: {", ".join(choices)}')
        return value

    return check


def parse_now(value: str | None) -> datetime:
    """`--now`: an ISO 8601 moment with an offset, in the years appreciate reads (see
    `scheduler.clock.MIN_YEAR`); None: the real time."""
    if value is None:
        return SystemClock().now()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f'"{value}" is not an ISO 8601 date and time', param_hint="--now"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(
            f'"{value}" needs an offset, e.g. {value}+00:00 or {value}Z', param_hint="--now"
        )
    if not within_years(moment):
        raise typer.BadParameter(_outside_years(value), param_hint="--now")
    return FixedClock(moment).now()


def _outside_years(value: str) -> str:
    return f'"{value}" is outside the years {MIN_YEAR} to {MAX_YEAR}'


NowOption = Annotated[
    str | None,
    typer.Option(
        "--now", metavar="ISO", help="Act as if it were this moment (ISO 8601 with an offset)."
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]


def parse_date(value: str | None, option: str, *, any_year: bool = False) -> date | None:
    """`option`'s day (YYYY-MM-DD), in the years appreciate reads (see
    `scheduler.clock.MIN_YEAR`) unless `any_year` (a filter, such as `log --since`, that only
    compares); None when not given."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f'"{value}" is not a date (YYYY-MM-DD)', param_hint=option
        ) from None
    if not any_year and not within_years(day):
        raise typer.BadParameter(_outside_years(value), param_hint=option)
    return day


def short_time(moment: datetime | None) -> str:
    """`06-15 09:00`: a UTC time that fits a narrow column."""
    return "" if moment is None else f"{moment:%m-%d %H:%M}"


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="Count the orders placed up to and including this day (the business's time zone).",
    ),
]


@contextmanager
def opened_store(config: Config) -> Iterator[Engine]:
    """The config's store, opened as every command opens it (`open_store`: the schema is
    checked) and closed when the block ends, also on an error."""
    from scheduler.store.schema import open_store

    engine = open_store(config.database_url())
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def quick_store(ctx: typer.Context) -> Iterator[sqlite3.Connection | None]:
    """A read-only sqlite3 connection to the config's store when `log` and `status` can read it
    the quick way (a plain SQLite file at this version's schema: see
    `scheduler.service.sqlite_reads`), else None: then load the config and open the store in
    full (`opened_store`), which reports whatever is wrong."""
    from scheduler.config.locate import find_config, sqlite_store
    from scheduler.service.sqlite_reads import open_quick

    config_path = find_config(cli_state(ctx).config_option, os.environ, Path.cwd())
    store = sqlite_store(config_path)
    if store is None:
        yield None
        return
    with open_quick(store) as connection:
        yield connection
