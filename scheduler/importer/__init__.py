"""CSV import of customers, orders, referrals and meetings (see `import_csv`)."""

from scheduler.importer.kinds import KINDS
from scheduler.importer.run import ImportReport, import_csv

__all__ = ["KINDS", "ImportReport", "import_csv"]
