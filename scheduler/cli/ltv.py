"""`appreciate ltv`: customers' lifetime value, shown, or computed and stored again."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated

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
from scheduler.output import OutputFormat, table, to_csv, to_json

if TYPE_CHECKING:
    from scheduler.service.ltv_report import ValueReport

ltv_app = typer.Typer(
    help="Customers' lifetime value: show it, or compute and store it again.",
    invoke_without_command=True,
)


@ltv_app.callback()
def ltv(
    ctx: typer.Context,
    top: Annotated[
        int, typer.Option("--top", min=0, metavar="N", help="Show the N most valuable (0: all).")
    ] = 20,
    customer: Annotated[
        str | None, typer.Option("--customer", metavar="ID", help="Show only this customer.")
    ] = None,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Customers by lifetime value: what they spent (historical), what they will likely spend
    (predicted), the business they brought (referral), the chance they are still active
    (p_alive) and their tier; with the model used, its parameters and why it was chosen.

    Shows the values stored by the last `appreciate ltv refresh` (the daemon refreshes them
    nightly). With --as-of, computes them from the orders up to that day without storing.
    """
    if ctx.invoked_subcommand is not None:
        return
    from scheduler.progress import stage_progress
    from scheduler.service.ltv_report import computed_report, stored_report
    from scheduler.service.valuation import compute_values

    config = cli_state(ctx).config()
    day = parse_date(as_of, "--as-of")
    with opened_store(config) as engine, engine.connect() as connection, connection.begin():
        if day is None:
            report = stored_report(connection, top, customer)
        else:
            with stage_progress(err) as progress:
                valuation = compute_values(connection, config.settings, day, progress)
            if valuation.warning():
                err.print(f"warning: {valuation.warning()}", markup=False)
            report = computed_report(connection, valuation.values, day, top, customer)
    if report is None:
        err.print(
            "No lifetime values yet: compute and store them with `appreciate ltv refresh`, "
            "or see them without storing with `appreciate ltv --as-of YYYY-MM-DD`.",
            markup=False,
        )
        raise typer.Exit(1)
    _print_values(report, output_format)


def _print_values(report: ValueReport, output_format: OutputFormat) -> None:
    from scheduler.service.ltv_report import COLUMNS as VALUE_COLUMNS

    rows = [row.as_dict() for row in report.customers]
    if output_format is OutputFormat.json:
        out.file.write(to_json(report.as_json()) + "\n")
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
    params = ", ".join(
        f"{k} = {v:.4g}" for k, v in {**report.params, **report.spend_params}.items()
    )
    out.print(f"Model: {report.reason}", markup=False)
    if params:
        out.print(f"Parameters: {params}", markup=False)


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
    out.print(f"Stored the lifetime value of {count:,} customers as of {result.as_of}.")
    out.print(f"Model: {values.reason}", markup=False)
    out.print(
        f"Tiers: {tiers['vip']:,} vip, {tiers['regular']:,} regular, {tiers['new']:,} new.",
        markup=False,
    )
