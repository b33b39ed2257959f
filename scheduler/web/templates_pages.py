"""The templates in the console: what `appreciate templates check` finds, and a live preview
of any occasion for a chosen customer (the same code as `appreciate preview`).

Rules:
- The templates are read from the config's folder each time the page is opened, so an edit
  shows at once; nothing here writes a template, sends or saves a note.
- The preview is written as the service would write it, in a transaction rolled back (a
  customer without an unsubscribe token yet gets a placeholder); a preview that cannot be made
  (no such customer, no order, a broken template) says why in the page.
- The preview's HTML is served apart (`/templates/preview.html`) for an `<iframe sandbox>`,
  under the note pages' policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from scheduler.errors import AppreciateError
from scheduler.notes.preview import preview_occasion
from scheduler.notes.render import NoteRenderer, RenderedNote
from scheduler.notes.template_check import Finding, check_templates
from scheduler.store.attributes import AttributeCensus
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind
from scheduler.web.login import csrf_token, is_owner
from scheduler.web.note_pages import NOTE_HTML_POLICY
from scheduler.web.pages import WebContext, names_nothing, page


@dataclass(frozen=True)
class Written:
    note: RenderedNote
    tier: str | None


async def templates_page(request: Request) -> Response:
    """`GET /templates[?kind=K&customer=ID]`."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("login", status_code=303)
    directory = context.templates_dir
    if directory is None:
        text = "This service was started without a templates folder."
        return page(context, "problem.html", 404, root="", heading="No templates", text=text)
    findings = await run_in_threadpool(_findings, context, directory)
    kind = request.query_params.get("kind", "birthday")
    customer = request.query_params.get("customer", "").strip()
    written: Written | None = None
    problem = ""
    if customer:
        try:
            written = await run_in_threadpool(_write, context, directory, _kind(kind), customer)
        except (AppreciateError, ValueError) as error:
            problem = f"No preview: {error}"
    return page(
        context,
        "templates_page.html",
        root="",
        csrf=csrf_token(request),
        directory=str(directory),
        findings=findings,
        kinds=OCCASION_KINDS,
        kind=kind,
        customer=customer,
        note=written.note if written else None,
        tier=written.tier if written else None,
        problem=problem,
        query=urlencode({"kind": kind, "customer": customer}),
    )


async def preview_html(request: Request) -> Response:
    """`GET /templates/preview.html?kind=K&customer=ID`: the preview's HTML, for the frame."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return Response("Log in first.", status_code=401, media_type="text/plain")
    directory = context.templates_dir
    if directory is None:
        return Response("No templates.", status_code=404, media_type="text/plain")
    try:
        written = await run_in_threadpool(
            _write,
            context,
            directory,
            _kind(request.query_params.get("kind", "")),
            request.query_params.get("customer", ""),
        )
    except (AppreciateError, ValueError) as error:
        return Response(f"No preview: {error}", status_code=404, media_type="text/plain")
    return HTMLResponse(
        written.note.html or "",
        headers={"content-security-policy": NOTE_HTML_POLICY, "x-frame-options": "SAMEORIGIN"},
    )


def _kind(name: str) -> OccasionKind:
    for kind in OCCASION_KINDS:
        if kind == name:
            return kind
    raise ValueError(f"{name!r} is not an occasion ({', '.join(OCCASION_KINDS)})")


def _findings(context: WebContext, directory: Path) -> list[Finding]:
    with context.engine.connect() as connection:
        census = AttributeCensus.take(connection)
    return check_templates(directory, context.settings, census)


def _write(context: WebContext, directory: Path, kind: OccasionKind, customer: str) -> Written:
    if names_nothing(customer):
        raise ValueError(f"there is no customer with id {customer!r}")
    with context.engine.connect() as connection:
        try:
            occasion = preview_occasion(
                connection, context.settings, kind, customer, now=context.clock.now()
            )
        finally:
            connection.rollback()
    renderer = NoteRenderer.configured(directory, context.settings)
    return Written(renderer.render(kind, occasion.tier, occasion.context), occasion.tier)
