"""Charts drawn on the server as SVG: no script, no library, nothing fetched.

Rules:
- Every text in a chart is escaped; colours are presentation attributes (the pages' policy
  allows no inline style).
- A chart says what it shows in its `<title>` (read by screen readers) and each bar's
  `<title>` gives its exact figures (shown on hover).
"""

from __future__ import annotations

from datetime import date
from html import escape

from scheduler.service.activity import GROUPS, TierShare

COLOURS = {"sent": "#2f6f4f", "needs you": "#a3261b", "not sent": "#9a9a9a"}
WIDTH, HEIGHT, LEFT, BOTTOM = 720, 180, 36, 22


def notes_per_day_svg(days: dict[date, dict[str, int]]) -> str:
    """Stacked bars: each day's notes by group, oldest day on the left."""
    ordered = sorted(days)
    tallest = max((sum(days[day].values()) for day in ordered), default=0) or 1
    step = (WIDTH - LEFT) / max(len(ordered), 1)
    bar = max(step - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'class="chart"><title>Notes per day by what became of them</title>',
        f'<text x="0" y="10" font-size="10" fill="currentColor">{tallest}</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#8888"/>',
    ]
    scale = (HEIGHT - BOTTOM - 8) / tallest
    for n, day in enumerate(ordered):
        x = LEFT + n * step
        y: float = HEIGHT - BOTTOM
        counts = days[day]
        label = escape(f"{day.isoformat()}: " + ", ".join(f"{counts[g]} {g}" for g in GROUPS))
        parts.append(f"<g><title>{label}</title>")
        for group in GROUPS:
            height = counts[group] * scale
            if height:
                y -= height
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                    f'fill="{COLOURS[group]}"/>'
                )
        parts.append("</g>")
    if ordered:
        for day, anchor, x in (
            (ordered[0], "start", LEFT),
            (ordered[-1], "end", WIDTH),
        ):
            parts.append(
                f'<text x="{x}" y="{HEIGHT - 6}" font-size="10" text-anchor="{anchor}" '
                f'fill="currentColor">{escape(day.isoformat())}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def tier_shares_svg(shares: list[TierShare]) -> str:
    """One bar per tier: its share of all customers' lifetime value."""
    row = 26
    height = row * max(len(shares), 1) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        'class="chart"><title>Customers by tier and their share of lifetime value</title>'
    ]
    for n, share in enumerate(shares):
        y = n * row + 4
        length = (WIDTH - 260) * share.share
        label = escape(
            f"{share.tier}: {share.customers} customers, {share.value:,.2f} "
            f"({share.share:.0%} of all value)"
        )
        parts.append(
            f"<g><title>{label}</title>"
            f'<text x="0" y="{y + 15}" font-size="12" fill="currentColor">'
            f"{escape(share.tier)}</text>"
            f'<rect x="70" y="{y}" width="{length:.1f}" height="18" fill="#2f6f4f"/>'
            f'<text x="{70 + length + 6:.1f}" y="{y + 14}" font-size="11" fill="currentColor">'
            f"{share.share:.0%} · {share.customers:,} customers</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
