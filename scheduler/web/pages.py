"""The pages: the package's own templates (autoescaped; not the owner's note templates).

Links to the static files are relative, so the pages work behind a reverse proxy that serves
them under a path (`[web] public_url = "https://example.com/thanks"`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy import Connection, Engine
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from scheduler.clock import Clock
from scheduler.config.settings import Settings
from scheduler.output import printable
from scheduler.service.ltv_budget import BudgetCache
from scheduler.store.db import write_transaction
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.web.login import FAILED_DELAY, LoginGuard, csrf_ok, is_owner


@dataclass(frozen=True)
class WebContext:
    """What the routes work with: the store, the settings, the clock, and the owner's password
    hash (None: not set, so nobody can log in) with the guard against guessing it."""

    engine: Engine
    settings: Settings
    clock: Clock
    password_hash: str | None = None
    failed_delay: float = FAILED_DELAY
    templates_dir: Path | None = None
    """The owner's note templates (the templates page); None: not shown."""
    guard: LoginGuard = field(default_factory=LoginGuard)
    writes: threading.Lock = field(default_factory=threading.Lock)
    """On SQLite, taken around every write this web service makes: its requests queue for the
    store here, at once, instead of in SQLite's busy handler, which sleeps between tries.
    PostgreSQL takes concurrent writers as they come."""
    budgets: BudgetCache = field(default_factory=BudgetCache)
    """The acquisition budget of the latest lifetime-value refresh, computed once per refresh."""
    spool: OptOutSpool | None = None
    """Where an opt-out waits while the store cannot take it; None: it is answered 503."""

    def local(self, moment: object) -> str:
        """`moment` in the business's time zone to the minute ("" for no moment)."""
        if not isinstance(moment, datetime):
            return ""
        return f"{moment.astimezone(ZoneInfo(self.settings.business.timezone)):%Y-%m-%d %H:%M}"

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction (`write_transaction`); on SQLite one at a time in this process."""
        with self.queued(), write_transaction(self.engine) as connection:
            yield connection

    def queued(self) -> AbstractContextManager[object]:
        """This process's turn to write (see `writes`)."""
        return self.writes if self.engine.dialect.name == "sqlite" else nullcontext()


def shown_as_written(value: Any) -> Any:
    """Text a page shows (a customer's name, a server's words, a reply): its control characters
    (a bidi override that would reverse what follows, a carriage return) shown as `\u202e`
    escapes instead of acted on, as the command line shows them. HTML the pages made themselves
    (Markup: a chart) is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


PAGES = Environment(
    loader=PackageLoader("scheduler.web", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    auto_reload=False,
    finalize=shown_as_written,
)


def names_nothing(text: str) -> bool:
    """Whether `text` cannot be a stored name (a customer's id, a token): it holds a NUL, which
    PostgreSQL's text cannot, so it names nothing there, and the pages say so on both databases
    (rather than letting the driver refuse it)."""
    return "\x00" in text


MAX_OWNER_FORM = 4_096
"""The largest field an owner form carries (a CSRF token, an id, a password)."""


async def owner_form(request: Request, root: str) -> FormData | Response:
    """The form of an owner POST, or the answer refusing it: no session, 401; not this
    session's CSRF token, 403 (`root` as for `page`, for the refusal's page)."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return page(
            context, "problem.html", 401, root, heading="Log in first", text="Not logged in."
        )
    form = await request.form(max_files=0, max_fields=16, max_part_size=MAX_OWNER_FORM)
    if not csrf_ok(request, form.get("csrf")):
        text = "The page was out of date."
        return page(context, "problem.html", 403, root, heading="Refused", text=text)
    return form


def page(
    context: WebContext, name: str, code: int = 200, root: str = "../", **values: Any
) -> HTMLResponse:
    """The template `name` as an HTML answer, with the business's name in it; `root` is the way
    from the page's address up to the site's top ("" for /login, "../" for /u/TOKEN)."""
    text = PAGES.get_template(name).render(
        business=context.settings.business.name, root=root, **values
    )
    return HTMLResponse(text, status_code=code)
