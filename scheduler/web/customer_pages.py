"""One customer in the console: their facts, whether they get notes, their lifetime value with
each component and the model behind it, their timeline, and Opt out / Resubscribe.

Rules:
- `GET /customer?id=ID` names the customer by the business's own id (any characters); an
  unknown id (or one no store can hold: `names_nothing`) is a 404, here and for the POSTs.
- `POST /customer/opt-out` and `/customer/resubscribe` need the session's CSRF token and the
  confirmation box; they act as the unsubscribe page does (`scheduler.store.opt_outs`, source
  `console`: an opt-out stops the customer's open notes at once), then redirect to the
  customer, which says what was done. So does `POST /customer/works-again`, for an address
  that bounced and works again (`scheduler.store.undeliverable`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from scheduler.output import printable
from scheduler.service.customer_story import CustomerStory, customer_story
from scheduler.service.ltv_budget import AcquisitionBudget
from scheduler.service.ltv_report import ValueReport, stored_report
from scheduler.store.models import metadata
from scheduler.store.opt_outs import Choice, opt_out, resubscribe
from scheduler.store.undeliverable import works_again
from scheduler.web.login import csrf_token, is_owner
from scheduler.web.pages import WebContext, names_nothing, owner_form, page

log = logging.getLogger("appreciate.web")
customers = metadata.tables["customers"]
TOLD = {
    "opted-out": "Opted out: no note goes to them any more; their open notes were stopped.",
    "resubscribed": "Subscribed again: notes still in time went back in the queue.",
    "confirm": "Tick the box to confirm.",
    "unchanged": "Nothing to change: it was already so.",
    "works-again": "Their address is taken off the bounced list: the next notes go to it.",
}


async def customer_page(request: Request) -> Response:
    """`GET /customer?id=ID`."""
    context: WebContext = request.app.state.web
    if not is_owner(request):
        return RedirectResponse("login", status_code=303)
    external_id = request.query_params.get("id", "")
    story, value, budget = await run_in_threadpool(_read, context, external_id)
    if story is None:
        return _no_such(context, external_id, root="")
    facts = story.facts
    row = value.customers[0] if value and value.customers else None
    return page(
        context,
        "customer.html",
        root="",
        csrf=csrf_token(request),
        facts=facts,
        birthday=_birthday(facts),
        opted_out=context.local(story.opted_out_at),
        bounced=(context.local(story.bounced[0]), story.bounced[1]) if story.bounced else None,
        how=(story.opted_out_how or "").replace("_", "-"),
        value=row,
        model=value,
        goodwill_share=context.settings.ltv.goodwill_share,
        budget=budget,
        tier_budget=next((b for b in budget.tiers if row and b.group == row.tier), None)
        if budget
        else None,
        timeline=[{**vars(m), "when": context.local(m.at)} for m in story.timeline],
        more=story.more,
        done=TOLD.get(request.query_params.get("told", ""), ""),
    )


async def customer_opt_out(request: Request) -> Response:
    """`POST /customer/opt-out`."""
    return await _choose(request, opt_out, "opted-out")


async def customer_resubscribe(request: Request) -> Response:
    """`POST /customer/resubscribe`."""
    return await _choose(request, resubscribe, "resubscribed")


async def customer_works_again(request: Request) -> Response:
    """`POST /customer/works-again`: the customer's address bounced, and works again."""
    return await _choose(request, works_again, "works-again")


async def _choose(request: Request, change: Any, told: str) -> Response:
    context: WebContext = request.app.state.web
    form = await owner_form(request, root="../")
    if isinstance(form, Response):
        return form
    external_id = str(form.get("id", ""))
    back = "../customer?" + urlencode({"id": external_id})
    if form.get("confirm") != "yes":
        return RedirectResponse(back + "&told=confirm", status_code=303)
    choice = await run_in_threadpool(_record, context, external_id, change)
    if choice is None:
        return _no_such(context, external_id, root="../")
    if choice.changed:
        shown = printable(external_id, newlines=False)  # one line, whatever an import stored
        log.info("customer %s: %s by the owner (%d notes)", shown, told, choice.notes)
    return RedirectResponse(
        back + "&told=" + (told if choice.changed else "unchanged"), status_code=303
    )


def _read(
    context: WebContext, external_id: str
) -> tuple[CustomerStory | None, ValueReport | None, AcquisitionBudget | None]:
    ltv = context.settings.ltv
    if names_nothing(external_id):
        return None, None, None
    with context.engine.connect() as connection:
        story = customer_story(connection, external_id)
        if story is None:
            return None, None, None
        report = stored_report(connection, 0, external_id, ltv.goodwill_share)
        budget = context.budgets.get(connection, ltv.acquisition_share) if report else None
        return story, report, budget


def _record(context: WebContext, external_id: str, change: Any) -> Choice | None:
    if names_nothing(external_id):
        return None
    with context.writing() as connection:
        who = connection.execute(
            select(customers.c.id).where(customers.c.external_id == external_id)
        ).scalar()
        if who is None:
            return None
        result: Choice = change(connection, who, context.clock.now(), "console")
        return result


def _no_such(context: WebContext, external_id: str, root: str) -> Response:
    text = f"No customer has the id {external_id!r}."
    return page(context, "problem.html", 404, root=root, heading="No such customer", text=text)


def _birthday(facts: dict[str, Any]) -> str:
    month, day, year = facts["birth_month"], facts["birth_day"], facts["birth_year"]
    if not month or not day:
        return ""
    return f"{year}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"
