"""The owner's login: one password, kept only as an argon2 hash, and what guards it.

Rules:
- The hash comes from `[web] password_hash_env` or `password_hash_file` (`appreciate web
  hash-password` makes one); the password itself is never stored, logged or printed.
- A session is a signed cookie (Starlette's, keyed by a secret made once and kept in the store,
  so every instance and restart accepts it): HttpOnly, SameSite=Strict, Secure when the public
  address is https, and it ends after SESSION_HOURS.
- Every owner POST carries the session's CSRF token (a hidden `csrf` field); one without it, or
  with another, is refused (403).
- Each failed login waits FAILED_DELAY seconds before it answers; after MAX_FAILURES failures
  within LOCKOUT, logins are refused until the oldest of them is LOCKOUT old, password or not.
  A login counts as failed from the moment its password is checked until it succeeds, so
  guesses sent all at once meet the same limit.
- Serving beyond this machine needs a password (`needs_password`): the command refuses
  otherwise, saying how to set one.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select
from starlette.requests import Request

from scheduler.store.db import conflict_insert, write_transaction
from scheduler.store.models import metadata

app_state = metadata.tables["app_state"]
SESSION_KEY_NAME = "web_session_key"
SESSION_HOURS = 12
FAILED_DELAY = 1.0
MAX_FAILURES = 10
LOCKOUT = timedelta(minutes=15)
HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of `password`, for `[web] password_hash_env` or `_file`."""
    return HASHER.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    """Whether `password` is the one `stored_hash` was made from (a malformed hash: no)."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_password(host: str) -> bool:
    """Whether serving on `host` reaches beyond this machine (anything but loopback)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return True


def session_secret(engine: Engine, now: datetime) -> str:
    """The key that signs session cookies: made once, kept in the store's `app_state`."""
    with write_transaction(engine) as connection:
        insert = conflict_insert(connection.dialect.name)
        connection.execute(
            insert(app_state)
            .values(name=SESSION_KEY_NAME, value=secrets.token_urlsafe(48), updated_at=now)
            .on_conflict_do_nothing()
        )
        key: str = connection.execute(
            select(app_state.c.value).where(app_state.c.name == SESSION_KEY_NAME)
        ).scalar_one()
    return key


class LoginGuard:
    """Failed logins in the last LOCKOUT, for the lockout (kept in memory: a restart forgets)."""

    def __init__(self) -> None:
        self._failures: deque[datetime] = deque()

    def locked_until(self, now: datetime) -> datetime | None:
        """When logins open again, or None when they are open now."""
        while self._failures and now - self._failures[0] >= LOCKOUT:
            self._failures.popleft()
        if len(self._failures) >= MAX_FAILURES:
            return self._failures[0] + LOCKOUT
        return None

    def trying(self, now: datetime) -> None:
        """A password about to be checked: a failure unless `succeeded` follows."""
        self._failures.append(now)

    def succeeded(self) -> None:
        self._failures.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    session: dict[str, Any] = request.session
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, sent: object) -> bool:
    """Whether `sent` (the form's `csrf` field) is this session's token."""
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(expected.encode(), sent.encode())
    )


def is_owner(request: Request) -> bool:
    return request.session.get("owner") is True
