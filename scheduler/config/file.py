"""Finding, reading and checking the config file.

Every command finds its config the same way: `--config PATH`, else `$APPRECIATE_CONFIG`, else
`./appreciate.toml`. Problems are reported all at once, each naming the file, the line when it
can be found, and the key path: `appreciate.toml:12: smtp.port: expected an integer, got "abc"`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from scheduler.config.locate import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    DEFAULT_DATABASE_NAME,
    find_config,
)
from scheduler.config.secret_file import NotARegularFile, read_regular_file
from scheduler.config.settings import Settings
from scheduler.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from scheduler.config.dkim_key import DkimKey

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG_NAME", "Config", "find_config", "load_config"]
LARGEST_SECRET = 64 * 1024
"""Bytes a secret file (a password, a password hash) may hold; a larger one is a mistake."""


@dataclass(frozen=True)
class Config:
    """A loaded config: its file and its settings, with paths resolved against its folder."""

    path: Path
    settings: Settings

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def templates_dir(self) -> Path:
        return self.base_dir / self.settings.templates.directory

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The SQLAlchemy URL of the store.

        Rules: `url_env` names a variable holding the URL (for URLs with a password); an empty
        `url` means `appreciate.db` beside the config; a relative SQLite path is relative to the
        config's folder, not to wherever the command happens to run.
        """
        env = os.environ if environ is None else environ
        database = self.settings.database
        if database.url_env:
            url = env.get(database.url_env, "")
            if not url:
                raise self._problem(
                    "database.url_env", f"environment variable {database.url_env} is not set"
                )
            try:
                return normalize_database_url(url)
            except ValueError:  # never echo it: the URL may hold a password
                raise self._problem(
                    "database.url_env",
                    f"environment variable {database.url_env} does not hold a database URL "
                    "(e.g. postgresql://user:password@host/database)",
                ) from None
        if not database.url:
            return f"sqlite:///{self.base_dir / DEFAULT_DATABASE_NAME}"
        try:
            return normalize_database_url(database.url, self.base_dir)
        except ValueError as error:
            raise self._problem("database.url", str(error)) from None

    def _problem(self, key: str, message: str) -> ConfigError:
        """A problem with what `key` names outside the file (an environment variable, a file),
        with the line that sets the key."""
        line = self.line_of(tuple(key.split(".")))
        return ConfigError(self.path, [ConfigProblem(key, message, line)])

    def smtp_password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The SMTP password from its environment variable or file, or None when none is set."""
        smtp = self.settings.smtp
        return self._secret("smtp.password", smtp.password_env, smtp.password_file, environ)

    def imap_password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The IMAP password ([inbound] imap_password_env or imap_password_file), or None."""
        inbound = self.settings.inbound
        return self._secret(
            "inbound.imap_password", inbound.imap_password_env, inbound.imap_password_file, environ
        )

    def _secret(
        self, key: str, env_name: str, file_name: str, environ: Mapping[str, str] | None
    ) -> str | None:
        """A secret from the environment variable `env_name` (config key `{key}_env`) or the
        file `file_name` (`{key}_file`, relative to the config), or None when neither is set.
        The message of a problem names the key, the variable or the file, never the secret."""
        env = os.environ if environ is None else environ
        if env_name:
            value = env.get(env_name)
            if value is None:
                raise self._problem(f"{key}_env", f"environment variable {env_name} is not set")
            return self._one_line(f"{key}_env", f"environment variable {env_name}", value)
        if file_name:
            path = self.base_dir / file_name
            return self._one_line(f"{key}_file", str(path), self._read_secret(f"{key}_file", path))
        return None

    def _read_secret(self, key: str, path: Path) -> str:
        """The text of the secret file `path` (config key `key`): UTF-8, at most
        LARGEST_SECRET bytes, from a regular file or a link to one (a named pipe, `/dev/zero`
        or a folder named by mistake is refused, never waited for or read for ever)."""
        try:
            data = read_regular_file(path, LARGEST_SECRET)
        except NotARegularFile as error:
            raise self._problem(key, str(error)) from None
        except OSError as error:
            raise self._problem(key, f"cannot read {path}: {error.strerror}") from None
        if len(data) > LARGEST_SECRET:
            raise self._problem(
                key, f"{path} is far too large to hold a password (over {LARGEST_SECRET} bytes)"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._problem(key, f"cannot read {path}: not UTF-8 text") from None

    def _one_line(self, key: str, where: str, value: str) -> str:
        """`value` without its line end; one that is empty, or holds more than one line, is
        refused without being shown (the server would refuse the login, pausing every send)."""
        secret = value.rstrip("\r\n")
        if not secret:
            raise self._problem(key, f"{where} is empty")
        if any(char in secret for char in "\r\n\0"):
            raise self._problem(key, f"{where} holds more than one line: a password is one line")
        return secret

    def web_password_hash(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The owner's password hash from its environment variable or file, or None when none
        is set. Never the password: `appreciate web hash-password` makes the hash."""
        env = os.environ if environ is None else environ
        web = self.settings.web
        if web.password_hash_env:
            value = env.get(web.password_hash_env)
            if not value:
                raise self._problem(
                    "web.password_hash_env",
                    f"environment variable {web.password_hash_env} is not set",
                )
            return self._checked_hash("web.password_hash_env", value.strip())
        if web.password_hash_file:
            path = self.base_dir / web.password_hash_file
            text = self._read_secret("web.password_hash_file", path).strip()
            return self._checked_hash("web.password_hash_file", text)
        return None

    def dkim_key(self, *, unreadable_ok: bool = False) -> DkimKey | None:
        """The DKIM signing key from `[smtp] dkim_key_file` (relative to the config's folder),
        read and checked (see `scheduler.config.dkim_key`); None when notes are not signed, and
        with `unreadable_ok` when the file cannot be read (`config check`: a systemd credential
        exists only while the service runs; `environment_problems` reports it). Raises
        ConfigError naming the key and the file, never quoting the file."""
        smtp = self.settings.smtp
        if not smtp.dkim_key_file:
            return None
        from scheduler.config.dkim_key import (  # noqa: PLC0415 - cryptography: only to sign
            DkimKeyProblem,
            DkimKeyUnreadable,
            load_dkim_key,
        )

        try:
            return load_dkim_key(self.base_dir / smtp.dkim_key_file)
        except DkimKeyProblem as problem:
            if unreadable_ok and isinstance(problem, DkimKeyUnreadable):
                return None
            raise self._problem("smtp.dkim_key_file", str(problem)) from None

    def _dkim_key_readable(self, environ: Mapping[str, str] | None = None) -> None:
        """Raise ConfigError when the DKIM key file cannot be read or is not a regular file
        (for `environment_problems`; what it holds is `dkim_key`'s to check)."""
        path = self.base_dir / self.settings.smtp.dkim_key_file
        try:
            read_regular_file(path, 0)
        except NotARegularFile as error:
            raise self._problem("smtp.dkim_key_file", str(error)) from None
        except OSError as error:
            raise self._problem(
                "smtp.dkim_key_file", f"cannot read {path}: {error.strerror}"
            ) from None

    def _checked_hash(self, key: str, text: str) -> str:
        """`text` if it looks like an argon2 hash; a password put there by mistake is refused
        without being shown."""
        if not text.startswith("$argon2"):
            raise self._problem(
                key,
                "does not hold a password hash (one starts with $argon2): make one with "
                "`appreciate web hash-password`",
            )
        return text

    def line_of(self, key: Sequence[str]) -> int | None:
        """The line of the config file where `key` is set (or its table begins), if found."""
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None
        return _find_line(text, key)

    def environment_problems(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """What the config needs from outside the file and cannot find (for `config check`):
        the store's URL, the SMTP password when a username is set, the DKIM key's file when
        notes are signed, and the owner's password hash when one is named."""
        problems: list[str] = []
        checks: list[Callable[[Mapping[str, str] | None], str | None]] = [self.database_url]
        if self.settings.smtp.username:
            checks.append(self.smtp_password)
        if self.settings.inbound.imap_host:
            checks.append(self.imap_password)
        if self.settings.smtp.signs:
            checks.append(self._dkim_key_readable)
        checks.append(self.web_password_hash)
        for check in checks:
            try:
                check(environ)
            except ConfigError as error:
                problems.extend(str(error).splitlines())
        return problems


def normalize_database_url(url: str, base_dir: Path | None = None) -> str:
    """Pick appreciate's drivers and anchor relative SQLite paths at `base_dir`.

    `postgresql://` means psycopg 3 (`postgresql+psycopg://`); `sqlite:///relative.db` is taken
    relative to `base_dir` when one is given. Raises ValueError for a URL that is not one, or
    names another database (MySQL, ...) (its message never repeats the URL, which may hold a
    password).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a database URL (e.g. sqlite:///appreciate.db or postgresql://user@host/database)"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            "appreciate supports SQLite and PostgreSQL only (e.g. sqlite:///appreciate.db or "
            "postgresql://user@host/database)"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database and base_dir is not None:
        path = Path(parsed.database)
        if parsed.database != ":memory:" and not path.is_absolute():
            parsed = parsed.set(database=str(base_dir / path))
    return parsed.render_as_string(hide_password=False)


def load_config(path: Path) -> Config:
    """Read and validate the config at `path`; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {error.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [ConfigProblem("", "not UTF-8 text")]) from None
    return Config(path=path.resolve(), settings=parse_settings(text, path))


def parse_settings(text: str, path: Path) -> Settings:
    """Validate TOML `text` (read from `path`, named in messages) into Settings."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [_syntax_problem(error)]) from None
    problems = _secret_problems(raw, text)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        problems.extend(_problem(detail, raw, text) for detail in error.errors())
    else:
        if not problems:
            return settings
    raise ConfigError(path, problems)


def bundled_example() -> str:
    """The text of `config.example.toml` as shipped with this copy of appreciate."""
    return bundled_path("config.example.toml").read_text(encoding="utf-8")


def bundled_path(name: str) -> Path:
    """A file shipped beside the package: inside the wheel, or at the top of a checkout."""
    package = Path(str(resources.files("scheduler")))
    inside = package / "bundled" / name
    if inside.exists():
        return inside
    return package.parent / name


_SYNTAX_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _syntax_problem(error: tomllib.TOMLDecodeError) -> ConfigProblem:
    message = str(error)
    match = _SYNTAX_LINE.search(message)
    line = int(match.group(1)) if match else None
    return ConfigProblem("", f"not valid TOML: {_SYNTAX_LINE.sub('', message).strip()}", line)


def _secret_problems(raw: dict[str, Any], text: str) -> list[ConfigProblem]:
    """Secrets written inline are refused outright, with the safe way to give them."""
    problems: list[ConfigProblem] = []
    for section, key in (("smtp", "password"), ("inbound", "imap_password")):
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            problems.append(
                ConfigProblem(
                    f"{section}.{key}",
                    "passwords never go in the config file; put it in an environment variable "
                    f"named by {section}.{key}_env, or in a file named by {section}.{key}_file",
                    _find_line(text, (section, key)),
                )
            )
    database = raw.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        try:
            has_password = make_url(database["url"]).password is not None
        except ArgumentError:
            has_password = False
        if has_password:
            del database["url"]
            problems.append(
                ConfigProblem(
                    "database.url",
                    "this URL contains a password; put the whole URL in an environment variable "
                    "and name it with database.url_env instead",
                    _find_line(text, ("database", "url")),
                )
            )
    return problems


def _problem(detail: ErrorDetails, raw: Mapping[str, Any], text: str) -> ConfigProblem:
    location = tuple(str(part) for part in detail["loc"])
    kind = detail["type"]
    got = detail.get("input")
    if kind == "extra_forbidden":
        key = location
        message = "unknown key" + _suggestion(location, raw)
    elif kind == "missing":
        key = location
        message = "required but missing"
    else:
        key = location
        message = _describe(kind, detail, got)
    return ConfigProblem(".".join(key), message, _find_line(text, key))


_EXPECTED = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string (in quotes)",
    "bool_type": "true or false",
    "model_type": "a table",
    "dict_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _describe(kind: str, detail: ErrorDetails, got: object) -> str:
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_toml_repr(got)}"
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        return f"expected one of {expected.replace(chr(39), chr(34))}, got {_toml_repr(got)}"
    if kind == "value_error":
        error = detail.get("ctx", {}).get("error")
        return str(error) if error else detail["msg"]
    return f"{detail['msg'][0].lower()}{detail['msg'][1:]}, got {_toml_repr(got)}"


def _toml_repr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _suggestion(location: Sequence[str], raw: Mapping[str, Any]) -> str:
    """` (did you mean "port"?)` for a near-miss of a key this section knows."""
    model: type[BaseModel] = Settings
    for part in location[:-1]:
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    names = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(location[-1], names, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


def _find_line(text: str, key: Sequence[str]) -> int | None:
    """The line where `key` is set (or its table begins), if a simple scan can tell.

    Handles `[table]` headers with `key = value` lines and dotted keys. A key that is not
    written (a missing one) points at its table's header. Returns None for forms it does not
    follow (inline tables), so messages fall back to the key path alone.
    """
    table: tuple[str, ...] = ()
    table_line: int | None = None
    best = 0
    target = tuple(key)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            if target[: len(table)] == table and len(table) > best:
                table_line, best = number, len(table)
            continue
        assignment = _KEY.match(line)
        if assignment:
            dotted = tuple(part.strip("\"'") for part in assignment.group(1).split("."))
            if table + dotted == target:
                return number
    return table_line
