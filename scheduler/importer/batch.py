"""Writing one batch of validated rows: resolve customer references, then upsert.

Each kind has a natural key (customers and orders: their external id; referrals: the
referred customer; meetings: customer and time). A row whose key exists updates the stored row
only if something differs, so importing the same file twice changes nothing. Within a batch a
later row with the same key wins, as it would had the rows been applied one by one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from scheduler.importer.fields import LocalTime, OptOut, zone
from scheduler.importer.kinds import Candidate
from scheduler.store.models import metadata


@dataclass
class Pending:
    """A row on its way to the store: where it came from and what it says."""

    line: int
    raw: list[str]
    candidate: Candidate


@dataclass
class Rejection:
    line: int
    raw: list[str]
    reason: str


@dataclass
class BatchOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class WriteContext:
    now: datetime
    business_zone: ZoneInfo
    dry_run: bool


class _Spec:
    """How one kind is keyed, looked up and merged."""

    table: Table
    columns: tuple[str, ...]

    def key(self, values: dict[str, Any]) -> Hashable:
        raise NotImplementedError

    def fetch(
        self, connection: Connection, keys: Sequence[Hashable]
    ) -> dict[Hashable, dict[str, Any]]:
        raise NotImplementedError

    def merge(
        self, current: dict[str, Any] | None, values: dict[str, Any], context: WriteContext
    ) -> dict[str, Any]:
        """The full new state of the row's columns: stored values overlaid by the file's."""
        state = dict(current) if current else dict.fromkeys(self.columns)
        state.pop("id", None)
        state.update(values)
        return state


class _ByExternalId(_Spec):
    def key(self, values: dict[str, Any]) -> Hashable:
        external_id: str = values["external_id"]
        return external_id

    def fetch(
        self, connection: Connection, keys: Sequence[Hashable]
    ) -> dict[Hashable, dict[str, Any]]:
        table = self.table
        query = select(table.c.id, table.c.external_id, *(table.c[c] for c in self.columns)).where(
            table.c.external_id.in_(keys)
        )
        return {row.external_id: dict(row._mapping) for row in connection.execute(query)}


class _Customers(_ByExternalId):
    table = metadata.tables["customers"]
    columns = (
        "name",
        "email",
        "birth_year",
        "birth_month",
        "birth_day",
        "timezone",
        "first_met_on",
        "customer_since",
        "opted_out_at",
        "attributes",
    )

    def merge(
        self, current: dict[str, Any] | None, values: dict[str, Any], context: WriteContext
    ) -> dict[str, Any]:
        given = dict(values)
        opt_out = given.pop("opted_out_at", None)
        attributes = given.pop("attributes", {})
        state = super().merge(current, given, context)
        state["attributes"] = {**(current["attributes"] if current else {}), **attributes}
        state["opted_out_at"] = _opted_out(
            current["opted_out_at"] if current else None, opt_out, state, context
        )
        return state


def _opted_out(
    stored: datetime | None,
    given: datetime | LocalTime | OptOut | None,
    state: dict[str, Any],
    context: WriteContext,
) -> datetime | None:
    """An import can opt a customer out or correct when, never opt them back in."""
    if given is None:
        return stored
    if isinstance(given, OptOut):
        return stored or context.now
    if isinstance(given, LocalTime):
        name = state.get("timezone")
        return given.in_zone(zone(name) if name else context.business_zone)
    return given


class _Orders(_ByExternalId):
    table = metadata.tables["orders"]
    columns = ("customer_id", "placed_at", "amount", "margin", "description")


class _Referrals(_Spec):
    table = metadata.tables["referrals"]
    columns = ("referrer_id", "referred_id", "referred_on")

    def key(self, values: dict[str, Any]) -> Hashable:
        referred_id: int = values["referred_id"]
        return referred_id

    def fetch(
        self, connection: Connection, keys: Sequence[Hashable]
    ) -> dict[Hashable, dict[str, Any]]:
        table = self.table
        query = select(table.c.id, *(table.c[c] for c in self.columns)).where(
            table.c.referred_id.in_(keys)
        )
        return {row.referred_id: dict(row._mapping) for row in connection.execute(query)}


class _Meetings(_Spec):
    table = metadata.tables["meetings"]
    columns = ("customer_id", "met_at", "note")

    def key(self, values: dict[str, Any]) -> Hashable:
        return (values["customer_id"], values["met_at"])

    def fetch(
        self, connection: Connection, keys: Sequence[Hashable]
    ) -> dict[Hashable, dict[str, Any]]:
        table = self.table
        customers = {key[0] for key in keys if isinstance(key, tuple)}
        query = select(table.c.id, *(table.c[c] for c in self.columns)).where(
            table.c.customer_id.in_(customers)
        )
        return {
            (row.customer_id, row.met_at): dict(row._mapping) for row in connection.execute(query)
        }


SPECS: dict[str, _Spec] = {
    "customers": _Customers(),
    "orders": _Orders(),
    "referrals": _Referrals(),
    "meetings": _Meetings(),
}
_CUSTOMERS = metadata.tables["customers"]


def write_batch(
    connection: Connection, kind: str, rows: Sequence[Pending], context: WriteContext
) -> BatchOutcome:
    """Resolve, compare and write `rows` on `connection` (inside the caller's transaction)."""
    spec = SPECS[kind]
    outcome = BatchOutcome()
    resolved = _resolve(connection, rows, context, outcome)
    existing = spec.fetch(connection, list({spec.key(values) for values in resolved}))
    inserts: dict[Hashable, dict[str, Any]] = {}
    updates: dict[Hashable, dict[str, Any]] = {}
    for values in resolved:
        key = spec.key(values)
        current = inserts.get(key) or updates.get(key) or existing.get(key)
        state = spec.merge(current, values, context)
        if current is None:
            inserts[key] = state
            outcome.inserted += 1
        elif key in inserts:
            inserts[key] = state
            outcome.updated += 1
        elif any(current.get(column) != state[column] for column in state):
            updates[key] = {**state, "id": current["id"]}
            outcome.updated += 1
        else:
            outcome.unchanged += 1
    if not context.dry_run:
        _write(connection, spec.table, inserts, updates, context.now)
    return outcome


def _write(
    connection: Connection,
    table: Table,
    inserts: dict[Hashable, dict[str, Any]],
    updates: dict[Hashable, dict[str, Any]],
    now: datetime,
) -> None:
    if inserts:
        connection.execute(
            insert(table),
            [{**state, "created_at": now, "updated_at": now} for state in inserts.values()],
        )
    if updates:
        columns = [c for c in next(iter(updates.values())) if c != "id"]
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({column: bindparam(f"new_{column}") for column in [*columns, "updated_at"]})
        )
        connection.execute(
            statement,
            [
                {
                    "row_id": state["id"],
                    "new_updated_at": now,
                    **{f"new_{column}": state[column] for column in columns},
                }
                for state in updates.values()
            ],
        )


def _resolve(
    connection: Connection, rows: Sequence[Pending], context: WriteContext, outcome: BatchOutcome
) -> list[dict[str, Any]]:
    """Turn customer external ids into row ids and local times into UTC, rejecting the rest."""
    wanted = {ref for row in rows for ref in row.candidate.refs.values()}
    customers: dict[str, tuple[int, str | None]] = {}
    if wanted:
        query = select(_CUSTOMERS.c.external_id, _CUSTOMERS.c.id, _CUSTOMERS.c.timezone).where(
            _CUSTOMERS.c.external_id.in_(wanted)
        )
        customers = {row.external_id: (row.id, row.timezone) for row in connection.execute(query)}
    resolved: list[dict[str, Any]] = []
    for row in rows:
        values = dict(row.candidate.values)
        missing = []
        zone_name: str | None = None
        for column, external_id in row.candidate.refs.items():
            found = customers.get(external_id)
            if found is None:
                missing.append(
                    f'{column}: no customer with id "{external_id}" (import customers first)'
                )
                continue
            values[column], zone_name = found[0], zone_name or found[1]
        if missing:
            outcome.rejected.append(Rejection(row.line, row.raw, "; ".join(missing)))
            continue
        local_zone = zone(zone_name) if zone_name else context.business_zone
        for column, value in values.items():
            if isinstance(value, LocalTime):
                values[column] = value.in_zone(local_zone)
        resolved.append(values)
    return resolved
