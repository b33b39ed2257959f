"""Each customer's unsubscribe token, made once when first needed, and the link it goes in.

Rules:
- A token is `secrets.token_urlsafe(24)`: 32 URL-safe characters, 192 random bits. Each
  customer gets one, stored in `unsubscribe_tokens`, and keeps it.
- Senders racing to make the same customer's token agree: rows go in with "on conflict do
  nothing" and the stored rows are read back, so everyone returns the token that won.
- The ids must be existing customers'. On SQLite, call `tokens_for` in a transaction that
  holds the write lock (`scheduler.store.db.write_transaction`) when it may create tokens: a
  transaction that has read cannot start writing once another connection has committed.
- The link is `Settings.unsubscribe_url` (`[business] unsubscribe_url`, else the page at
  `[web] public_url`) with `{token}` replaced by the URL-quoted token; without either there is
  no link.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from urllib.parse import quote

from sqlalchemy import Connection, select

from scheduler.config.settings import Settings
from scheduler.errors import StoreError
from scheduler.store.bulk import chunked
from scheduler.store.db import conflict_insert
from scheduler.store.models import metadata

unsubscribe_tokens = metadata.tables["unsubscribe_tokens"]
TOKEN_BYTES = 24
MAX_TOKEN_LENGTH = 64
"""The column's width: a longer token is never looked up (the unsubscribe page)."""
ATTEMPTS = 3
"""Rounds of creating: a new token equal to a stored one (never seen) is simply made again."""


def tokens_for(connection: Connection, customer_ids: Iterable[int]) -> dict[int, str]:
    """Every given customer's token, creating the missing ones (see the module's rules)."""
    wanted = sorted(set(customer_ids))
    found = read_tokens(connection, wanted)
    missing = [customer_id for customer_id in wanted if customer_id not in found]
    insert = conflict_insert(connection.dialect.name)
    for _ in range(ATTEMPTS):
        if not missing:
            return found
        for chunk in chunked(missing):
            rows = [{"customer_id": who, "token": new_token()} for who in chunk]
            connection.execute(insert(unsubscribe_tokens).values(rows).on_conflict_do_nothing())
        found.update(read_tokens(connection, missing))
        missing = [customer_id for customer_id in missing if customer_id not in found]
    if missing:  # pragma: no cover - needs 192-bit collisions three times over
        raise StoreError(f"could not make unsubscribe tokens for customers {missing[:10]}")
    return found


def read_tokens(connection: Connection, customer_ids: Iterable[int]) -> dict[int, str]:
    """The stored tokens of these customers (those without one are left out). Writes nothing."""
    found: dict[int, str] = {}
    for chunk in chunked(sorted(set(customer_ids))):
        rows = connection.execute(
            select(unsubscribe_tokens.c.customer_id, unsubscribe_tokens.c.token).where(
                unsubscribe_tokens.c.customer_id.in_(chunk)
            )
        )
        found.update((row.customer_id, row.token) for row in rows)
    return found


def new_token() -> str:
    """A fresh, unguessable token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def unsubscribe_link(settings: Settings, token: str) -> str | None:
    """The customer's unsubscribe URL, or None when there is no unsubscribe page."""
    template = settings.unsubscribe_url
    if not template:
        return None
    return template.replace("{token}", quote(token, safe=""))
