"""Docs that cannot go stale: the README's commands, CI, and the example config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from scheduler.config.file import bundled_example, load_config
from scheduler.config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_quickstart_installs_and_runs_the_demo_then_the_tests() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    first, second = (block.strip() for block in shell_blocks(quickstart)[:2])
    assert "pip install ." in first
    assert first.endswith("appreciate demo")
    assert 'pip install -e ".[test]"' in second
    assert second.endswith("pytest")


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    quickstart = README.split("## Quickstart", 1)[1]
    test_command = shell_blocks(quickstart)[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines
    assert {"ruff check .", "ruff format --check .", "mypy", "lint-imports"} <= set(ci_lines)


def test_the_example_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "appreciate.toml"
    path.write_text((ROOT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(path)
    assert config.settings.business.name


def test_the_bundled_example_is_the_repositorys() -> None:
    assert bundled_example() == (ROOT / "config.example.toml").read_text(encoding="utf-8")


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for attribute, field in model.model_fields.items():
        name = field.alias or attribute  # as the file spells it ([import] is `imports`)
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def _written_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in table.items():
        if isinstance(value, dict) and value:  # an empty table is a value (`columns = {}`)
            keys |= _written_keys(value, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_the_example_config_shows_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert _written_keys(tomllib.loads(text)) == _leaf_keys(Settings)


def test_every_key_in_the_example_has_a_comment() -> None:
    lines = (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*\w+\s*=", line):
            above = lines[number - 1].strip()
            assert above.startswith("#"), f"config.example.toml:{number + 1} has no comment: {line}"


def test_the_readme_documents_every_store_table() -> None:
    tables = (
        "customers",
        "orders",
        "referrals",
        "meetings",
        "touches",
        "customer_values",
        "ltv_runs",
    )
    for table in tables:
        assert f"**{table}**" in README


def test_every_image_in_the_readme_is_a_small_png_in_the_repository() -> None:
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", README)
    assert images, "the README shows no screenshot of the console"
    for image in images:
        path = ROOT / image
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), image
        assert path.stat().st_size < 200_000, f"{image} is too large for a README"
