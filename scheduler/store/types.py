"""Column types that behave the same on SQLite and PostgreSQL.

- `UtcDateTime`: timezone-aware in Python, always UTC. PostgreSQL stores `timestamptz`. SQLite
  stores UTC as ISO text, `2027-03-01 09:00:00.000000` (the format SQLAlchemy itself uses);
  text without an offset is read as UTC, text with one (written by another application) is
  converted. Writing a naive datetime is a bug and raises.
- `Money`: `Decimal` with two places. PostgreSQL stores `NUMERIC(14, 2)`; SQLite stores a REAL
  (so its own SQL can sum and compare), read back rounded to cents, which is exact for amounts
  below a hundred billion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Float, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

CENT = Decimal("0.01")


class _SQLiteIsoText(UserDefinedType[str]):
    """SQLite's DATETIME column holding text that UtcDateTime formats and parses itself
    (with the C-speed `isoformat`/`fromisoformat` instead of a regex per value). A user-defined
    type, so the dialect does not swap in its own DATETIME processing."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "DATETIME"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime column."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteIsoText()
        return dialect.type_descriptor(DateTime(timezone=True))

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one direct conversion per value (bulk imports bind millions)."""
        if dialect.name == "sqlite":
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_utc_text(value)
        return _as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp, found {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"refusing to store a naive datetime: {value!r}")
    return value.astimezone(UTC)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """`2027-03-01 09:00:00.000000`: the UTC moment, without its (always zero) offset."""
    if value is None:
        return None
    return _as_utc(value).isoformat(sep=" ", timespec="microseconds")[:26]


def _float_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class Money(TypeDecorator[Decimal]):
    """A Decimal amount with two places."""

    impl = Numeric(14, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Float())
        return dialect.type_descriptor(Numeric(14, 2))

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, a plain float."""
        if dialect.name == "sqlite":
            return _float_or_none
        return super().bind_processor(dialect)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(repr(value) if isinstance(value, float) else value).quantize(CENT)


def aware_utc(value: Any) -> datetime:
    """A timestamp read without its column type (an aggregate such as `max(due_at)`: SQLite
    returns the stored text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, found {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def aware_utc_or_none(value: Any) -> datetime | None:
    """Like `aware_utc`; NULL stays None."""
    return None if value is None else aware_utc(value)
