"""The web application: its routes, its pages and the headers every answer carries.

Rules:
- Pages (see `scheduler.web.pages`) link only the static files shipped inside the package:
  nothing is fetched from elsewhere, and no page needs JavaScript.
- Every answer says: no caching (a token is in the address), no referrer (so the token never
  leaves in one), no framing, no sniffing, and a content security policy that allows only this
  site's style sheet, forms posting back to it, and frames of its own (a note's HTML).
- A store that cannot be reached (down, locked past its busy timeout, no connection free in
  time) answers 503 with a page asking to try again in a minute and `Retry-After`, whatever
  the page; any other failure a plain 500 page. Both carry the headers above, and the log
  names the error's kind and the line of appreciate's code it came from, never its text (which
  may hold a query's values, such as a token). The failure goes no further: the web server
  (which would log it whole) never sees it, and the service runs on.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.clock import Clock
from scheduler.config.settings import Settings
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.web import (
    customer_pages,
    log_pages,
    note_pages,
    owner,
    templates_pages,
    unsubscribe,
)
from scheduler.web.login import FAILED_DELAY, SESSION_HOURS, session_secret
from scheduler.web.pages import WebContext, page

log = logging.getLogger("appreciate.web")
UNREACHABLE_STORE = (OperationalError, InterfaceError, PoolTimeout)
"""What a store that is down, locked or out of connections raises: worth trying again."""
HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class _HttpMiddleware:
    """ASGI middleware that acts on HTTP requests only (`http`); others pass through as
    they are (the lifespan's startup and shutdown)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class SecurityHeaders(_HttpMiddleware):
    """ASGI middleware: HEADERS on every answer (see the module's rules)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in HEADERS.items()
                    if name.encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class CaughtFailures(_HttpMiddleware):
    """ASGI middleware: a request that fails unforeseen is answered with the 500 page and
    logged by kind and place (see the module's rules). Once the answer has begun it can only
    be cut short: the failure is logged the same way."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        begun = False

        async def watched(message: Message) -> None:
            nonlocal begun
            begun = begun or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:  # one request fails, never the service
            log.error(
                "a web request failed (%s at %s); answered 500",
                type(error).__name__,
                _where(error),
            )
            if not begun:
                answer = _problem_page(
                    Request(scope),
                    500,
                    "Something went wrong",
                    "This did not work. Please try again later.",
                )
                await answer(scope, receive, send)


def _where(error: BaseException) -> str:
    """Where `error` was raised, as `file.py:LINE in function` (scheduler/... for appreciate's
    own code, the last two parts of the path for a library's), and for a library's, the
    innermost line of appreciate's own pages that called it."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "an unknown place"
    raised = frames[-1]
    place = f"{_short(raised.filename)}:{raised.lineno} in {raised.name}"
    if "/scheduler/" in raised.filename:
        return place
    pages = [f for f in frames if "/scheduler/" in f.filename and f.filename != __file__]
    return f"{place}, from {_short(pages[-1].filename)}:{pages[-1].lineno}" if pages else place


def _short(path: str) -> str:
    if "/scheduler/" in path:
        return path[path.rindex("/scheduler/") + 1 :]
    return "/".join(Path(path).parts[-2:])


class BodyLimit(_HttpMiddleware):
    """ASGI middleware: a request body longer than `limit` bytes ends in a 413, however it
    arrives (with or without a declared length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        super().__init__(app)
        self.limit = limit

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, "The request is too large.")
            return message

        await self.app(scope, counted, send)


def _problem_page(request: Request, code: int, heading: str, text: str) -> Response:
    """problem.html as the answer to `request`, with HEADERS (a 500 is answered outside the
    middleware that adds them)."""
    depth = request.url.path.count("/") - 1  # /u/TOKEN -> "../", /log -> ""
    answer = page(
        request.app.state.web, "problem.html", code, "../" * depth, heading=heading, text=text
    )
    answer.headers.update(HEADERS)
    return answer


async def _store_unreachable(request: Request, error: Exception) -> Response:
    log.error("a web request could not reach the store (%s); answered 503", type(error).__name__)
    answer = _problem_page(
        request,
        503,
        "Not available just now",
        "This could not be done just now. Please try again in a minute.",
    )
    answer.headers["retry-after"] = "60"
    return answer


def create_app(
    engine: Engine,
    settings: Settings,
    clock: Clock,
    password_hash: str | None = None,
    failed_delay: float = FAILED_DELAY,
    templates_dir: Path | None = None,
    spool: OptOutSpool | None = None,
) -> Starlette:
    """The application: the public unsubscribe routes, the owner's (behind the login with
    `password_hash`; None: nobody can log in; a failed login waits `failed_delay` seconds) and
    the static files. `spool`: where an opt-out waits while the store cannot take it."""
    secure = settings.web.public_url.startswith("https://")
    app = Starlette(
        routes=[
            Route("/u/{token}", unsubscribe.show, methods=["GET", "HEAD"]),
            Route("/u/{token}", unsubscribe.act, methods=["POST"]),
            Route("/", owner.today, methods=["GET", "HEAD"]),
            Route("/login", owner.login_page, methods=["GET", "HEAD"]),
            Route("/login", owner.login, methods=["POST"]),
            Route("/logout", owner.logout, methods=["POST"]),
            Route("/resume", owner.resume_sending, methods=["POST"]),
            Route("/templates", templates_pages.templates_page, methods=["GET", "HEAD"]),
            Route("/templates/preview.html", templates_pages.preview_html, methods=["GET"]),
            Route("/log", log_pages.log_page, methods=["GET", "HEAD"]),
            Route("/log.csv", log_pages.log_csv, methods=["GET"]),
            Route("/notes/{touch_id:int}", note_pages.note_page, methods=["GET", "HEAD"]),
            Route("/notes/{touch_id:int}/html", note_pages.note_html, methods=["GET"]),
            Route("/notes/{touch_id:int}/retry", note_pages.retry, methods=["POST"]),
            Route("/customer", customer_pages.customer_page, methods=["GET", "HEAD"]),
            Route("/customer/opt-out", customer_pages.customer_opt_out, methods=["POST"]),
            Route("/customer/resubscribe", customer_pages.customer_resubscribe, methods=["POST"]),
            Route("/customer/works-again", customer_pages.customer_works_again, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("scheduler.web", "static")]), name="static"),
        ],
        exception_handlers=dict.fromkeys(UNREACHABLE_STORE, _store_unreachable),
        middleware=[
            Middleware(CaughtFailures),
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, limit=unsubscribe.MAX_BODY),
            Middleware(
                SessionMiddleware,
                secret_key=session_secret(engine, clock.now()),
                session_cookie="appreciate_session",
                max_age=SESSION_HOURS * 3600,
                same_site="strict",
                https_only=secure,
            ),
        ],
    )
    app.state.web = WebContext(
        engine,
        settings,
        clock,
        password_hash,
        failed_delay,
        templates_dir=templates_dir,
        spool=spool,
    )
    return app
