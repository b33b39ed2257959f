"""`appreciate init`: a ready-to-edit workspace (config, starter templates, empty store).

Nothing the owner already has is overwritten: an existing config is refused unless forced,
and existing template files are always kept (only missing starters are added). `appreciate
templates add` adds the starters an existing workspace lacks (new kinds after an upgrade).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.config.file import DEFAULT_CONFIG_NAME, bundled_example, bundled_path, load_config
from scheduler.errors import AppreciateError
from scheduler.output import printable
from scheduler.store.db import create_store_engine
from scheduler.store.schema import upgrade


@dataclass
class Workspace:
    """What `create_workspace` made (and what it left alone)."""

    config_path: Path
    database_url: str
    templates_dir: Path
    templates_added: list[str] = field(default_factory=list)
    templates_kept: list[str] = field(default_factory=list)


def create_workspace(directory: Path, *, force: bool = False) -> Workspace:
    """Write `directory/appreciate.toml`, the starter templates and an up-to-date store."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / DEFAULT_CONFIG_NAME
    if config_path.exists() and not force:
        raise AppreciateError(
            f"{config_path} already exists; edit it, or pass --force to replace it with the "
            "example (`appreciate templates add` adds the starter templates a workspace lacks)"
        )
    config_path.write_text(bundled_example(), encoding="utf-8")
    config = load_config(config_path)
    workspace = Workspace(
        config_path=config.path,
        database_url=config.database_url(),
        templates_dir=config.templates_dir,
    )
    added, kept = add_starter_templates(config.templates_dir)
    workspace.templates_added, workspace.templates_kept = added, kept
    engine = create_store_engine(workspace.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return workspace


def starter_templates() -> list[str]:
    """The starter templates' file names, sorted."""
    return sorted(path.name for path in bundled_path("templates").glob("*.j2"))


def add_starter_templates(
    target: Path, names: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Copy into `target` the starter templates it lacks (all, or those `names` gives: a file
    name, or a name without `.j2` such as `review_thanks`); a file already there is never
    changed. Returns (added, kept). An unknown name, or one that is there but not a file (a
    folder), raises AppreciateError naming it, before anything is copied."""
    starters = starter_templates()
    wanted = starters if not names else [_starter_name(name, starters) for name in names]
    if target.exists() and not target.is_dir():
        raise AppreciateError(f"{printable(str(target))} is not a folder: templates go in one")
    for name in wanted:
        if (target / name).exists() and not (target / name).is_file():
            raise AppreciateError(
                f"{printable(str(target / name))} is not a file: move it away and run "
                "`appreciate templates add` again (nothing was added)"
            )
    source = bundled_path("templates")
    added: list[str] = []
    kept: list[str] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in dict.fromkeys(wanted):  # a name given twice counts once
            destination = target / name
            if destination.exists():
                kept.append(name)
            else:
                shutil.copyfile(source / name, destination)
                added.append(name)
    except OSError as error:
        done = f" (added before it: {', '.join(added)})" if added else ""
        raise AppreciateError(
            f"could not write the templates in {printable(str(target))}: "
            f"{error.strerror or error}{done}"
        ) from None
    return added, kept


def _starter_name(name: str, starters: Sequence[str]) -> str:
    file_name = name if name.endswith(".j2") else f"{name}.j2"
    if file_name not in starters:
        raise AppreciateError(
            f'"{printable(name)}" is not a starter template; they are: {", ".join(starters)}'
        )
    return file_name
