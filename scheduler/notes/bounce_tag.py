"""The tag in each note's return path (VERP): short, opaque, and authenticated, so a bounce
names the note it is about and a forged one cannot name another customer's.

Rules:
- A tag is 26 lower-case base32 characters: the first 8 bytes of an HMAC-SHA256 over the
  note's id, then the id (8 bytes) masked with a stream keyed by that HMAC, so tags of
  neighbouring notes share nothing and the id cannot be read without the key.
- The key is made once, 32 random bytes, and kept in the store (`app_state`), so every instance
  makes and checks the same tags; it never appears in a message or a log.
- `read_tag` finds the tag in any of a message's recipient addresses that match the configured
  `bounce_address` (case is ignored: some servers lower-case addresses) and returns the note's
  id, `FORGED` for a tag that fails its check, or None when no address carries one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Final, Literal

from sqlalchemy import Connection, select

from scheduler.store.db import conflict_insert
from scheduler.store.models import metadata

app_state = metadata.tables["app_state"]
KEY_NAME = "bounce_tag_key"
TAG_LENGTH = 26
FORGED: Final = "forged"


def tag_key(connection: Connection, now: datetime) -> bytes:
    """The tagging key, made the first time it is needed (inside a write transaction)."""
    insert = conflict_insert(connection.dialect.name)
    connection.execute(
        insert(app_state)
        .values(name=KEY_NAME, value=secrets.token_hex(32), updated_at=now)
        .on_conflict_do_nothing()
    )
    stored = connection.execute(
        select(app_state.c.value).where(app_state.c.name == KEY_NAME)
    ).scalar_one()
    return bytes.fromhex(stored)


def make_tag(key: bytes, touch_id: int) -> str:
    """The note's tag (see the module's rules)."""
    plain = touch_id.to_bytes(8, "big")
    mac = _mac(key, plain)
    masked = bytes(a ^ b for a, b in zip(plain, _mask(key, mac), strict=True))
    return base64.b32encode(mac + masked).decode().rstrip("=").lower()


def bounce_address_for(template: str, key: bytes, touch_id: int) -> str:
    """`[inbound] bounce_address` with the note's tag in place of `{tag}`."""
    return template.replace("{tag}", make_tag(key, touch_id))


def read_tag(template: str, key: bytes, addresses: Iterable[str]) -> int | Literal["forged"] | None:
    """The note an address's tag names (see the module's rules)."""
    pattern = _pattern(template)
    seen_forged = False
    for address in addresses:
        found = pattern.fullmatch(address.strip())
        if found is None:
            continue
        touch_id = _check(key, found.group("tag").lower())
        if touch_id is not None:
            return touch_id
        seen_forged = True
    return FORGED if seen_forged else None


def _pattern(template: str) -> re.Pattern[str]:
    before, _, after = template.partition("{tag}")
    return re.compile(
        f"{re.escape(before)}(?P<tag>[a-z2-7]{{{TAG_LENGTH}}}){re.escape(after)}", re.IGNORECASE
    )


def _check(key: bytes, tag: str) -> int | None:
    try:
        raw = base64.b32decode(tag.upper() + "=" * 6)
    except ValueError:
        return None
    if len(raw) != 16:
        return None
    mac, masked = raw[:8], raw[8:]
    plain = bytes(a ^ b for a, b in zip(masked, _mask(key, mac), strict=True))
    touch_id = int.from_bytes(plain, "big")
    if not hmac.compare_digest(tag, make_tag(key, touch_id)):  # also refuses stray pad bits
        return None
    return touch_id


def _mask(key: bytes, mac: bytes) -> bytes:
    return hmac.new(key, b"appreciate-tag-mask:" + mac, hashlib.sha256).digest()[:8]


def _mac(key: bytes, plain: bytes) -> bytes:
    return hmac.new(key, b"appreciate-tag:" + plain, hashlib.sha256).digest()[:8]
