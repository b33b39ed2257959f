"""Which attribute names the store's customers hold, and who lacks one (for `templates check`).

Rules:
- `AttributeCensus.take` reads every attribute name any customer has in one query (SQLite:
  `json_each`; PostgreSQL: `json_object_keys`), so it stays fast on a large store.
- `lacking(name)` counts the customers without that name and gives the business's own ids
  (external_id) of the first few, by row id; each name is counted once.
- An `attributes` value that is not a JSON object (written by another application) counts as
  no attributes at all, never as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

LACKING_SHOWN = 3
"""How many of the customers without an attribute are named."""

_OBJECT = {
    "sqlite": (
        "CASE WHEN json_valid(attributes) AND json_type(attributes) = 'object' "
        "THEN attributes ELSE '{}' END"
    ),
    "postgresql": (
        "CASE WHEN json_typeof(attributes) = 'object' THEN attributes ELSE '{}'::json END"
    ),
}
"""A customer's attributes as a JSON object, whatever another application stored there."""
_KEYS = {
    "sqlite": f"SELECT DISTINCT j.key FROM customers, json_each({_OBJECT['sqlite']}) AS j",
    "postgresql": f"SELECT DISTINCT json_object_keys({_OBJECT['postgresql']}) FROM customers",
}
_WITHOUT = {
    "sqlite": (
        f"NOT EXISTS (SELECT 1 FROM json_each({_OBJECT['sqlite']}) AS j WHERE j.key = :name)"
    ),
    "postgresql": f"NOT (({_OBJECT['postgresql']})::jsonb ? :name)",
}


@dataclass
class AttributeCensus:
    """The attribute names held in one store, read through `connection` while it is open."""

    connection: Connection
    names: frozenset[str]
    customers: int
    _lacking: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    @classmethod
    def take(cls, connection: Connection) -> AttributeCensus:
        """Every attribute name some customer holds, and how many customers there are."""
        dialect = connection.dialect.name
        names = frozenset(connection.execute(text(_KEYS[dialect])).scalars())
        customers = connection.execute(text("SELECT count(*) FROM customers")).scalar_one()
        return cls(connection, names, int(customers))

    def lacking(self, name: str) -> tuple[int, list[str]]:
        """How many customers have no attribute `name`, and the own ids of the first few."""
        if name not in self._lacking:
            if name not in self.names:
                self._lacking[name] = (self.customers, [])
            else:
                self._lacking[name] = self._count_lacking(name)
        return self._lacking[name]

    def _count_lacking(self, name: str) -> tuple[int, list[str]]:
        without = _WITHOUT[self.connection.dialect.name]
        count = self.connection.execute(
            text(f"SELECT count(*) FROM customers WHERE {without}"),
            {"name": name},
        ).scalar_one()
        if not count:
            return 0, []
        shown = self.connection.execute(
            text(f"SELECT external_id FROM customers WHERE {without} ORDER BY id LIMIT :shown"),
            {"name": name, "shown": LACKING_SHOWN},
        ).scalars()
        return int(count), list(shown)
