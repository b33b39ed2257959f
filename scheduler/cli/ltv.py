"""`appreciate ltv`: customers' lifetime value, shown, or computed and stored again."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from scheduler.cli.common import (
    AsOfOption,
    FormatOption,
    NowOption,
    cli_state,
    err,
    opened_store,
    out,
    parse_date,
    parse_now,
)
from scheduler.output import OutputFormat, counted, table, to_csv, to_json
from scheduler.vocabulary import MAX_ID

if TYPE_CHECKING:
    from scheduler.service.ltv_budget import AcquisitionBudget
    from scheduler.service.ltv_report import ValueReport

ltv_app = typer.Typer(
    help="Customers' lifetime value: show it, or compute and store it again.",
    invoke_without_command=True,
)


@ltv_app.callback()
def ltv(
    ctx: typer.Context,
    top: Annotated[
        int,
        typer.Option(
            "--top", min=0, max=MAX_ID, metavar="N", help="Show the N most valuable (0: all)."
        ),
    ] = 20,
    customer: Annotated[
        str | None,
        typer.Option(
            "--customer",
            metavar="ID",
            help="Show only this customer, each part explained in words.",
        ),
    ] = None,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Customers by lifetime value: what they spent (historical), what they will likely spend
    (predicted), the business they brought (referral), the chance they are still active
    (p_alive), their tier and goodwill allowance (`[ltv] goodwill_share` of their value: what
    it is worth conceding to keep them after a complaint); with the model used, its parameters
    and why it was chosen, and the acquisition budget (see `appreciate ltv budget`). With
    --customer, each part explained in words.

    Shows the values stored by the last `appreciate ltv refresh` (the daemon refreshes them
    nightly). With --as-of, computes them from the orders up to that day without storing.
    """
    if ctx.invoked_subcommand is not None:
        return
    from scheduler.progress import stage_progress
    from scheduler.service.ltv_budget import computed_budget, stored_budget
    from scheduler.service.ltv_explain import explain
    from scheduler.service.ltv_report import computed_report, internal_id, stored_report
    from scheduler.service.valuation import compute_values

    config = cli_state(ctx).config()
    ltv_settings = config.settings.ltv
    day = parse_date(as_of, "--as-of")
    words: list[str] = []
    with opened_store(config) as engine, engine.connect() as connection, connection.begin():
        if day is None:
            report = stored_report(connection, top, customer, ltv_settings.goodwill_share)
            budget = stored_budget(connection, ltv_settings.acquisition_share)
        else:
            with stage_progress(err) as progress:
                valuation = compute_values(connection, config.settings, day, progress)
            if valuation.warning():
                err.print(f"warning: {valuation.warning()}", markup=False)
            report = computed_report(
                connection, valuation.values, day, top, customer, ltv_settings.goodwill_share
            )
            budget = computed_budget(valuation.values, ltv_settings.acquisition_share)
        if report is not None and customer is not None and report.customers:
            found = internal_id(connection, customer)
            words = explain(connection, config.settings, report, found)
    if report is None:
        _no_values()
    _print_values(report, budget, words, output_format)


def _no_values() -> NoReturn:
    err.print(
        "No lifetime values yet: compute and store them with `appreciate ltv refresh`, "
        "or see them without storing with `appreciate ltv --as-of YYYY-MM-DD`.",
        markup=False,
    )
    raise typer.Exit(1)


def _print_values(
    report: ValueReport, budget: AcquisitionBudget, words: list[str], output_format: OutputFormat
) -> None:
    from scheduler.service.ltv_report import COLUMNS as VALUE_COLUMNS

    rows = [row.as_dict() for row in report.customers]
    if output_format is OutputFormat.json:
        document = {**report.as_json(), "acquisition": budget.as_json()}
        if words:
            document["explanation"] = words
        out.file.write(to_json(document) + "\n")
        return
    columns = ["customer_id", "name", *VALUE_COLUMNS[1:]]
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, columns))
        return
    for row in rows:
        row["p_alive"] = None if row["p_alive"] is None else f"{row['p_alive']:.3f}"
    when = (
        f"computed {report.computed_at:%Y-%m-%d %H:%M} UTC" if report.computed_at else "not stored"
    )
    out.print(table(f"Lifetime value as of {report.as_of} ({when})", rows, columns))
    for line in words:
        out.print(f"- {line}", markup=False)
    params = ", ".join(
        f"{k} = {v:.4g}" for k, v in {**report.params, **report.spend_params}.items()
    )
    out.print(f"Model: {report.reason}", markup=False)
    if params:
        out.print(f"Parameters: {params}", markup=False)
    out.print(f"{budget.sentence()}.", markup=False)
    tiers = "; ".join(
        f"{line.group} {line.budget:,} (average {line.average_value:,}, {line.customers:,})"
        for line in budget.tiers
    )
    if tiers:
        out.print(f"By tier: {tiers}.", markup=False)


@ltv_app.command("budget")
def ltv_budget(
    ctx: typer.Context,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """What winning a new customer is worth spending: `[ltv] acquisition_share` of the average
    lifetime value of the customers who have bought, overall and per tier.

    From the values stored by the last `appreciate ltv refresh`; with --as-of, computed from
    the orders up to that day without storing.
    """
    from scheduler.service.ltv_budget import BUDGET_COLUMNS, computed_budget, stored_budget
    from scheduler.service.ltv_report import stored_report
    from scheduler.service.valuation import compute_values

    config = cli_state(ctx).config()
    share = config.settings.ltv.acquisition_share
    day = parse_date(as_of, "--as-of")
    with opened_store(config) as engine, engine.connect() as connection, connection.begin():
        if day is None:
            if stored_report(connection, 1, None) is None:
                _no_values()
            budget = stored_budget(connection, share)
        else:
            valuation = compute_values(connection, config.settings, day)
            budget = computed_budget(valuation.values, share)
    rows = [line.as_dict() for line in budget.lines()]
    if output_format is OutputFormat.json:
        out.file.write(to_json(budget.as_json()) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, BUDGET_COLUMNS))
    else:
        out.print(table(f"Acquisition budget ({share:.0%} of value)", rows, BUDGET_COLUMNS))
        out.print(f"{budget.sentence()}.", markup=False)


@ltv_app.command("referrers")
def ltv_referrers(
    ctx: typer.Context,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, max=MAX_ID, metavar="N", help="Show the top N (0: all)."),
    ] = 20,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The friendlies: customers ranked by the value of the customers they referred, each with
    the customers they brought and what those are worth (their own value: spent + expected),
    and the referral credit in their own lifetime value. From the stored values.
    """
    from scheduler.service.ltv_report import stored_report
    from scheduler.service.referrers import top_referrers

    config = cli_state(ctx).config()
    with opened_store(config) as engine, engine.connect() as connection, connection.begin():
        if stored_report(connection, 1, None) is None:
            _no_values()
        found = top_referrers(connection, limit)
    if output_format is OutputFormat.json:
        out.file.write(to_json({"referrers": [one.as_dict() for one in found]}) + "\n")
        return
    rows = [
        {
            "referrer_id": one.customer_id,
            "referrer": one.name,
            "brought": one.brought,
            "credit": one.credit,
            "referred_id": each.customer_id,
            "referred": each.name,
            "referred_on": each.referred_on,
            "worth": each.worth,
        }
        for one in found
        for each in one.referred
    ]
    columns = list(REFERRER_COLUMNS)
    if output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, columns))
        return
    if not found:
        out.print("No customer has referred anyone yet.")
        return
    for one in found:
        shown = [
            {
                "referred_id": e.customer_id,
                "referred": e.name,
                "referred_on": e.referred_on,
                "worth": e.worth,
            }
            for e in one.referred
        ]
        title = (
            f"{one.customer_id} {one.name}: brought {one.brought:,} "
            f"(their referral credit {one.credit:,})"
        )
        out.print(table(title, shown, ["referred_id", "referred", "referred_on", "worth"]))


REFERRER_COLUMNS = (
    "referrer_id",
    "referrer",
    "brought",
    "credit",
    "referred_id",
    "referred",
    "referred_on",
    "worth",
)


@ltv_app.command("refresh")
def ltv_refresh(
    ctx: typer.Context,
    as_of: AsOfOption = None,
    now: NowOption = None,
) -> None:
    """Compute every customer's lifetime value and store it (replacing the previous values).

    The daemon does this nightly at `[ltv] recompute_at`; run it by hand after a large import.
    """
    from scheduler.progress import stage_progress
    from scheduler.service.valuation import refresh_values

    config = cli_state(ctx).config()
    moment = parse_now(now)
    day = parse_date(as_of, "--as-of")
    with opened_store(config) as engine, stage_progress(err) as progress:
        result = refresh_values(engine, config.settings, moment, day, progress)
    values = result.values
    if result.warning:
        err.print(f"warning: {result.warning}", markup=False)
    count = values.customer_id.shape[0]
    tiers = Counter(values.tier_labels().tolist())
    out.print(f"Stored the lifetime value of {counted(count, 'customer')} as of {result.as_of}.")
    out.print(f"Model: {values.reason}", markup=False)
    out.print(
        f"Tiers: {tiers['vip']:,} vip, {tiers['regular']:,} regular, {tiers['new']:,} new.",
        markup=False,
    )
