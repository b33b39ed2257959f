"""One note in the console: its facts, headers and text, its HTML in a sandboxed frame, its
history, and Retry for a note that failed, went unknown or was held.

Rules:
- `GET /notes/{id}` shows what `appreciate show ID` shows; an id that is no note (or too large
  to be one) is a 404, here and for the HTML and Retry.
- The HTML is served apart (`/notes/{id}/html`) for an `<iframe sandbox>` with no permission
  at all (no script, no form, no navigation), under its own policy: inline styles and data:
  images only, framed by this site alone (the one page that may be framed).
- `POST /notes/{id}/retry` needs the session's CSRF token and the confirmation box; it queues
  the note again as `appreciate retry ID --queue` does (the service sends it on its next
  delivery), then redirects to the note, which says what was done.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from scheduler.delivery.sent_log import NoSuchTouch, TouchDetail, requeue, touch_detail
from scheduler.errors import AppreciateError
from scheduler.vocabulary import MAX_ID, RETRYABLE
from scheduler.web.login import csrf_token, is_owner
from scheduler.web.pages import WebContext, owner_form, page

NOTE_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)


async def note_page(request: Request) -> Response:
    """`GET /notes/{id}`."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("../login", status_code=303)
    done, problem = TOLD.get(request.query_params.get("told", ""), ("", ""))
    return await _shown(request, context, done=done, problem=problem)


async def note_html(request: Request) -> Response:
    """`GET /notes/{id}/html`: the note's HTML body, for the sandboxed frame."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return Response("Log in first.", status_code=401, media_type="text/plain")
    detail = await run_in_threadpool(_detail, context, request.path_params["touch_id"])
    if detail is None or not detail.body_html:
        return Response("No such note.", status_code=404, media_type="text/plain")
    return HTMLResponse(
        detail.body_html,
        headers={
            "content-security-policy": NOTE_HTML_POLICY,
            "x-frame-options": "SAMEORIGIN",
        },
    )


async def retry(request: Request) -> Response:
    """`POST /notes/{id}/retry` (see the module's rules); answers with a redirect to the note,
    which says what was done (so a reload does not post again)."""
    context: WebContext = request.app.state.web
    touch_id = request.path_params["touch_id"]
    form = await owner_form(request, root="../../")
    if isinstance(form, Response):
        return form
    if form.get("confirm") != "yes":
        return RedirectResponse(f"../{touch_id}?told=confirm", status_code=303)
    try:
        await run_in_threadpool(_requeue, context, touch_id)
    except NoSuchTouch:
        return page(
            context,
            "problem.html",
            404,
            root="../../",
            heading="No such note",
            text="No such note.",
        )
    except AppreciateError:
        return RedirectResponse(f"../{touch_id}?told=not-retryable", status_code=303)
    return RedirectResponse(f"../{touch_id}?told=queued", status_code=303)


TOLD = {
    "queued": ("Queued again: the service sends it on its next delivery.", ""),
    "confirm": ("", "Tick the box to confirm the retry."),
    "not-retryable": ("", "Only failed, unknown or held notes can be sent again."),
}


async def _shown(request: Request, context: WebContext, done: str, problem: str) -> Response:
    touch_id: int = request.path_params["touch_id"]
    detail = await run_in_threadpool(_detail, context, touch_id)
    if detail is None:
        return page(
            context,
            "problem.html",
            404,
            heading="No such note",
            text=f"No note has the id {touch_id}.",
        )
    note = {
        **detail.row,
        "due": context.local(detail.row["due_at"]),
        "sent": context.local(detail.row["sent_at"]),
    }
    history = [{**event, "when": context.local(event["at"])} for event in detail.history]
    came_back = [
        {**message, "when": context.local(message["received_at"])} for message in detail.came_back
    ]
    return page(
        context,
        "note.html",
        200,
        csrf=csrf_token(request),
        note=note,
        headers=detail.headers,
        text=detail.body_text,
        has_html=bool(detail.body_html),
        history=history,
        came_back=came_back,
        retryable=note["status"] in RETRYABLE,
        done=done,
        problem=problem,
    )


def _detail(context: WebContext, touch_id: int) -> TouchDetail | None:
    if touch_id > MAX_ID:
        return None
    with context.engine.connect() as connection:
        try:
            return touch_detail(connection, touch_id)
        except NoSuchTouch:
            return None


def _requeue(context: WebContext, touch_id: int) -> dict[int, str]:
    if touch_id > MAX_ID:
        raise NoSuchTouch(f"no note has the id {touch_id}")
    with context.writing() as connection:
        return requeue(connection, [touch_id], context.clock.now())
