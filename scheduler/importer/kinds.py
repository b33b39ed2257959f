"""What each import kind's file holds, and how one row becomes a candidate for the store.

A candidate carries only the columns the file has: a column missing from the header leaves
the stored value alone, while an empty cell in a present column clears it. References to
customers stay external ids here; `scheduler.importer.batch` resolves them against the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from scheduler.importer.fields import (
    FieldError,
    parse_birthday,
    parse_date,
    parse_datetime,
    parse_email,
    parse_margin,
    parse_money,
    parse_opt_out,
    parse_time_zone,
)
from scheduler.store.models import EXTERNAL_ID_LENGTH

T = TypeVar("T")
Parser = Callable[[str, str], Any]


@dataclass
class Candidate:
    """A validated row: store values by column, and customer references still to resolve."""

    values: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)


RowParser = Callable[[dict[str, str], date], Candidate]


@dataclass(frozen=True)
class KindSpec:
    """One import kind: its columns and its row parser."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    parse: RowParser
    extra_columns_are_attributes: bool = False

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + self.optional


class RowErrors(ValueError):
    """Every problem found in one row, so the person fixes them all at once."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


class _Checker:
    """Runs field parsers, collecting their errors instead of stopping at the first."""

    def __init__(self, cells: dict[str, str]) -> None:
        self.cells = cells
        self.errors: list[FieldError] = []

    def has(self, column: str) -> bool:
        return column in self.cells

    def required_text(self, column: str, max_length: int | None = None) -> str:
        value = self.cells.get(column, "")
        if not value:
            self.errors.append(FieldError(column, "is empty"))
        elif max_length is not None and len(value) > max_length:
            self.errors.append(FieldError(column, f"is longer than {max_length} characters"))
        return value

    def required(self, column: str, parser: Callable[[str, str], T]) -> T | None:
        """The parsed cell; an empty one is an error."""
        if not self.cells.get(column):
            self.errors.append(FieldError(column, "is empty"))
            return None
        return self.optional(column, parser)

    def optional(self, column: str, parser: Callable[[str, str], T]) -> T | None:
        """The parsed cell, or None when it is empty."""
        value = self.cells.get(column, "")
        if not value:
            return None
        try:
            return parser(column, value)
        except FieldError as error:
            self.errors.append(error)
            return None

    def present(self, values: dict[str, Any], columns: tuple[tuple[str, Parser], ...]) -> None:
        """Parse each column the file has into `values` (an empty cell stores None)."""
        cells = self.cells
        for column, parser in columns:
            text = cells.get(column)
            if text is None:
                continue
            if not text:
                values[column] = None
                continue
            try:
                values[column] = parser(column, text)
            except FieldError as error:
                self.errors.append(error)
                values[column] = None

    def finish(self, candidate: Candidate) -> Candidate:
        """The candidate, or RowErrors listing the problems in the file's column order."""
        if self.errors:
            position = {column: index for index, column in enumerate(self.cells)}
            self.errors.sort(key=lambda error: position.get(error.column, len(position)))
            raise RowErrors(self.errors)
        return candidate


CUSTOMER_COLUMNS = ("email", "birthday", "timezone", "first_met_on", "customer_since", "opted_out")
_NOT_ATTRIBUTES = frozenset({"id", "name", *CUSTOMER_COLUMNS})
_CUSTOMER_PARSERS: tuple[tuple[str, Parser], ...] = (
    ("email", parse_email),
    ("timezone", parse_time_zone),
    ("first_met_on", parse_date),
    ("customer_since", parse_date),
)


def parse_customer(cells: dict[str, str], today: date) -> Candidate:
    check = _Checker(cells)
    values: dict[str, Any] = {
        "external_id": check.required_text("id", EXTERNAL_ID_LENGTH),
        "name": check.required_text("name"),
    }
    check.present(values, _CUSTOMER_PARSERS)
    if "birthday" in cells:
        birthday = check.optional("birthday", lambda c, v: parse_birthday(c, v, today))
        values["birth_year"] = birthday.year if birthday else None
        values["birth_month"] = birthday.month if birthday else None
        values["birth_day"] = birthday.day if birthday else None
    if "opted_out" in cells:
        values["opted_out_at"] = check.optional("opted_out", parse_opt_out)
    values["attributes"] = {
        column: value for column, value in cells.items() if column not in _NOT_ATTRIBUTES
    }
    return check.finish(Candidate(values))


def parse_order(cells: dict[str, str], today: date) -> Candidate:
    check = _Checker(cells)
    values: dict[str, Any] = {"external_id": check.required_text("id", EXTERNAL_ID_LENGTH)}
    customer = check.required_text("customer_id", EXTERNAL_ID_LENGTH)
    values["placed_at"] = check.required("placed_at", parse_datetime)
    values["amount"] = amount = check.required("amount", parse_money)
    if check.has("margin"):
        margin = check.optional("margin", parse_margin)
        if margin is not None and amount is not None and margin > amount:
            check.errors.append(FieldError("margin", f"{margin} is more than the amount {amount}"))
        values["margin"] = margin
    if check.has("description"):
        values["description"] = cells["description"] or None
    return check.finish(Candidate(values, refs={"customer_id": customer}))


def parse_referral(cells: dict[str, str], today: date) -> Candidate:
    check = _Checker(cells)
    referrer = check.required_text("referrer_id", EXTERNAL_ID_LENGTH)
    referred = check.required_text("referred_id", EXTERNAL_ID_LENGTH)
    if referrer and referrer == referred:
        check.errors.append(FieldError("referred_id", "a customer cannot refer themselves"))
    referred_on = check.required("referred_on", parse_date)
    if referred_on is not None and referred_on > today:
        check.errors.append(FieldError("referred_on", f'"{referred_on}" is in the future'))
    return check.finish(
        Candidate(
            {"referred_on": referred_on},
            refs={"referrer_id": referrer, "referred_id": referred},
        )
    )


def parse_meeting(cells: dict[str, str], today: date) -> Candidate:
    check = _Checker(cells)
    customer = check.required_text("customer_id", EXTERNAL_ID_LENGTH)
    values: dict[str, Any] = {"met_at": check.required("met_at", parse_datetime)}
    if check.has("note"):
        values["note"] = cells["note"] or None
    return check.finish(Candidate(values, refs={"customer_id": customer}))


KINDS: dict[str, KindSpec] = {
    "customers": KindSpec(
        "customers",
        ("id", "name"),
        CUSTOMER_COLUMNS,
        parse_customer,
        extra_columns_are_attributes=True,
    ),
    "orders": KindSpec(
        "orders",
        ("id", "customer_id", "placed_at", "amount"),
        ("margin", "description"),
        parse_order,
    ),
    "referrals": KindSpec(
        "referrals", ("referrer_id", "referred_id", "referred_on"), (), parse_referral
    ),
    "meetings": KindSpec("meetings", ("customer_id", "met_at"), ("note",), parse_meeting),
}
