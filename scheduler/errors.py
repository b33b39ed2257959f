"""The errors appreciate raises on purpose.

Each error keeps the facts as fields and builds its message from them, so the CLI can print
`str(error)` and tests can assert on the fields. Every one derives from `AppreciateError`, which
the CLI turns into a clean message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class AppreciateError(Exception):
    """Base of every error appreciate reports to a person."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where (key path, maybe a line) and what."""

    key: str
    message: str
    line: int | None = None

    def render(self, path: Path) -> str:
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(AppreciateError, ValueError):
    """A config file that cannot be used, with every problem found in it."""

    exit_code = 2

    def __init__(self, path: Path, problems: Sequence[ConfigProblem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.render(path) for problem in self.problems))


class ConfigNotFound(AppreciateError, FileNotFoundError):
    """No config at any of the places appreciate looks."""

    exit_code = 2

    def __init__(self, tried: Sequence[str]) -> None:
        self.tried = tuple(tried)
        lines = "\n".join(f"  - {place}" for place in self.tried)
        super().__init__(
            f"no config file found; tried:\n{lines}\n"
            "Create one with `appreciate init` (or pass --config PATH)."
        )


class StoreError(AppreciateError):
    """The customer store cannot be opened or used."""


class SchemaOutdated(StoreError):
    """The database schema is not the one this version of appreciate needs."""

    def __init__(self, url: str, current: str | None, expected: str) -> None:
        self.url = url
        self.current = current
        self.expected = expected
        if current is None:
            detail = "has no appreciate schema yet"
        else:
            detail = f"is at schema revision {current}, this appreciate needs {expected}"
        super().__init__(
            f"the database {url} {detail}: run `appreciate db upgrade` to bring it up to date"
        )


class SchemaTooNew(StoreError):
    """The database was migrated by a newer appreciate than this one."""

    def __init__(self, url: str, current: str) -> None:
        self.url = url
        self.current = current
        super().__init__(
            f"the database {url} is at schema revision {current}, which this appreciate does not "
            "know: it was upgraded by a newer version; upgrade appreciate instead"
        )


class ImportRejected(AppreciateError):
    """A CSV file that cannot be imported at all (as opposed to single bad rows)."""

    exit_code = 2

    def __init__(self, path: Path, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


class OptOutsUnreadable(StoreError):
    """Opt-outs kept on disk while the store was unavailable cannot be read: nothing may be sent
    (somebody who asked to stop may be among them)."""

    def __init__(self, folder: Path, reason: str) -> None:
        self.folder = folder
        self.reason = reason
        super().__init__(
            f"opt-outs waiting in {folder} cannot be read ({reason}): nothing is sent until "
            "they can be"
        )
