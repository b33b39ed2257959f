"""The public unsubscribe routes, the only ones a reverse proxy needs to expose.

Rules:
- `GET /u/{token}` never changes anything (mail scanners follow links): for a customer who is
  not opted out it shows the business and a masked address (`d***@example.org`) with a button
  that confirms; otherwise it shows the plain "you are unsubscribed" page.
- `POST /u/{token}` with `List-Unsubscribe=One-Click` in its body (RFC 8058; form-encoded or
  multipart, no cookie needed) opts the customer out and answers 200 with a short text, no
  redirect. The page's own form posts `action=unsubscribe` (the same, source "page") or
  `action=resubscribe` (the "changed my mind" button). Anything else is a 400.
- Every request is idempotent, and an unknown token gets exactly the page and status a known
  one gets once it was used, so tokens cannot be probed.
- Bodies are small: over MAX_BODY bytes is refused (413), by its declared length before it is
  read, and by what arrives (`scheduler.web.app.BodyLimit`) when it declares none.
- The log names the customer by the business's own id (its control characters and line
  breaks escaped: one line per event, whatever an import stored), never the token.
- An opt-out that arrives while the store cannot be written (down, or locked past its busy
  timeout) is kept on disk (`scheduler.store.opt_out_spool`) and answered as recorded: nothing
  says a mail app sends a one-click POST twice. It is recorded, as made when it arrived, before
  anything is sent. Only when it cannot be kept either (no spool, a full disk) does the page
  answer 503 and ask to try again. A resubscription is never kept that way (503: the person
  on the page tries again).
- Once the store has refused a write, for the next REFUSED_FOR seconds (`OptOutSpool.
  store_refusing`) an opt-out is kept at once, without trying the store: a burst of clicks
  during an outage is answered at once, not each after the store's busy timeout in turn.
- Waiting opt-outs are recorded before any request reads or changes a customer here, so a
  "changed my mind" click always comes after the opt-out it undoes. A store that cannot take
  them yet (locked for writing) still shows the page: reading it needs no write.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from scheduler.notes.unsubscribe import MAX_TOKEN_LENGTH
from scheduler.output import printable
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from scheduler.store.opt_outs import Source, opt_out, resubscribe
from scheduler.web.pages import WebContext, names_nothing, page

log = logging.getLogger("appreciate.web")
customers = metadata.tables["customers"]
tokens = metadata.tables["unsubscribe_tokens"]
MAX_BODY = 16_384
"""The largest request body read (a one-click POST is 26 bytes; the page's form about 20)."""
ONE_CLICK_TEXT = "You are unsubscribed: no more notes will be sent to this address.\n"

Action = Literal["unsubscribe", "resubscribe"]


@dataclass(frozen=True)
class Recipient:
    """What the pages may say of a token's customer."""

    external_id: str
    masked: str
    opted_out: bool


def mask_address(address: str | None) -> str:
    """`dana@example.org` -> `d***@example.org`: enough to recognise, too little to harvest."""
    if not address or "@" not in address:
        return "this address"
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


async def show(request: Request) -> Response:
    """`GET /u/{token}` (see the module's rules)."""
    context: WebContext = request.app.state.web
    token = request.path_params["token"]
    if context.spool is not None and context.spool.holds(token):  # kept: done, store or not
        await run_in_threadpool(_try_replay, context)
        return page(context, "unsubscribe_done.html")
    recipient = await run_in_threadpool(_recipient, context, token)
    if recipient is None or recipient.opted_out:
        return page(context, "unsubscribe_done.html")
    return page(context, "unsubscribe_confirm.html", masked=recipient.masked)


async def act(request: Request) -> Response:
    """`POST /u/{token}` (see the module's rules)."""
    context: WebContext = request.app.state.web
    form = await _small_form(request)
    one_click = form.get("List-Unsubscribe") == "One-Click"
    asked = "unsubscribe" if one_click else form.get("action")
    if asked not in ("unsubscribe", "resubscribe"):
        return page(
            context,
            "problem.html",
            code=400,
            heading="That did not work",
            text="Use the button on the page this link opens.",
        )
    action: Action = "unsubscribe" if asked == "unsubscribe" else "resubscribe"
    source: Source = "one_click" if one_click else "page"
    token = request.path_params["token"]
    arrived = context.clock.now()  # a locked store may keep the request waiting a while
    try:
        await run_in_threadpool(_record, context, token, action, source)
    except SQLAlchemyError as error:  # the store is down or locked: keep it, or say so
        refusing = isinstance(error, StoreRefusing)
        if context.spool is not None and not refusing:
            context.spool.refused()
        why = str(error) if refusing else type(error).__name__
        kept = action == "unsubscribe" and await run_in_threadpool(
            _keep, context, token, arrived, source, why
        )
        if not kept:
            return _not_recorded(context, error)
    if action == "unsubscribe":
        return _unsubscribed(context, one_click)
    return page(context, "unsubscribe_back.html")


def _unsubscribed(context: WebContext, one_click: bool) -> Response:
    if one_click:
        return PlainTextResponse(ONE_CLICK_TEXT)
    return page(context, "unsubscribe_done.html")


def _not_recorded(context: WebContext, error: SQLAlchemyError) -> Response:
    log.error("an unsubscribe page request could not be recorded: %s", type(error).__name__)
    return page(
        context,
        "problem.html",
        code=503,
        heading="Not recorded yet",
        text="We could not record this just now. Please try again in a minute.",
    )


def _keep(context: WebContext, token: str, arrived: datetime, source: Source, why: str) -> bool:
    """Keep an opt-out that `arrived` but the store could not take (see the module's rules);
    whether it was."""
    if context.spool is None:
        return False
    if not 0 < len(token) <= MAX_TOKEN_LENGTH or names_nothing(token):
        return True  # names nobody: answered as a known token would be, nothing to keep
    try:
        context.spool.add(token, arrived, source)
    except OSError as error:
        log.error(
            "an opt-out could not be kept in %s either (%s)",
            context.spool.folder,
            error.strerror or error,
        )
        return False
    log.warning(
        "an opt-out (%s) arrived while the store could not be written (%s); kept in %s and "
        "recorded as soon as the store is back, before anything is sent",
        source.replace("_", "-"),
        why,
        context.spool.folder,
    )
    return True


def replay_waiting(context: WebContext, *, wait: bool = True) -> None:
    """Record the opt-outs waiting in the spool, if any; a store that still cannot take them
    raises SQLAlchemyError (they stay). A spool folder that cannot be read is logged, never
    the request's failure (delivery sends nothing while it cannot be read)."""
    spool = context.spool
    try:
        if spool is not None:
            spool.replay(context.engine, context.clock.now(), wait=wait)
    except OSError as error:
        log.error(
            "opt-outs waiting in %s cannot be read: %s",
            spool.folder if spool else "the spool",
            error.strerror or error,
        )


async def _small_form(request: Request) -> FormData:
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise HTTPException(413, "The request is too large.")
    return await request.form(max_files=0, max_fields=16, max_part_size=MAX_BODY)


_BY_TOKEN = (
    select(customers.c.id, customers.c.external_id, customers.c.email, customers.c.opted_out_at)
    .join(tokens, tokens.c.customer_id == customers.c.id)
    .where(tokens.c.token == bindparam("token"))
)


@dataclass(frozen=True)
class _Customer:
    id: int
    external_id: str
    email: str | None
    opted_out_at: datetime | None


def _customer(connection: Connection, token: str) -> _Customer | None:
    """The token's customer, or None: unknown, too long to be a token, or holding a NUL
    (`names_nothing`)."""
    if not 0 < len(token) <= MAX_TOKEN_LENGTH or names_nothing(token):
        return None
    row = connection.execute(_BY_TOKEN, {"token": token}).first()
    return None if row is None else _Customer(*row)


def _try_replay(context: WebContext) -> None:
    """Record what waits if the store takes it now; a store that cannot write (locked, down)
    is no failure of the page, and a replay under way in this process is not waited for."""
    with suppress(SQLAlchemyError):
        replay_waiting(context, wait=False)


def _recipient(context: WebContext, token: str) -> Recipient | None:
    _try_replay(context)  # a store locked for writing still shows the page
    with context.engine.connect() as connection:
        row = _customer(connection, token)
    if row is None:
        return None
    return Recipient(row.external_id, mask_address(row.email), row.opted_out_at is not None)


class StoreRefusing(SQLAlchemyError):
    """The store refused a write moments ago (`OptOutSpool.store_refusing`): not tried again."""


def _record(context: WebContext, token: str, action: Action, source: Source) -> None:
    """Record the choice; raises SQLAlchemyError when the store cannot take it, and for an
    opt-out StoreRefusing, without trying the store, while it refuses writes (also when it
    began to while this one waited its turn)."""
    spool = context.spool

    def refusing() -> bool:
        return action == "unsubscribe" and spool is not None and spool.store_refusing

    if refusing():
        raise StoreRefusing("the store refused a write moments ago")
    replay_waiting(context)
    with context.queued():
        if refusing():
            raise StoreRefusing("the store refused a write moments ago")
        with write_transaction(context.engine) as connection:
            customer = _customer(connection, token)
            if customer is None:
                return
            change = opt_out if action == "unsubscribe" else resubscribe
            choice = change(connection, customer.id, context.clock.now(), source)
    if spool is not None:
        spool.accepted()
    if choice.changed and action == "unsubscribe":
        log.info(
            "customer %s opted out (%s): %d open notes suppressed",
            printable(customer.external_id, newlines=False),
            source.replace("_", "-"),
            choice.notes,
        )
    elif choice.changed:
        log.info(
            "customer %s opted back in (%s): %d notes back in the queue",
            printable(customer.external_id, newlines=False),
            source,
            choice.notes,
        )
