"""The sent-log in the console: the filters of `appreciate log`, the latest activity first,
keyset pages (as fast at page 1,000 as at page 1) and the filtered view as CSV.

Rules:
- Filters come as query parameters (status, kind, customer, since, until: YYYY-MM-DD, on the
  due date, as `appreciate log`); a bad one answers 400 naming it, with the form to fix it.
- A page holds PAGE notes; "older activity" continues after the last one's (updated_at, id).
- The CSV holds every matching note, written a page at a time (a million rows never sit in
  memory), with the columns of `appreciate log --format csv`, safe to open in a spreadsheet.
- Times are shown in the business's time zone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from scheduler.delivery.sent_log import LOG_COLUMNS, LogFilter, log_rows
from scheduler.output import csv_cell
from scheduler.vocabulary import MAX_ID, OCCASION_KINDS, STATUSES
from scheduler.web.login import csrf_token, is_owner
from scheduler.web.pages import WebContext, names_nothing, page

PAGE = 50
CSV_PAGE = 2_000
FILTERS = ("status", "kind", "customer", "since", "until")


class BadFilter(ValueError):
    """A query parameter that is not a filter's value: the message names it."""


def parse_filter(query: Mapping[str, str]) -> LogFilter:
    """The filter the query asks for (see the module's rules); raises BadFilter."""
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadFilter(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    kind = query.get("kind") or None
    if kind is not None and kind not in OCCASION_KINDS:
        raise BadFilter(f"kind: {kind!r} is not one of {', '.join(OCCASION_KINDS)}")
    customer = (query.get("customer") or "").strip() or None
    if customer is not None and names_nothing(customer):
        raise BadFilter(f"customer: {customer!r} holds a NUL character")
    return LogFilter(
        status=status,
        kind=kind,
        customer=customer,
        since=_date(query, "since"),
        until=_date(query, "until"),
        limit=PAGE,
        after=_after(query),
    )


async def log_page(request: Request) -> Response:
    """`GET /log`: one page of the sent-log."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("login", status_code=303)
    values = {name: request.query_params.get(name, "") for name in FILTERS}
    try:
        wanted = parse_filter(request.query_params)
    except BadFilter as problem:
        return _page(request, context, values, [], None, str(problem), 400)
    rows = await run_in_threadpool(_rows, context, replace(wanted, limit=PAGE + 1))
    older = None
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        last = rows[-1]
        cursor = {"after_at": last["updated_at"].isoformat(), "after_id": str(last["id"])}
        older = "log?" + urlencode({**_kept(values), **cursor})
    return _page(request, context, values, rows, older)


async def log_csv(request: Request) -> Response:
    """`GET /log.csv`: every note the filters match, as CSV."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("login", status_code=303)
    try:
        wanted = parse_filter(request.query_params)
    except BadFilter as problem:
        return page(context, "problem.html", 400, heading="Not a filter", text=str(problem))
    return StreamingResponse(
        iterate_in_threadpool(_csv_chunks(context, replace(wanted, after=None))),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="sent-log.csv"'},
    )


def _csv_chunks(context: WebContext, wanted: LogFilter) -> Iterator[str]:
    yield _csv_lines([LOG_COLUMNS])
    page_filter = replace(wanted, limit=CSV_PAGE)
    while True:
        rows = _rows(context, page_filter)
        if not rows:
            return
        yield _csv_lines([[csv_cell(row[column]) for column in LOG_COLUMNS] for row in rows])
        if len(rows) < CSV_PAGE:
            return
        page_filter = replace(page_filter, after=(rows[-1]["updated_at"], rows[-1]["id"]))


def _csv_lines(rows: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _rows(context: WebContext, wanted: LogFilter) -> list[dict[str, Any]]:
    with context.engine.connect() as connection:
        return log_rows(connection, wanted)


def _page(
    request: Request,
    context: WebContext,
    values: dict[str, str],
    rows: list[dict[str, Any]],
    older: str | None,
    problem: str = "",
    code: int = 200,
) -> Response:
    shown = [{**row, "when": context.local(row["updated_at"])} for row in rows]
    return page(
        context,
        "log.html",
        code,
        root="",
        csrf=csrf_token(request),
        rows=shown,
        older=older,
        csv="log.csv?" + urlencode(_kept(values)),
        chosen=values,
        statuses=STATUSES,
        kinds=OCCASION_KINDS,
        problem=problem,
        zone=context.settings.business.timezone,
    )


def _kept(values: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def _date(query: Mapping[str, str], name: str) -> date | None:
    text = (query.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{name}: expected a date as YYYY-MM-DD, got {text!r}") from None


def _after(query: Mapping[str, str]) -> tuple[datetime, int] | None:
    """The place "older activity" continues after: a moment with its offset, that is a moment
    in UTC too (not 0001-01-01T00:00+05:00), and a note id that fits the store (MAX_ID)."""
    at, touch_id = query.get("after_at") or "", query.get("after_id") or ""
    if not at and not touch_id:
        return None
    try:
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not touch_id.isdigit() or int(touch_id) > MAX_ID:
            raise ValueError
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadFilter("after_at/after_id: not a place in the sent-log") from None
    return moment, int(touch_id)
