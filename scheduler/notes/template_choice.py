"""Which template file writes a note: the customer's tier variant when the owner made one.

Rule: for occasion `kind` and lifetime-value `tier`, `KIND.TIER.j2` (e.g. `birthday.vip.j2`)
wins when it exists in the templates folder, else `KIND.j2`. A customer without a score yet
has no tier and gets `KIND.j2`. Tier names are fixed (vip, regular, new), so a tier can never
name a file outside the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from scheduler.tiers import Tier
from scheduler.vocabulary import OccasionKind

TIERS = tuple(tier.label for tier in Tier)


def template_names(kind: OccasionKind, tier: str | None) -> list[str]:
    """The file names to try, first match wins."""
    if tier is not None and tier not in TIERS:
        raise ValueError(f'unknown tier "{tier}" (expected one of {", ".join(TIERS)})')
    names = [f"{kind}.{tier}.j2"] if tier else []
    return [*names, f"{kind}.j2"]


def template_for(directory: Path, kind: OccasionKind, tier: str | None) -> Path:
    """The template that writes this note (see the module's rule). The plain `KIND.j2` is
    returned even when missing, so the error names the file the owner should create."""
    return directory / template_file(directory, kind, tier)


def template_file(directory: Path, kind: OccasionKind, tier: str | None) -> str:
    """`template_for`'s file name, found without building paths (it runs for every note)."""
    names = template_names(kind, tier)
    for name in names[:-1]:
        if os.path.isfile(os.path.join(directory, name)):
            return name
    return names[-1]
