"""The nightly lifetime-value refresh: when it runs, and what one run does.

It runs daily at `[ltv] recompute_at` in the business's time zone. A time a DST change skips
still runs once that night, as late after the change as it was meant to be after the hour
(01:30 on the night London skips 01:00-02:00 runs at 02:30 summer time). The daemon puts
`refresh_trigger` and `nightly_refresh` on its APScheduler timer; the job is safe to run late
or twice (each run replaces the scores).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from scheduler.config.settings import Settings
from scheduler.output import counted
from scheduler.service.valuation import refresh_values


def refresh_trigger(settings: Settings) -> CronTrigger:
    """Every day at `recompute_at`, business time."""
    at = settings.ltv.recompute_time
    zone = ZoneInfo(settings.business.timezone)
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=zone)


def nightly_refresh(engine: Engine, settings: Settings, now: datetime) -> str:
    """Refresh every customer's value; one line for the log."""
    result = refresh_values(engine, settings, now)
    count = result.values.customer_id.shape[0]
    line = f"lifetime values refreshed for {counted(count, 'customer')} as of {result.as_of}: "
    line += result.values.reason
    return f"{line}; {result.warning}" if result.warning else line
