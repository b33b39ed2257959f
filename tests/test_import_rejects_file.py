"""The rejects file: never over an input, whole or not at all, private, safe in a spreadsheet."""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from scheduler.importer import import_csv
from scheduler.importer.rejects import RejectsPathRefused
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import NOW, Workspace, run_cli

LONDON = ZoneInfo("Europe/London")
CUSTOMERS = "id,name,email\nC-1,Ann,ann@example.com\nC-2,,bob@example.com\n"


def count(url: str, table: str) -> int:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(metadata.tables[table])
                ).scalar_one()
            )
    finally:
        engine.dispose()


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run in `tmp_path` (for relative paths like ./customers.csv)."""
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


SAME_FILE = ["same-path", "dot-slash", "symlink", "hard-link"]


def _other_name(tmp_path: Path, source: Path, how: str) -> Path:
    if how == "same-path":
        return source
    if how == "dot-slash":
        return Path(".") / source.name
    other = tmp_path / "rejects.csv"
    if how == "symlink":
        other.symlink_to(source)
    else:
        os.link(source, other)
    return other


@pytest.mark.parametrize("how", SAME_FILE)
def test_rejects_over_the_input_is_refused_before_anything_is_read_or_written(
    migrated_workspace: Workspace, in_tmp: Path, how: str
) -> None:
    source = in_tmp / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    rejects = _other_name(in_tmp, source, how)
    result = run_cli(
        "--config", migrated_workspace.path, "import", "customers", source, "--rejects", rejects
    )
    assert result.exit_code == 2
    assert f"rejects file {rejects}: is the file being imported ({source})" in result.stderr
    assert source.read_text(encoding="utf-8") == CUSTOMERS
    assert count(migrated_workspace.database_url, "customers") == 0
    assert sorted(path.name for path in in_tmp.iterdir() if path.name.startswith(".")) == []


@pytest.mark.parametrize("how", SAME_FILE)
def test_the_library_refuses_the_input_as_rejects_file_too(
    engine: Engine, in_tmp: Path, how: str
) -> None:
    source = in_tmp / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    with pytest.raises(RejectsPathRefused, match="is the file being imported"):
        import_csv(
            engine,
            "customers",
            source,
            now=NOW,
            business_zone=LONDON,
            rejects_path=_other_name(in_tmp, source, how),
        )
    assert source.read_text(encoding="utf-8") == CUSTOMERS


def test_rejects_never_replace_the_config_or_the_store(tmp_path: Path) -> None:
    assert run_cli("init", tmp_path / "shop").exit_code == 0
    config = tmp_path / "shop" / "appreciate.toml"
    store = tmp_path / "shop" / "appreciate.db"
    source = tmp_path / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    for target, what in ((config, "the config file"), (store, "the store (appreciate.db)")):
        before = target.read_bytes()
        result = run_cli("--config", config, "import", "customers", source, "--rejects", target)
        assert result.exit_code == 2, result.stderr
        assert f"is {what}" in result.stderr
        assert target.read_bytes() == before


def test_an_interrupted_import_leaves_the_earlier_rejects_file_whole(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    rows = "".join(f"C-{n},{'' if n % 3 == 0 else 'Name'}\n" for n in range(1, 31))
    source.write_text("id,name\n" + rows, encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("the earlier rejects\n", encoding="utf-8")

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv(
            engine,
            "customers",
            source,
            now=NOW,
            business_zone=LONDON,
            rejects_path=rejects,
            progress=stop,
            batch_size=10,
        )
    assert rejects.read_text(encoding="utf-8") == "the earlier rejects\n"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []

    report = import_csv(
        engine, "customers", source, now=NOW, business_zone=LONDON, rejects_path=rejects
    )
    assert report.rejected_count == 10
    assert len(read_csv(rejects)) == 11


def test_the_rejects_file_is_readable_by_its_owner_only(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("old\n", encoding="utf-8")
    rejects.chmod(0o644)
    previous = os.umask(0o022)
    try:
        import_csv(engine, "customers", source, now=NOW, business_zone=LONDON, rejects_path=rejects)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    assert read_csv(rejects)[1][:3] == ["C-2", "", "bob@example.com"]


def test_a_rejects_file_through_a_symlink_is_written_where_it_points(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "out").mkdir()
    real = tmp_path / "out" / "rejects.csv"
    real.write_text("old\n", encoding="utf-8")
    link = tmp_path / "rejects-link.csv"
    link.symlink_to(real)
    import_csv(engine, "customers", source, now=NOW, business_zone=LONDON, rejects_path=link)
    assert link.is_symlink()
    assert read_csv(real)[0] == ["id", "name", "email", "reason"]


def test_a_rejects_file_in_a_missing_folder_is_refused_before_importing(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(CUSTOMERS, encoding="utf-8")
    result = run_cli(
        "--config",
        migrated_workspace.path,
        "import",
        "customers",
        source,
        "--rejects",
        tmp_path / "nowhere" / "rejects.csv",
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert count(migrated_workspace.database_url, "customers") == 0


def test_formula_cells_are_escaped_in_the_rejects_file_and_read_back_on_import(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    rows = [
        ["A-1", "C-1", "2026-03-01T10:00Z", "10.00", "-5.00", '=HYPERLINK("http://x")'],
        ["A-2", "C-1", "2026-03-01T11:00Z", "10.00", "", "+44 cake"],
        ["A-3", "C-1", "2026-03-01T12:00Z", "10.00", "", "@SUM(A1)"],
        ["A-4", "C-1", "2026-03-01T13:00Z", "10.00", "", "\tindented"],
        ["A-5", "C-1", "2026-03-01T14:00Z", "10.00", "", "'plain quote"],
    ]
    with source.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [["id", "customer_id", "placed_at", "amount", "margin", "description"], *rows]
        )
    rejects = tmp_path / "rejects.csv"
    report = import_csv(
        engine, "orders", source, now=NOW, business_zone=LONDON, rejects_path=rejects
    )
    assert report.rejected_count == 5  # no customer C-1 yet
    written = read_csv(rejects)[1:]
    assert [row[4] for row in written] == ["'-5.00", "", "", "", ""]
    assert [row[5] for row in written] == [
        '\'=HYPERLINK("http://x")',
        "'+44 cake",
        "'@SUM(A1)",
        "'\tindented",
        "'plain quote",
    ]

    customers = tmp_path / "customers.csv"
    customers.write_text("id,name\nC-1,Ann\n", encoding="utf-8")
    import_csv(engine, "customers", customers, now=NOW, business_zone=LONDON)
    again = import_csv(engine, "orders", rejects, now=NOW, business_zone=LONDON)
    assert (again.inserted, again.rejected_count) == (5, 0)
    orders = metadata.tables["orders"]
    with engine.connect() as connection:
        stored = {
            row.external_id: (row.margin, row.description)
            for row in connection.execute(select(orders))
        }
    assert str(stored["A-1"][0]) in ("-5.00", "-5")
    assert [stored[f"A-{n}"][1] for n in range(1, 6)] == [
        '=HYPERLINK("http://x")',
        "+44 cake",
        "@SUM(A1)",
        "indented",
        "'plain quote",
    ]
