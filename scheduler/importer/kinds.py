"""What each import kind's file holds, and how one row becomes a candidate for the store.

A candidate carries only the columns the file has: a column missing from the header leaves
the stored value alone, while an empty cell in a present column clears it. References to
customers stay external ids here; `scheduler.importer.batch` resolves them against the store.

A customer's email that is not a valid address does not reject the customer: the row is
imported without it (a new customer has none, a stored one keeps theirs) and carries a
warning. In a row rejected for another reason it is one more error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from scheduler.config.import_columns import (
    ATTRIBUTE_KINDS,
    IMPORT_KINDS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
)
from scheduler.importer.fields import (
    FieldError,
    LocalTime,
    contact_text,
    parse_birthday,
    parse_date,
    parse_datetime,
    parse_email,
    parse_name,
    parse_opt_out,
    parse_time_zone,
    phone_parser,
    quoted,
)
from scheduler.importer.money import AmountFormat, amount_format
from scheduler.store.models import EXTERNAL_ID_LENGTH, POSTAL_LENGTHS, REVIEW_SITE_LENGTH
from scheduler.store.review_values import REVIEW_TEXT_LENGTH, read_rating, url_problem

T = TypeVar("T")
Parser = Callable[[str, str], Any]


@dataclass
class Candidate:
    """A validated row: store values by column, customer references still to resolve, and
    the cells left out with a warning instead of rejecting the row."""

    values: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    warnings: tuple[FieldError, ...] = ()


@dataclass(frozen=True)
class RowContext:
    """What reading a row needs beyond its cells: the business's today and amount format."""

    today: date
    amounts: AmountFormat

    @classmethod
    def plain(cls, today: date) -> RowContext:
        """Amounts as en_US writes them, without a currency."""
        return cls(today, amount_format())


RowParser = Callable[[dict[str, str], RowContext], Candidate]


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
        self.warnings: tuple[FieldError, ...] = ()

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

    def warn(self, values: dict[str, Any], column: str, parser: Parser) -> None:
        """Parse `column` into `values` if the file has it; a bad cell is left out of
        `values` with a warning (an empty one clears the value)."""
        text = self.cells.get(column)
        if text is None:
            return
        try:
            values[column] = parser(column, text) if text else None
        except FieldError as error:
            self.warnings = (*self.warnings, error)

    def finish(self, candidate: Candidate) -> Candidate:
        """The candidate, or RowErrors listing the problems (warnings among them) in the
        file's column order."""
        if self.errors:
            self.errors.extend(self.warnings)
            position = {column: index for index, column in enumerate(self.cells)}
            self.errors.sort(key=lambda error: position.get(error.column, len(position)))
            raise RowErrors(self.errors)
        if self.warnings:
            candidate.warnings = self.warnings
        return candidate


CUSTOMER_COLUMNS = OPTIONAL_COLUMNS["customers"]
_NOT_ATTRIBUTES = frozenset({*REQUIRED_COLUMNS["customers"], *CUSTOMER_COLUMNS})
_CUSTOMER_PARSERS: tuple[tuple[str, Parser], ...] = (
    ("timezone", parse_time_zone),
    ("first_met_on", parse_date),
    ("customer_since", parse_date),
    ("phone", phone_parser(POSTAL_LENGTHS["phone"])),
    *(
        (column, contact_text(length))
        for column, length in POSTAL_LENGTHS.items()
        if column != "phone"
    ),
)


def parse_customer(cells: dict[str, str], context: RowContext) -> Candidate:
    check = _Checker(cells)
    values: dict[str, Any] = {
        "external_id": check.required_text("id", EXTERNAL_ID_LENGTH),
    }
    values["name"] = check.required("name", parse_name) or ""
    check.warn(values, "email", parse_email)
    check.present(values, _CUSTOMER_PARSERS)
    if "birthday" in cells:
        today = context.today
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


def parse_order(cells: dict[str, str], context: RowContext) -> Candidate:
    check = _Checker(cells)
    values: dict[str, Any] = {"external_id": check.required_text("id", EXTERNAL_ID_LENGTH)}
    customer = check.required_text("customer_id", EXTERNAL_ID_LENGTH)
    values["placed_at"] = check.required("placed_at", parse_datetime)
    values["amount"] = amount = check.required("amount", context.amounts.amount)
    if check.has("margin"):
        margin = check.optional("margin", context.amounts.margin)
        if margin is not None and amount is not None and margin > amount:
            check.errors.append(FieldError("margin", f"{margin} is more than the amount {amount}"))
        values["margin"] = margin
    if check.has("description"):
        values["description"] = cells["description"] or None
    return check.finish(Candidate(values, refs={"customer_id": customer}))


def parse_referral(cells: dict[str, str], context: RowContext) -> Candidate:
    check = _Checker(cells)
    referrer = check.required_text("referrer_id", EXTERNAL_ID_LENGTH)
    referred = check.required_text("referred_id", EXTERNAL_ID_LENGTH)
    if referrer and referrer == referred:
        check.errors.append(FieldError("referred_id", "a customer cannot refer themselves"))
    referred_on = check.required("referred_on", parse_date)
    if referred_on is not None and referred_on > context.today:
        check.errors.append(FieldError("referred_on", f'"{referred_on}" is in the future'))
    return check.finish(
        Candidate(
            {"referred_on": referred_on},
            refs={"referrer_id": referrer, "referred_id": referred},
        )
    )


def parse_meeting(cells: dict[str, str], context: RowContext) -> Candidate:
    check = _Checker(cells)
    customer = check.required_text("customer_id", EXTERNAL_ID_LENGTH)
    values: dict[str, Any] = {"met_at": check.required("met_at", parse_datetime)}
    if check.has("note"):
        values["note"] = cells["note"] or None
    return check.finish(Candidate(values, refs={"customer_id": customer}))


def parse_review(cells: dict[str, str], context: RowContext) -> Candidate:
    """A review: `id` (else one derived from customer, time and `where`: see `review_id`),
    the customer, when (not after tomorrow), and what is known of it. A bad `where`, `url`
    or `rating`, and a `text` that is too long, do not reject the review (it is still
    thanked): the cell is left out (the text cut) with a warning."""
    check = _Checker(cells)
    customer = check.required_text("customer_id", EXTERNAL_ID_LENGTH)
    reviewed_at = check.required("reviewed_at", parse_datetime)
    if reviewed_at is not None and _written_day(reviewed_at) > context.today + timedelta(days=1):
        check.errors.append(
            FieldError("reviewed_at", f"{quoted(cells['reviewed_at'])} is in the future")
        )
    values: dict[str, Any] = {"reviewed_at": reviewed_at}
    check.warn(values, "where", _parse_site)
    if "where" in values:
        values["site"] = values.pop("where")
    check.warn(values, "url", _parse_url)
    check.warn(values, "rating", _parse_rating)
    if check.has("text"):
        text = cells["text"]
        if len(text) > REVIEW_TEXT_LENGTH:
            cut = FieldError(
                "text", f"is {len(text):,} characters long: kept the first {REVIEW_TEXT_LENGTH:,}"
            )
            check.warnings = (*check.warnings, cut)
            text = text[:REVIEW_TEXT_LENGTH]
        values["text"] = text or None
    given = cells.get("id", "")
    if len(given) > EXTERNAL_ID_LENGTH:
        check.errors.append(FieldError("id", f"is longer than {EXTERNAL_ID_LENGTH} characters"))
    if reviewed_at is not None:
        values["external_id"] = given or review_id(customer, reviewed_at, cells.get("where", ""))
    return check.finish(Candidate(values, refs={"customer_id": customer}))


def review_id(customer: str, reviewed_at: datetime | LocalTime, where: str) -> str:
    """The id of a review given without one: `auto-` and a digest of the customer's id, the
    time as written (an exact time in UTC) and `where` (case and spacing ignored), so the same
    row imported again is the same review."""
    written = reviewed_at.wall if isinstance(reviewed_at, LocalTime) else reviewed_at
    moment = written.isoformat()
    site = " ".join(where.split()).casefold()
    digest = hashlib.sha256("\x1f".join((customer, moment, site)).encode()).hexdigest()
    return f"auto-{digest[:32]}"


def _written_day(value: datetime | LocalTime) -> date:
    return value.wall.date() if isinstance(value, LocalTime) else value.date()


def _parse_site(column: str, text: str) -> str:
    site = " ".join(text.split())
    if len(site) > REVIEW_SITE_LENGTH:
        raise FieldError(
            column, f"is longer than {REVIEW_SITE_LENGTH} characters: left out of the review"
        )
    return site


def _parse_url(column: str, text: str) -> str:
    problem = url_problem(text)
    if problem is not None:
        raise FieldError(column, f"{quoted(text)} {problem}: left out of the review")
    return text


def _parse_rating(column: str, text: str) -> int:
    stars = read_rating(text)
    if stars is None:
        raise FieldError(
            column, f"{quoted(text)} is not whole stars from 1 to 5: left out of the review"
        )
    return stars


_PARSERS: dict[str, RowParser] = {
    "customers": parse_customer,
    "orders": parse_order,
    "referrals": parse_referral,
    "meetings": parse_meeting,
    "reviews": parse_review,
}
KINDS: dict[str, KindSpec] = {
    kind: KindSpec(
        kind,
        REQUIRED_COLUMNS[kind],
        OPTIONAL_COLUMNS[kind],
        _PARSERS[kind],
        extra_columns_are_attributes=kind in ATTRIBUTE_KINDS,
    )
    for kind in IMPORT_KINDS
}
