"""A customer's time zone by name, with the business's as the fallback."""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo

from scheduler.config.settings import time_zone_names


class ZoneBook:
    """Zones by IANA name, each loaded once. No name, or a name this machine does not know
    (the importer refuses those, but another application may have written one), means the
    business's zone."""

    def __init__(self, default: tzinfo) -> None:
        self.default = default
        self._zones: dict[str | None, tzinfo] = {None: default}

    def __call__(self, name: str | None) -> tzinfo:
        found = self._zones.get(name)
        if found is None:
            found = self._zones[name] = (
                ZoneInfo(name) if name in time_zone_names() else self.default
            )
        return found
