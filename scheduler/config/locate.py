"""Where the config is, and, for the quick read path, where a SQLite store is, with the
standard library alone (no pydantic, no SQLAlchemy: `log` and `status` start fast).

Rules (the full loader, `scheduler.config.file`, follows the same ones):
- The config: `--config PATH`, else `$APPRECIATE_CONFIG`, else `./appreciate.toml`. The first
  place given is the one used: a `--config` that does not exist is an error even if
  `./appreciate.toml` does, so a typo never silently loads another file.
- `sqlite_store` answers only the plain case: `[database] url` empty (`appreciate.db` beside
  the config) or `sqlite:///PATH` (relative to the config's folder) with no query, and no
  `url_env`. Anything else (PostgreSQL, a URL in the environment, a file that cannot be read
  or parsed) answers None, and the caller loads the config in full, which reports problems.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from scheduler.errors import ConfigNotFound

CONFIG_ENV = "APPRECIATE_CONFIG"
DEFAULT_CONFIG_NAME = "appreciate.toml"
DEFAULT_DATABASE_NAME = "appreciate.db"
SQLITE_PREFIX = "sqlite:///"


def find_config(option: str | Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """Locate the config (see the module's rules); ConfigNotFound lists where it looked."""
    tried: list[str] = []
    if option:
        path = Path(option)
        if path.is_file():
            return path.resolve()
        tried.append(f"--config {option} (not found)")
    elif environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
        if path.is_file():
            return path.resolve()
        tried.append(f"${CONFIG_ENV}={environ[CONFIG_ENV]} (not found)")
    else:
        tried.append("--config (not given)")
        tried.append(f"${CONFIG_ENV} (not set)")
        path = cwd / DEFAULT_CONFIG_NAME
        if path.is_file():
            return path.resolve()
        tried.append(f"{path} (not found)")
    raise ConfigNotFound(tried)


def sqlite_store(config_path: Path) -> Path | None:
    """The SQLite file the config names, in the plain case only (see the module's rules)."""
    url = _plain_database_url(config_path)
    if url is None:
        return None
    if not url:
        return config_path.parent / DEFAULT_DATABASE_NAME
    name = url.removeprefix(SQLITE_PREFIX)
    if name == url or not name or "?" in name or "%" in name or name == ":memory:":
        return None
    path = Path(name)
    return path if path.is_absolute() else config_path.parent / path


def _plain_database_url(config_path: Path) -> str | None:
    """`[database] url` ("" when not set); None when the file cannot be read or parsed, or
    the URL comes from the environment."""
    try:
        settings = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    database = settings.get("database", {})
    if not isinstance(database, dict) or database.get("url_env"):
        return None
    url = database.get("url", "")
    return url if isinstance(url, str) else None
