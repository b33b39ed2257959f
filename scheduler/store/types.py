"""Column types that behave the same on SQLite and PostgreSQL.

- `UtcDateTime`: timezone-aware in Python, always UTC. PostgreSQL stores `timestamptz`. SQLite
  stores UTC as ISO text, `2027-03-01 09:00:00.000000` (the format SQLAlchemy itself uses);
  text without an offset is read as UTC, text with one (written by another application) is
  converted. Writing a naive datetime is a bug and raises.
- `OptOutTime`: a `UtcDateTime` for `customers.opted_out_at`. What SQLite holds there that is
  no time (text another application wrote: `'yes'`, `'2027-13-45'`) still means the customer
  opted out, so it reads as UNREADABLE_OPT_OUT (1970-01-01T00:00Z, shown as "opted out on
  1970-01-01"), never as None (which would write to them again) nor as an error (which would
  stop detection and every note).
- `Year`: a SMALLINT year of birth; what SQLite holds there that is no integer (text another
  application wrote: `''` or `'n/a'` for an unknown year) reads as None, not as text.
- `Attributes`: a customer's own facts, a JSON object. What another application stored there
  that is no JSON object (a list, a string, or on SQLite text that is no JSON) reads as `{}`,
  as `store.attributes` counts it, never as an error.
- `Money`: `Decimal` with two places. PostgreSQL stores `NUMERIC(14, 2)`; SQLite stores a REAL
  (so its own SQL can sum and compare), read back rounded to cents, which is exact for amounts
  below a hundred billion. What another application wrote that cannot be read in cents
  (SQLite: 1e300, infinity, text; PostgreSQL: 'NaN') reads as None, never an error; readers
  that need an amount leave out rows whose amount is not from 0 to LARGEST_AMOUNT in SQL
  (`store.calendar_edges.plausible`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Float, Numeric, SmallInteger
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from scheduler.store.utc_text import as_utc, aware_utc, aware_utc_or_none, sqlite_utc_text

__all__ = [
    "CENT",
    "LARGEST_AMOUNT",
    "UNREADABLE_OPT_OUT",
    "Attributes",
    "Money",
    "OptOutTime",
    "UtcDateTime",
    "Year",
    "aware_utc",
    "aware_utc_or_none",
]

CENT = Decimal("0.01")
LARGEST_AMOUNT = Decimal("999999999999.99")
"""The largest amount NUMERIC(14, 2) holds (and the importer takes)."""
UNREADABLE_OPT_OUT = datetime(1970, 1, 1, tzinfo=UTC)
"""When an opt-out whose stored time cannot be read counts as made (see `OptOutTime`)."""


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


class OptOutTime(UtcDateTime):
    """When a customer opted out, or None (see the module's docstring)."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        try:
            return aware_utc(value)
        except (ValueError, TypeError):
            return UNREADABLE_OPT_OUT


class Attributes(TypeDecorator[dict[str, Any]]):
    """A JSON object (see the module's docstring)."""

    impl = JSON
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        decode = dialect.type_descriptor(JSON()).result_processor(dialect, coltype)

        def process(value: Any) -> dict[str, Any]:
            try:
                found = decode(value) if decode else value
            except ValueError:  # text that is no JSON (json.JSONDecodeError)
                return {}
            return found if isinstance(found, dict) else {}

        return process


class Year(TypeDecorator[int]):
    """A year of birth: an integer, or None (see the module's docstring)."""

    impl = SmallInteger
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None


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
        """Cents; None for a stored value that is no amount (see the module's docstring)."""
        if value is None or isinstance(value, bytes):
            return None
        try:
            amount = Decimal(repr(value) if isinstance(value, float) else value)
            return amount.quantize(CENT) if amount.is_finite() else None
        except (ArithmeticError, ValueError, TypeError):
            return None  # text that is no number, or too many digits to hold in cents
