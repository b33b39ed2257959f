"""The columns of each import kind's CSV file, and how a header names one.

A leaf (no appreciate imports), so that the config can check its column mappings without
loading the importer and the store.
"""

from __future__ import annotations

import re

IMPORT_KINDS = ("customers", "orders", "referrals", "meetings", "reviews")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name"),
    "orders": ("id", "customer_id", "placed_at", "amount"),
    "referrals": ("referrer_id", "referred_id", "referred_on"),
    "meetings": ("customer_id", "met_at"),
    "reviews": ("customer_id", "reviewed_at"),
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "email",
        "birthday",
        "timezone",
        "first_met_on",
        "customer_since",
        "opted_out",
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "postal_code",
        "region",
        "country",
    ),
    "orders": ("margin", "description"),
    "referrals": (),
    "meetings": ("note",),
    "reviews": ("id", "where", "url", "rating", "text"),
}
ATTRIBUTE_KINDS = frozenset({"customers"})
"""Kinds whose other columns are kept (as customer attributes) instead of ignored."""
RESERVED_COLUMNS = frozenset({"reason"})
"""Columns every import ignores: the rejects file's `reason`."""

_NOT_WORD = re.compile(r"[^0-9a-z]+")


def column_name(header: str) -> str:
    """A header as a column name: lower case, runs of other characters as one underscore.

    `"Pet Name"` -> `pet_name`, `"E-mail"` -> `e_mail`; templates can use it as an attribute.
    """
    return _NOT_WORD.sub("_", header.strip().lower()).strip("_")


def mapping_target_problem(kind: str, target: str) -> str | None:
    """Why `target` cannot receive a mapped column in a `kind` file, or None when it can.

    Customers take any name (other columns become attributes); the other kinds only their own
    columns. No kind takes `reason`, which every import ignores.
    """
    name = column_name(target)
    known = REQUIRED_COLUMNS[kind] + OPTIONAL_COLUMNS[kind]
    if not name:
        return f'"{target}" is not a column name'
    if name in RESERVED_COLUMNS:
        return f'"{target}" is the rejects file\'s column, which every import ignores'
    if kind not in ATTRIBUTE_KINDS and name not in known:
        return f'"{target}" is not a column of {kind} files (they have {", ".join(known)})'
    return None
