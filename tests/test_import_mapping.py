"""Column mappings: a real export's header read through the config and --map."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CONFIG_TEMPLATE, Workspace, run_cli

EXPORT = (
    "Patient ID,Full Name,E-mail,Shoe Size\n"
    "P-1,Ann Smith,ann@example.com,38\n"
    "P-2,,bob@example.com,44\n"
)
CONFIG_MAPPING = """
[import.customers]
columns = { "Patient ID" = "id", "Full Name" = "name", "E-mail" = "email" }
"""


def stored(url: str) -> dict[str, dict[str, Any]]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(metadata.tables["customers"])).all()
    finally:
        engine.dispose()
    return {row.external_id: dict(row._mapping) for row in rows}


def with_config(workspace: Workspace, extra: str) -> Path:
    workspace.path.write_text(
        CONFIG_TEMPLATE.format(url=workspace.database_url) + extra, encoding="utf-8"
    )
    return workspace.path


def export(tmp_path: Path, text: str = EXPORT, name: str = "patients.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_realistic_export_imports_through_the_configs_mapping(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    config = with_config(migrated_workspace, CONFIG_MAPPING)
    source, rejects = export(tmp_path), tmp_path / "rejects.csv"
    result = run_cli("--config", config, "import", "customers", source, "--rejects", rejects)
    assert result.exit_code == 1  # P-2 has no name
    assert 'Columns mapped: "Patient ID" -> id, "Full Name" -> name, "E-mail" -> email' in (
        result.stdout
    )
    found = stored(migrated_workspace.database_url)
    assert list(found) == ["P-1"]
    assert (found["P-1"]["name"], found["P-1"]["email"]) == ("Ann Smith", "ann@example.com")
    assert found["P-1"]["attributes"] == {"shoe_size": "38"}

    with rejects.open(encoding="utf-8", newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header == ["Patient ID", "Full Name", "E-mail", "Shoe Size", "reason"]
    row[1] = "Bob Jones"
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, row])
    again = run_cli("--config", config, "import", "customers", fixed)
    assert again.exit_code == 0, again.stderr
    assert stored(migrated_workspace.database_url)["P-2"]["name"] == "Bob Jones"


def test_map_options_add_to_and_override_the_config(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    config = with_config(
        migrated_workspace, '[import.customers]\ncolumns = { "Patient ID" = "id" }\n'
    )
    source = export(tmp_path, "Patient ID,Record,Full Name,E-mail\nP-1,R-9,Ann,ann@example.com\n")
    result = run_cli(
        "--config", config, "import", "customers", source,
        "--map", "full name=name", "--map", "Patient ID=patient", "--map", "Record=id",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mapping"] == [
        {"column": "Patient ID", "read_as": "patient", "from": '--map "Patient ID=patient"'},
        {"column": "full name", "read_as": "name", "from": '--map "full name=name"'},
        {"column": "Record", "read_as": "id", "from": '--map "Record=id"'},
    ]
    found = stored(migrated_workspace.database_url)
    assert found["R-9"]["attributes"] == {"patient": "P-1", "e_mail": "ann@example.com"}


def refused(workspace: Workspace, config: Path, *args: str | Path) -> str:
    result = run_cli("--config", config, "import", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert stored(workspace.database_url) == {}
    return result.stderr


def test_a_mapped_column_the_file_lacks_names_the_option(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = export(tmp_path, "id,name\nC-1,Ann\n")
    message = refused(
        migrated_workspace, migrated_workspace.path, "customers", source, "--map", "E-mail=email"
    )
    assert f'--map "E-mail=email": {source} has no column "E-mail"' in message
    assert '(its columns are "id", "name")' in message


def test_a_mapped_column_the_file_lacks_names_the_config_key_and_line(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    config = with_config(migrated_workspace, CONFIG_MAPPING)
    source = export(tmp_path, "Patient ID,Full Name\nC-1,Ann\n")
    message = refused(migrated_workspace, config, "customers", source)
    line = CONFIG_TEMPLATE.count("\n") + 3
    assert f'{config}:{line}: import.customers.columns: {source} has no column "E-mail"' in message


def test_two_columns_mapped_to_one_are_refused(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = export(tmp_path, "Patient ID,Record,name\nP-1,R-1,Ann\n")
    message = refused(
        migrated_workspace, migrated_workspace.path, "customers", source,
        "--map", "Patient ID=id", "--map", "Record=id",
    )  # fmt: skip
    assert '"Patient ID" and "Record" are both mapped to "id"' in message


def test_a_target_that_is_not_a_column_of_the_kind_is_refused(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = export(tmp_path, "id,customer_id,placed_at,Total\nA-1,C-1,2026-01-01,5\n")
    message = refused(
        migrated_workspace, migrated_workspace.path, "orders", source, "--map", "Total=total"
    )
    assert '--map "Total=total": "total" is not a column of orders files' in message


def test_a_mapping_that_makes_a_required_column_appear_twice_is_refused(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = export(tmp_path, "id,Patient ID,name\n7,P-1,Ann\n")
    message = refused(
        migrated_workspace, migrated_workspace.path, "customers", source, "--map", "Patient ID=id"
    )
    assert '--map "Patient ID=id": reading "Patient ID" as id gives' in message
    assert 'two id columns, as it has "id" too' in message


@pytest.mark.parametrize("option", ["Patient ID", "=id", "Patient ID="])
def test_a_map_option_without_both_names_is_refused(
    migrated_workspace: Workspace, tmp_path: Path, option: str
) -> None:
    source = export(tmp_path)
    message = refused(
        migrated_workspace, migrated_workspace.path, "customers", source, "--map", option
    )
    assert f'--map "{option}": expected "FILE COLUMN=COLUMN"' in message


def test_a_missing_required_column_suggests_a_mapping(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    source = export(tmp_path)
    message = refused(migrated_workspace, migrated_workspace.path, "customers", source)
    assert "missing required column(s) id, name" in message
    assert '--map "FILE COLUMN=id"' in message
