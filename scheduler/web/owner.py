"""The owner's routes: logging in and out, and the pages behind the login (today, so far).

Rules (see `scheduler.web.login` for the password, the session and the lockout):
- Without a session, an owner page redirects to the login page (303) and an owner POST is
  refused (401); a POST without the session's CSRF token is refused (403).
- A failed login answers 401 after `failed_delay` (FAILED_DELAY); while logins are locked it
  answers 429 with when they open again, and does not even look at the password.
- Logging in starts a fresh session (a new CSRF token); logging out ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from markupsafe import Markup
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from scheduler.delivery.claims import resume
from scheduler.service.activity import daily_notes, tier_shares
from scheduler.service.queue_report import by_hand_line
from scheduler.service.queue_status import queue_status
from scheduler.web.charts import (
    STATUS_SERIES,
    kind_series,
    legend_html,
    notes_by_kind_svg,
    notes_per_day_svg,
    tallest,
    tier_shares_svg,
)
from scheduler.web.login import csrf_ok, csrf_token, is_owner, password_matches
from scheduler.web.pages import MAX_OWNER_FORM, WebContext, owner_form, page

log = logging.getLogger("appreciate.web")
CHART_DAYS = 90
T = TypeVar("T")


async def login_page(request: Request) -> Response:
    """`GET /login`."""
    context: WebContext = request.app.state.web
    if is_owner(request):
        return RedirectResponse("./", status_code=303)
    return _login(request, context)


async def login(request: Request) -> Response:
    """`POST /login` (see the module's rules)."""
    context: WebContext = request.app.state.web
    form = await request.form(max_files=0, max_fields=4, max_part_size=MAX_OWNER_FORM)
    if not csrf_ok(request, form.get("csrf")):
        return _login(request, context, "The page was out of date: please try again.", 403)
    now = context.clock.now()
    locked = context.guard.locked_until(now)
    if locked is not None:
        wait = max(1, round((locked - now).total_seconds() / 60))
        text = f"Too many wrong passwords: try again in {wait} minute{'s' if wait != 1 else ''}."
        return _login(request, context, text, 429)
    password = form.get("password")
    stored = context.password_hash
    context.guard.trying(now)
    if (
        stored is None
        or not isinstance(password, str)
        or not await run_in_threadpool(password_matches, stored, password)
    ):
        log.warning("a failed owner login")
        await asyncio.sleep(context.failed_delay)
        return _login(request, context, "That password is not right.", 401)
    context.guard.succeeded()
    request.session.clear()
    request.session["owner"] = True
    csrf_token(request)
    log.info("the owner logged in")
    return RedirectResponse("./", status_code=303)


async def logout(request: Request) -> Response:
    """`POST /logout`: the session ends."""
    form = await owner_form(request, root="")
    if isinstance(form, Response):
        return form
    request.session.clear()
    return RedirectResponse("login", status_code=303)


async def today(request: Request) -> Response:
    """`GET /`: the queue by status, the last cycle, what needs the owner, and the charts."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("login", status_code=303)
    today = context.clock.now().date()
    status, days, tiers, budget = await asyncio.gather(
        _read(context, queue_status),
        _read(context, partial(daily_notes, today=today, days=CHART_DAYS)),
        _read(context, tier_shares),
        _read(context, partial(context.budgets.get, share=context.settings.ltv.acquisition_share)),
    )
    return page(
        context,
        "today.html",
        root="",
        status=status,
        csrf=csrf_token(request),
        resumed=request.query_params.get("told") == "resumed",
        days_chart=_drawn(notes_per_day_svg(days.by_group)),
        days_legend=_drawn(legend_html(STATUS_SERIES)),
        kinds_chart=_drawn(notes_by_kind_svg(days.by_kind)),
        kinds_legend=_drawn(legend_html(kind_series(days.by_kind))),
        tiers_chart=_drawn(tier_shares_svg(tiers)) if tiers else None,
        budget=budget if tiers else None,
        chart_days=CHART_DAYS,
        first_day=min(days.by_group),
        last_day=max(days.by_group),
        tallest=tallest(days.by_group),
        oldest_due=context.local(status.oldest_due),
        cycle_at=context.local(_cycle_time(status.last_cycle)),
        by_hand=by_hand_line(status.by_hand),
    )


def _cycle_time(cycle: dict[str, Any] | None) -> datetime | None:
    """When the last cycle ran (kept as ISO text), or None."""
    try:
        return datetime.fromisoformat(cycle["at"]) if cycle else None
    except (KeyError, TypeError, ValueError):  # written by something else
        return None


async def resume_sending(request: Request) -> Response:
    """`POST /resume`: lift a pause (as `appreciate send --resume`); the next delivery sends."""
    form = await owner_form(request, root="")
    if isinstance(form, Response):
        return form
    context: WebContext = request.app.state.web
    reason = await run_in_threadpool(_resume, context)
    if reason is not None:
        log.info("sending resumed by the owner (it was paused: %s)", reason)
    return RedirectResponse("./?told=resumed" if reason else "./", status_code=303)


def _resume(context: WebContext) -> str | None:
    with context.writing() as connection:
        return resume(connection)


def _login(request: Request, context: WebContext, problem: str = "", status: int = 200) -> Response:
    return page(
        context,
        "login.html",
        status,
        root="",
        configured=context.password_hash is not None,
        problem=problem,
        csrf=csrf_token(request),
    )


def _drawn(chart: str) -> Markup:
    """A chart or legend from `scheduler.web.charts`, which escapes every text in it."""
    return Markup(chart)  # noqa: S704 - drawn and escaped by charts


async def _read(context: WebContext, query: Callable[[Connection], T]) -> T:
    """`query` on a connection of its own in a worker thread, so that Today's reads (the queue
    counted, the days' notes grouped) run side by side on two cores; on SQLite each reads its
    own snapshot, so they may differ by a commit made meanwhile."""
    return await run_in_threadpool(_on_connection, context, query)


def _on_connection(context: WebContext, query: Callable[[Connection], T]) -> T:
    with context.engine.connect() as connection:
        return query(connection)
