"""A pause and a back-off as kept in `app_state`: their names and the back-off's shape, shared
by the sender (`scheduler.delivery.claims`) and the quick read path. Standard library only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

PAUSED = "sending_paused"
"""`app_state` name of the reason sending is paused (absent: not paused)."""
THROTTLED = "sending_throttled"
"""`app_state` name of the last back-off for a throttling server (JSON, see `Throttle`)."""


@dataclass(frozen=True)
class Throttle:
    """The mail server asked to slow down: no instance starts a send before `until`."""

    until: datetime
    reason: str
    in_a_row: int
    """Throttles with no accepted message between them (the back-off doubles with each)."""

    def as_dict(self) -> dict[str, object]:
        return {"until": self.until.isoformat(), "reason": self.reason, "in_a_row": self.in_a_row}

    def line(self) -> str:
        """For a person: why, and until when."""
        times = "once" if self.in_a_row == 1 else f"{self.in_a_row} times in a row"
        return (
            f"the mail server is throttling ({self.reason}); no send starts before "
            f"{self.until:%Y-%m-%d %H:%M} UTC (throttled {times})"
        )


def throttle_from_json(value: str) -> Throttle:
    """The back-off as `app_state` keeps it."""
    found = json.loads(value)
    return Throttle(datetime.fromisoformat(found["until"]), found["reason"], found["in_a_row"])
