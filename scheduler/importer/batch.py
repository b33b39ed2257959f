"""Writing one batch of validated rows: resolve customer references, then upsert.

Each kind has a natural key (customers, orders and reviews: their external id; referrals: the
referred customer; meetings: customer and time). A row whose key exists updates the stored row
only if something differs, so importing the same file twice changes nothing. Within a batch a
later row with the same key wins, as it would had the rows been applied one by one. A row that
cannot be written (an unknown customer, a local time that cannot be placed) is rejected alone:
nothing one row holds can fail its batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table

from scheduler.importer.fields import FieldError, LocalTime, OptOut, StaysIn, zone
from scheduler.importer.kinds import Candidate
from scheduler.store.bulk import BulkWriter, rows_where_in, select_where_in
from scheduler.store.models import metadata
from scheduler.store.opt_outs import opted_out_elsewhere


@dataclass(slots=True)
class Pending:
    """A row on its way to the store: where it came from and what it says."""

    line: int
    raw: list[str]
    candidate: Candidate


@dataclass(slots=True)
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
    warned: list[Rejection] = field(default_factory=list)
    """Rows written with a warning (a cell left out), with its reason."""


@dataclass(frozen=True)
class WriteContext:
    now: datetime
    business_zone: ZoneInfo
    source: str = ""
    """What the opt-out audit says of this import (e.g. "customers.csv")."""


State = dict[str, Any]


class _Spec:
    """How one kind is keyed, looked up and merged.

    `stored` lists the columns an import writes (the key columns included); `local_times`
    the columns whose values may be local times to place in the customer's zone.
    """

    table: Table
    stored: tuple[str, ...]
    local_times: tuple[str, ...] = ()

    def key(self, values: State) -> Hashable:
        raise NotImplementedError

    def fetch(self, connection: Connection, keys: Sequence[Hashable]) -> dict[Hashable, State]:
        raise NotImplementedError

    def merge(self, current: State | None, values: State, context: WriteContext) -> State:
        """The full new state of the stored columns: stored values overlaid by the file's."""
        state = dict(current) if current else dict.fromkeys(self.stored)
        state.update(values)
        return state

    def warnings(self, current: State | None, values: State) -> list[str]:
        """What the report should say of a row written as `merge` wrote it."""
        return []

    def written(
        self,
        connection: Connection,
        existing: Mapping[Hashable, State],
        written: Mapping[Hashable, State],
        context: WriteContext,
    ) -> None:
        """After the batch is written: what else follows from the states it wrote (`written`,
        by key) and those they replaced (`existing`; a new row has none)."""

    def _select(self, connection: Connection, key: str, keys: Iterable[Any]) -> list[State]:
        return select_where_in(connection, self.table, ("id", *self.stored), key, keys)


class _ByExternalId(_Spec):
    def key(self, values: State) -> Hashable:
        external_id: str = values["external_id"]
        return external_id

    def fetch(self, connection: Connection, keys: Sequence[Hashable]) -> dict[Hashable, State]:
        return {row["external_id"]: row for row in self._select(connection, "external_id", keys)}


class _Customers(_ByExternalId):
    table = metadata.tables["customers"]
    stored = (
        "external_id",
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
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "postal_code",
        "region",
        "country",
    )

    def merge(self, current: State | None, values: State, context: WriteContext) -> State:
        """As for every kind, plus: attributes merge key by key (an empty cell removes its
        key), and an opt-out is only ever set or corrected, never cleared."""
        given = dict(values)
        opt_out = given.pop("opted_out_at", None)
        attributes = given.pop("attributes", {})
        state = super().merge(current, given, context)
        merged = {**current["attributes"], **attributes} if current else attributes
        state["attributes"] = {key: value for key, value in merged.items() if value}
        state["opted_out_at"] = _opted_out(
            current["opted_out_at"] if current else None, opt_out, state, context
        )
        return state

    def warnings(self, current: State | None, values: State) -> list[str]:
        """A row that says a customer is not opted out, for one who is: the opt-out is kept."""
        stored = current["opted_out_at"] if current else None
        if isinstance(values.get("opted_out_at"), StaysIn) and stored is not None:
            return [
                f"opted_out: kept the opt-out of {stored.date().isoformat()}; an import never "
                "opts a customer back in (they can, from their unsubscribe page)"
            ]
        return []

    def written(
        self,
        connection: Connection,
        existing: Mapping[Hashable, State],
        written: Mapping[Hashable, State],
        context: WriteContext,
    ) -> None:
        """Customers this batch opted out: audited, and their open notes stopped at once."""
        newly = [
            after
            for key, after in written.items()
            if after["opted_out_at"] is not None
            and (key not in existing or existing[key]["opted_out_at"] is None)
        ]
        if not newly:
            return
        ids = dict(
            rows_where_in(
                connection,
                self.table,
                ("external_id", "id"),
                "external_id",
                sorted(state["external_id"] for state in newly),
            )
        )
        opted_out_elsewhere(
            connection,
            [ids[state["external_id"]] for state in newly],
            context.now,
            "import",
            context.source,
        )


def _opted_out(
    stored: datetime | None,
    given: datetime | LocalTime | OptOut | StaysIn | None,
    state: State,
    context: WriteContext,
) -> datetime | None:
    """An import can opt a customer out or correct when, never opt them back in."""
    if given is None or isinstance(given, StaysIn):
        return stored
    if isinstance(given, OptOut):
        return stored or context.now
    if isinstance(given, LocalTime):
        name = state.get("timezone")
        return given.place("opted_out", zone(name) if name else context.business_zone)
    return given


class _Orders(_ByExternalId):
    table = metadata.tables["orders"]
    stored = ("external_id", "customer_id", "placed_at", "amount", "margin", "description")
    local_times = ("placed_at",)


class _Referrals(_Spec):
    table = metadata.tables["referrals"]
    stored = ("referrer_id", "referred_id", "referred_on")

    def key(self, values: State) -> Hashable:
        referred_id: int = values["referred_id"]
        return referred_id

    def fetch(self, connection: Connection, keys: Sequence[Hashable]) -> dict[Hashable, State]:
        return {row["referred_id"]: row for row in self._select(connection, "referred_id", keys)}


class _Meetings(_Spec):
    table = metadata.tables["meetings"]
    stored = ("customer_id", "met_at", "note")
    local_times = ("met_at",)

    def key(self, values: State) -> Hashable:
        return (values["customer_id"], values["met_at"])

    def fetch(self, connection: Connection, keys: Sequence[Hashable]) -> dict[Hashable, State]:
        customers = {key[0] for key in keys if isinstance(key, tuple)}
        rows = self._select(connection, "customer_id", customers)
        return {(row["customer_id"], row["met_at"]): row for row in rows}


class _Reviews(_ByExternalId):
    table = metadata.tables["reviews"]
    stored = ("external_id", "customer_id", "reviewed_at", "site", "url", "rating", "text")
    local_times = ("reviewed_at",)


SPECS: dict[str, _Spec] = {
    "customers": _Customers(),
    "orders": _Orders(),
    "referrals": _Referrals(),
    "meetings": _Meetings(),
    "reviews": _Reviews(),
}
_CUSTOMERS = metadata.tables["customers"]


def target_table(kind: str) -> Table:
    """The table an import of `kind` writes."""
    return SPECS[kind].table


def write_batch(
    connection: Connection, kind: str, rows: Sequence[Pending], context: WriteContext
) -> BatchOutcome:
    """Resolve, compare and write `rows` on `connection` (inside the caller's transaction)."""
    spec = SPECS[kind]
    outcome = BatchOutcome()
    resolved = _resolve(connection, spec, rows, context, outcome)
    keys = [spec.key(values) for _, values in resolved]
    existing = spec.fetch(connection, list(dict.fromkeys(keys)))
    inserts: dict[Hashable, State] = {}
    updates: dict[Hashable, State] = {}
    for key, (row, values) in zip(keys, resolved, strict=True):
        current = inserts.get(key) or updates.get(key) or existing.get(key)
        try:
            state = spec.merge(current, values, context)
        except FieldError as error:
            outcome.rejected.append(Rejection(row.line, row.raw, str(error)))
            continue
        if current is None:
            inserts[key] = state
            outcome.inserted += 1
        elif any(current[column] != state[column] for column in spec.stored):
            (inserts if key in inserts else updates)[key] = state
            outcome.updated += 1
        else:
            outcome.unchanged += 1
        warnings = [str(warning) for warning in row.candidate.warnings]
        warnings += spec.warnings(current, values)
        if warnings:
            outcome.warned.append(Rejection(row.line, row.raw, "; ".join(warnings)))
    now = context.now
    columns = itemgetter(*spec.stored)
    BulkWriter(connection, spec.table, spec.stored, {"created_at": now, "updated_at": now}).insert(
        map(columns, inserts.values())
    )
    BulkWriter(connection, spec.table, spec.stored, {"updated_at": now}).update(
        (state["id"], columns(state)) for state in updates.values()
    )
    spec.written(connection, existing, inserts | updates, context)
    return outcome


def _resolve(
    connection: Connection,
    spec: _Spec,
    rows: Sequence[Pending],
    context: WriteContext,
    outcome: BatchOutcome,
) -> list[tuple[Pending, State]]:
    """Turn customer external ids into row ids and local times into UTC, rejecting the rest.

    A local time is placed in the zone of the row's customer (the first reference), else the
    business's. Zones are looked up only for the customers whose rows need one.
    """
    wanted = sorted({ref for row in rows for ref in row.candidate.refs.values()})
    if not wanted:
        return [(row, row.candidate.values) for row in rows]
    ids: dict[str, int] = dict(
        rows_where_in(connection, _CUSTOMERS, ("external_id", "id"), "external_id", wanted)
    )
    resolved: list[tuple[Pending, State]] = []
    local: list[tuple[Pending, State, int]] = []  # rows with a local time, and their customer
    for row in rows:
        values = row.candidate.values
        missing = []
        customer: int | None = None
        for column, external_id in row.candidate.refs.items():
            found = ids.get(external_id)
            if found is None:
                missing.append(
                    f'{column}: no customer with id "{external_id}" (import customers first)'
                )
                continue
            values[column] = found
            customer = customer or found
        if missing:
            outcome.rejected.append(Rejection(row.line, row.raw, "; ".join(missing)))
            continue
        resolved.append((row, values))
        for column in spec.local_times:
            if customer is not None and isinstance(values[column], LocalTime):
                local.append((row, values, customer))
                break
    if local and _place_local_times(connection, spec, local, context, outcome):
        failed = {rejection.line for rejection in outcome.rejected}
        resolved = [(row, values) for row, values in resolved if row.line not in failed]
    return resolved


def _place_local_times(
    connection: Connection,
    spec: _Spec,
    rows: list[tuple[Pending, State, int]],
    context: WriteContext,
    outcome: BatchOutcome,
) -> bool:
    """Convert each row's local times to UTC in its customer's zone (else the business's).
    A row whose time cannot be placed is rejected instead; returns whether any was."""
    customer_zones = dict(
        rows_where_in(
            connection, _CUSTOMERS, ("id", "timezone"), "id", sorted({c for _, _, c in rows})
        )
    )
    zones: dict[str | None, ZoneInfo] = {None: context.business_zone}
    rejected = False
    for row, values, customer in rows:
        name = customer_zones.get(customer)
        local_zone = zones.get(name)
        if local_zone is None:
            local_zone = zones[name] = zone(name or "UTC")
        for column in spec.local_times:
            value = values[column]
            if isinstance(value, LocalTime):
                try:
                    values[column] = value.place(column, local_zone)
                except FieldError as error:
                    outcome.rejected.append(Rejection(row.line, row.raw, str(error)))
                    rejected = True
                    break
    return rejected
