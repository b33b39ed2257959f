"""What `appreciate config check` warns about: settings that work, but that an owner would not
want to run with, each with the fix.

Rules:
- the sender is still the example config's (`alex@example.com`): notes would go out in its name;
- an SMTP login over `security = "none"`: the password would cross the network in the clear;
- a password file, or the SQLite store, that other users of the machine can read;
- notes that would go out with no working way to opt out (no unsubscribe page and no address);
- what the config needs from outside the file and cannot find (`Config.environment_problems`:
  the store's URL, and the SMTP password when a username is set).
"""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from scheduler.config.file import Config

EXAMPLE_SENDER = "alex@example.com"


def config_warnings(config: Config) -> list[str]:
    """Every warning for `config` (see the module's rules), in the order of the file."""
    settings = config.settings
    warnings: list[str] = []
    if settings.business.sender_email == EXAMPLE_SENDER:
        warnings.append(
            f"business.sender_email is still the example's {EXAMPLE_SENDER}: set the address "
            "your notes come from"
        )
    smtp = settings.smtp
    if smtp.username and smtp.security == "none":
        warnings.append(
            'smtp.username is set with security = "none": the password would cross the network '
            'in the clear; use "starttls" or "tls"'
        )
    if smtp.username and smtp.password_file:
        warnings += _readable_by_others(
            config.base_dir / smtp.password_file, "smtp.password_file", "the SMTP password"
        )
    if not settings.unsubscribe_url and not settings.business.unsubscribe_email:
        warnings.append(
            "notes would go out with no way to unsubscribe: set [web] public_url to the https "
            "address where `appreciate web` (or `run` with [web] enabled) is reached, or "
            "business.unsubscribe_url to your own page, or business.unsubscribe_email"
        )
    problems = config.environment_problems()
    warnings += problems
    if not problems:
        store = _sqlite_file(config.database_url())
        if store is not None:
            warnings += _readable_by_others(store, "database.url", "the customer store")
    return warnings


def _readable_by_others(path: Path, key: str, what: str) -> list[str]:
    try:
        mode = path.stat().st_mode
    except OSError:
        return []  # missing or unreadable: the environment problems say so where it matters
    if mode & stat.S_IROTH:
        return [
            f"{key}: {path} ({what}) can be read by every user of this machine; "
            f"run `chmod 600 {path}`"
        ]
    return []


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
