"""`appreciate demo`: the product on sample data, in a workspace of its own.

Until the daemon lands this shows the foundation: a fresh workspace, the sample CSV exports
imported (with their deliberately bad rows reported), and the store that results. Nothing
outside the workspace is touched and no network is used.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console

from scheduler.config import load_config
from scheduler.importer import import_csv
from scheduler.output import table
from scheduler.store.db import create_store_engine
from scheduler.store.queries import customer_overview
from scheduler.workspace import create_workspace

SAMPLE_KINDS = ("customers", "orders", "referrals", "meetings")
OVERVIEW_COLUMNS = (
    "id",
    "name",
    "email",
    "birthday",
    "orders",
    "spent",
    "referred_by",
    "opted_out",
)


def sample_file(kind: str) -> Path:
    """The bundled sample export for `kind`."""
    return Path(str(resources.files("scheduler.samples").joinpath(f"{kind}.csv")))


def run_demo(console: Console, directory: Path | None, now: datetime) -> Path:
    """Build the demo workspace, print what happens, and return the workspace folder."""
    folder = directory or Path(tempfile.mkdtemp(prefix="appreciate-demo-"))
    workspace = create_workspace(folder, force=True)
    config = load_config(workspace.config_path)
    console.print(f"Demo workspace: {folder}\n", markup=False)
    engine = create_store_engine(workspace.database_url)
    try:
        for kind in SAMPLE_KINDS:
            report = import_csv(
                engine,
                kind,
                sample_file(kind),
                now=now,
                business_zone=ZoneInfo(config.settings.business.timezone),
                rejects_path=folder / f"{kind}.rejects.csv",
            )
            console.print(
                f"{kind:<10} {report.rows} rows: {report.inserted} imported, "
                f"{report.rejected_count} rejected",
                markup=False,
            )
            for rejection in report.rejected:
                console.print(f"           line {rejection.line}: {rejection.reason}", markup=False)
        with engine.connect() as connection:
            rows = customer_overview(connection)
    finally:
        engine.dispose()
    console.print()
    console.print(table("Customers in the store", rows, OVERVIEW_COLUMNS))
    console.print(
        f"\nRejected rows were written to {folder}/*.rejects.csv with a reason column.\n"
        f"Explore further with: appreciate --config {workspace.config_path} <command>",
        markup=False,
    )
    return folder
