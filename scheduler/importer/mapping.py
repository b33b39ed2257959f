"""Column mappings: a file's own header names read as the columns appreciate knows.

An export names its columns its own way (`Patient ID`, `Full Name`, `E-mail`). A mapping says
which column of the file is which column of the import: from the config
(`[import.customers] columns = { "Patient ID" = "id" }`) and from `--map "Patient ID=id"`.
Rules:

- A mapped column matches a header the way headers match columns: case-insensitive, runs of
  spaces and punctuation as `_` (`"patient id"` maps `Patient ID`).
- `--map` adds to the config's mapping and overrides its entry for the same column.
- The whole header is renamed at once, so mappings may swap names (`id=row_id` together with
  `Patient ID=id`); columns not mapped keep their own names.
- Refused, naming the option or the config key: a mapped column the file does not have, two
  columns mapped to one, a target that is not a column of the kind (customers: any other name
  is an attribute), and a mapping that leaves the file with one column twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scheduler.config.import_columns import RESERVED_COLUMNS, column_name, mapping_target_problem
from scheduler.errors import AppreciateError
from scheduler.output import printable


class ColumnMappingError(AppreciateError, ValueError):
    """A column mapping that cannot be used; `origin` names the option or config key."""

    exit_code = 2

    def __init__(self, origin: str, message: str) -> None:
        self.origin = origin
        self.message = message
        super().__init__(f"{origin}: {message}")


@dataclass(frozen=True)
class MappedColumn:
    """One entry: the file's column `source` is read as `target`; `origin` says where it was
    given (`--map "Patient ID=id"`, or the config file, line and key)."""

    source: str
    target: str
    origin: str

    @property
    def source_name(self) -> str:
        return column_name(self.source)

    @property
    def target_name(self) -> str:
        return column_name(self.target)

    def __str__(self) -> str:
        return f'"{self.source}" -> {self.target_name}'


def parse_map_option(text: str) -> MappedColumn:
    """`"Patient ID=id"` as given to `--map` (the last `=` separates the two names)."""
    source, equals, target = text.rpartition("=")
    origin = f'--map "{text}"'
    if not equals or not source.strip() or not target.strip():
        raise ColumnMappingError(origin, 'expected "FILE COLUMN=COLUMN", like "Patient ID=id"')
    return MappedColumn(source.strip(), target.strip(), origin)


@dataclass(frozen=True)
class ColumnMapping:
    """The mapping used for one import of `kind` (possibly empty)."""

    kind: str
    entries: tuple[MappedColumn, ...] = ()

    @classmethod
    def merged(
        cls, kind: str, configured: Iterable[MappedColumn], given: Iterable[MappedColumn]
    ) -> ColumnMapping:
        """The config's entries with `given` (from `--map`) added over them; raises
        ColumnMappingError for a target the kind does not take or one taken twice."""
        by_source: dict[str, MappedColumn] = {}
        for entry in (*configured, *given):
            if not entry.source_name:
                raise ColumnMappingError(entry.origin, f'"{entry.source}" is not a column name')
            if entry.source_name in RESERVED_COLUMNS:
                raise ColumnMappingError(
                    entry.origin, f'"{entry.source}" is the rejects file\'s column, always ignored'
                )
            by_source[entry.source_name] = entry
        by_target: dict[str, MappedColumn] = {}
        for entry in by_source.values():
            problem = mapping_target_problem(kind, entry.target)
            if problem:
                raise ColumnMappingError(entry.origin, problem)
            other = by_target.setdefault(entry.target_name, entry)
            if other is not entry:
                origin = other.origin if other.origin == entry.origin else _both(other, entry)
                raise ColumnMappingError(
                    origin,
                    f'"{other.source}" and "{entry.source}" are both mapped to '
                    f'"{entry.target_name}"',
                )
        return cls(kind, tuple(by_source.values()))

    def apply(self, path: Path, header: Sequence[str], columns: Sequence[str]) -> list[str]:
        """The file's column names once mapped (`columns` are its header's own names)."""
        if not self.entries:
            return list(columns)
        position = {name: index for index, name in enumerate(columns)}
        mapped = list(columns)
        used: dict[int, MappedColumn] = {}
        for entry in self.entries:
            index = position.get(entry.source_name)
            if index is None:
                shown = ", ".join(f'"{printable(name, newlines=False)}"' for name in header)
                raise ColumnMappingError(
                    entry.origin,
                    f'{path} has no column "{entry.source}" (its columns are {shown})',
                )
            twins = [header[i] for i, name in enumerate(columns) if name == entry.source_name]
            if len(twins) > 1:
                raise ColumnMappingError(
                    entry.origin,
                    f'{path} has {len(twins)} columns that "{entry.source}" names: '
                    + ", ".join(f'"{printable(name, newlines=False)}"' for name in twins),
                )
            mapped[index] = entry.target_name
            used[index] = entry
        for index, entry in used.items():
            twin = next(
                (i for i, name in enumerate(mapped) if name == mapped[index] and i != index), None
            )
            if twin is not None:
                raise ColumnMappingError(
                    entry.origin,
                    f'reading "{entry.source}" as {entry.target_name} gives {path} two '
                    f'{entry.target_name} columns, as it has "{printable(header[twin])}" too (map '
                    "that one to another name as well)",
                )
        return mapped


def _both(first: MappedColumn, second: MappedColumn) -> str:
    return f"{first.origin} and {second.origin}"


NO_MAPPING = ColumnMapping("customers")
"""An empty mapping (its kind does not matter: it renames nothing)."""
