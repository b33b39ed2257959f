"""The tiers customers fall in by lifetime value (computed in `scheduler.ltv.value`): a leaf,
so that what only names a tier (a template's variant) needs no numerical library."""

from __future__ import annotations

from enum import IntEnum


class Tier(IntEnum):
    """Tier codes of `LifetimeValues.tier`; `Tier(code).label` is the name shown."""

    REGULAR = 0
    NEW = 1
    VIP = 2

    @property
    def label(self) -> str:
        return self.name.lower()
