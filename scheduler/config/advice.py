"""What `appreciate config check` warns about: settings that work, but that an owner would not
want to run with, each with the fix.

Rules:
- the sender is still the example config's (`alex@example.com`): notes would go out in its name;
- an SMTP login over `security = "none"`: the password would cross the network in the clear;
- a password file, or the SQLite store, that other users of the machine can read;
- notes that would go out with no working way to opt out (no unsubscribe page and no address);
- what the config needs from outside the file and cannot find (`Config.environment_problems`:
  the store's URL, and the SMTP password when a username is set);
- DKIM: a key file other users can read, a key smaller than 2048 bits or larger than 4096
  (`DkimKey.size_warning`; one that cannot sign is an error, not a warning), and a signing
  domain that is neither the sender's domain nor a parent of it (DMARC would not count the
  signature: it must align with the From address).
"""

from __future__ import annotations

import stat
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import make_url

from scheduler.config.file import Config
from scheduler.errors import ConfigError

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
    if smtp.signs:
        warnings += _dkim_warnings(config)
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


def _dkim_warnings(config: Config) -> list[str]:
    smtp = config.settings.smtp
    sender = config.settings.business.sender_email
    warnings = _readable_by_others(
        config.base_dir / smtp.dkim_key_file, "smtp.dkim_key_file", "the DKIM private key"
    )
    try:
        key = config.dkim_key(unreadable_ok=True)  # unreadable: an environment problem
    except ConfigError:
        key = None  # `config check` reports it as an error
    size = key.size_warning() if key is not None else None
    if size:
        warnings.append(f"smtp.dkim_key_file: {size}")
    domain = _ascii_domain(sender)
    if domain != smtp.dkim_domain and not domain.endswith(f".{smtp.dkim_domain}"):
        warnings.append(
            f"smtp.dkim_domain {smtp.dkim_domain} is neither the domain of "
            f"business.sender_email ({sender}) nor a parent of it: receivers would not count "
            f"the signature for DMARC; sign as {domain} (or a domain it is part of)"
        )
    return warnings


def _ascii_domain(address: str) -> str:
    """The address's domain as DNS spells it (punycode for an internationalised one)."""
    domain = address.rpartition("@")[2].lower()
    if domain.isascii():
        return domain
    try:
        return validate_email(address, check_deliverability=False).ascii_domain
    except EmailNotValidError:  # pragma: no cover - the settings checked the address
        return domain


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
