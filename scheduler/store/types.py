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
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Float, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from scheduler.store.utc_text import as_utc, aware_utc, aware_utc_or_none, sqlite_utc_text

__all__ = ["CENT", "Money", "UtcDateTime", "aware_utc", "aware_utc_or_none"]

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
            return sqlite_utc_text
        return super().bind_processor(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return sqlite_utc_text(value)
        return as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return aware_utc_or_none(value)


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
