"""CSV import of customers, orders, referrals, meetings and reviews (see `import_csv`).

May import the store, the core and config; never notes, detection, delivery, the service or
the commands.
"""

from scheduler.importer.kinds import KINDS
from scheduler.importer.mapping import ColumnMapping, MappedColumn, parse_map_option
from scheduler.importer.money import AmountFormat, amount_format
from scheduler.importer.run import ImportReport, import_csv

__all__ = [
    "KINDS",
    "AmountFormat",
    "ColumnMapping",
    "ImportReport",
    "MappedColumn",
    "amount_format",
    "import_csv",
    "parse_map_option",
]
