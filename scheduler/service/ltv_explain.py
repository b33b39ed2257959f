"""One customer's lifetime value in words: each part, where it comes from, and the goodwill.

With the simple model (small bases) each part of the blend is explained from the orders in
the store up to the values' as-of day: the customer's own figure, how much it counts, and the
business's. With BG/NBD the parts are the fitted model's; the words say what they rest on.
Numbers are written with thousands separators and two decimals (money) or as counts.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from sqlalchemy import Connection

from scheduler.config.settings import Settings
from scheduler.ltv.blend import BlendParts, blended_parts
from scheduler.service.ltv_report import ValueReport, ValueRow
from scheduler.service.valuation import purchase_summary


def explain(
    connection: Connection, settings: Settings, report: ValueReport, internal_id: int
) -> list[str]:
    """Sentences explaining the report's (single) customer row."""
    row = report.customers[0]
    ltv = settings.ltv
    lines = [f"spent so far {row.historical:,} (the margin of their orders up to {report.as_of})"]
    if report.kind == "simple":
        lines += _blend_lines(connection, settings, report.as_of, internal_id)
    else:
        alive = "" if row.p_alive is None else f"; {row.p_alive:.0%} likely still a customer"
        lines.append(
            f"expected to spend {row.predicted:,} over the next {ltv.horizon_months} months, "
            f"discounted at {ltv.annual_discount_rate:.0%} a year: the BG/NBD model's expected "
            f"purchases from how often and how recently they bought, priced at their expected "
            f"margin per purchase{alive}"
        )
    lines.append(
        f"through referrals {row.referral:,}: {ltv.referral_credit:.0%} of what the customers "
        "they referred are worth (see `appreciate ltv referrers`)"
    )
    lines.append(_goodwill_line(row, ltv.goodwill_share))
    return lines


def _goodwill_line(row: ValueRow, share: float) -> str:
    return (
        f"goodwill allowance {row.goodwill:,}: {share:.0%} of their total {row.total:,}, "
        "what it is worth conceding to keep them after a complaint"
    )


def _blend_lines(
    connection: Connection, settings: Settings, as_of: date, internal_id: int
) -> list[str]:
    ltv = settings.ltv
    summary = purchase_summary(connection, settings, as_of)
    at = np.flatnonzero(summary.customer_id == internal_id)
    if at.shape[0] == 0:
        return [f"expected to spend 0.00: no order up to {as_of}, and nothing says they will buy"]
    parts = blended_parts(
        summary,
        prior_orders=ltv.prior_orders,
        prior_years=ltv.prior_years,
        expected_lifetime_years=ltv.expected_lifetime_years,
        horizon_months=ltv.horizon_months,
        annual_discount_rate=ltv.annual_discount_rate,
    )
    return blend_sentences(parts, int(at[0]), horizon_months=ltv.horizon_months)


def blend_sentences(parts: BlendParts, i: int, *, horizon_months: int) -> list[str]:
    """The blend's parts for row i, in words."""
    n = int(parts.transactions[i])
    orders = f"{n:,} order" + ("" if n == 1 else "s")
    x = int(parts.repeats[i])
    repeats = f"{x:,} return purchase" + ("" if x == 1 else "s")
    years = float(parts.years[i])
    left = float(parts.years_left[i])
    quiet = float(parts.quiet_years[i])
    months = min(float(horizon_months), left * 12)
    return [
        f"average order {parts.order[i]:,.2f}: their {orders} averaging "
        f"{parts.own_order[i]:,.2f} {'counts' if n == 1 else 'count'} as {_count(n)} "
        f"{'part' if n == 1 else 'parts'}, the business's average of "
        f"{parts.business_order:,.2f} as {_count(parts.prior_orders)}",
        f"purchases a year {parts.per_year[i]:,.2f}: their {repeats} after the first in "
        f"{years:,.2f} years ({parts.own_per_year[i]:,.2f} a year) count as {years:,.2f} "
        f"parts, the business's {parts.business_per_year:,.2f} a year as "
        f"{_count(parts.prior_years)}",
        f"years still to come {left:,.2f}: expected_lifetime_years "
        f"{_count(parts.expected_lifetime_years)} less the {quiet:,.2f} years since their last "
        f"order (how long they have stayed says nothing of how long they will; a customer not "
        f"seen for a whole lifetime is taken as gone)",
        f"expected to spend {parts.predicted[i]:,.2f}: {parts.order[i]:,.2f} x "
        f"{parts.per_year[i]:,.2f} a year for {months:,.1f} months (at most "
        f"{horizon_months} ahead), each month discounted",
    ]


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
