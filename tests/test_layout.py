"""The layout a newcomer reads: every module in a package that says what it may import, and
the direction of imports kept (import-linter, with the contracts in pyproject.toml)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scheduler"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]["contracts"]


def _contract(name: str) -> dict[str, list[str]]:
    return next(contract for contract in CONTRACTS if contract["name"] == name)


def test_the_imports_point_one_way() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    layers = _contract("Each package imports only those below it")["layers"]
    packages = {name.strip() for layer in layers for name in layer.split("|")}
    on_disk = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == on_disk, "a package outside the layers, or a layer with no package"
    for name in sorted(packages):
        docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert docstring, f"scheduler/{name}/__init__.py has no docstring"
        assert "import" in docstring, f"scheduler/{name} does not say what it may import"


def test_only_the_leaf_modules_sit_at_the_top() -> None:
    leaves = {
        module.removeprefix("scheduler.")
        for module in _contract("The leaf modules import no package but config")["source_modules"]
    }
    at_top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert at_top == leaves, "a module at the top that is not a checked leaf: put it in a package"
