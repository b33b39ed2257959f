"""`appreciate init`: a ready-to-edit workspace (config, starter templates, empty store).

Nothing the owner already has is overwritten: an existing config is refused unless forced,
and existing template files are always kept (only missing starters are added).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.config.file import DEFAULT_CONFIG_NAME, bundled_example, bundled_path, load_config
from scheduler.errors import AppreciateError
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
            f"{config_path} already exists; edit it, or pass --force to replace it with the example"
        )
    config_path.write_text(bundled_example(), encoding="utf-8")
    config = load_config(config_path)
    workspace = Workspace(
        config_path=config.path,
        database_url=config.database_url(),
        templates_dir=config.templates_dir,
    )
    _copy_templates(bundled_path("templates"), config.templates_dir, workspace)
    engine = create_store_engine(workspace.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return workspace


def _copy_templates(source: Path, target: Path, workspace: Workspace) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for template in sorted(source.glob("*.j2")):
        destination = target / template.name
        if destination.exists():
            workspace.templates_kept.append(template.name)
        else:
            shutil.copyfile(template, destination)
            workspace.templates_added.append(template.name)
