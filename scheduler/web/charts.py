"""Charts drawn on the server as SVG: no script, no library, nothing fetched.

Rules:
- Every text in a chart is escaped; colours are presentation attributes (the pages' policy
  allows no inline style).
- A chart says what it shows in its `<title>` (read by screen readers) and each bar's
  `<title>` gives its exact figures (shown on hover).
- The bars per day hold no text (dates, the scale and the legend are HTML beside them): they
  stretch to the page's width at a fixed height (`preserveAspectRatio="none"`), as tall on a
  phone as on a desktop, where text inside would shrink to a phone's width.
- Stacked bars stack their series in the legend's order, the first at the bottom; a series'
  colour is the same in its bars and in the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from scheduler.service.activity import OTHER, TierShare
from scheduler.vocabulary import OCCASION_KINDS

WIDTH, HEIGHT, TOP = 720, 160, 4
TIERS_WIDTH = 440
"""The tier chart holds text: drawn narrow and shown at most 30rem wide (style.css), its text
stays readable on a phone (about 9px) and on a desktop (about 14px)."""


@dataclass(frozen=True)
class Series:
    """One stacked part of a bar: its key in each day's counts, its name, its colour, and what
    the legend adds in brackets (may be empty)."""

    key: str
    label: str
    colour: str
    detail: str = ""


STATUS_SERIES = (
    Series("sent", "sent", "#2f6f4f"),
    Series("needs you", "needs you", "#a3261b", "failed, unknown, held"),
    Series("not sent", "not sent", "#9a9a9a", "suppressed, expired, skipped, bounced"),
)
KIND_LABELS = {
    "birthday": "birthday",
    "order_thanks": "order thanks",
    "referral_thanks": "referral thanks",
    "review_thanks": "review thanks",
    "first_meeting": "first meeting",
    "follow_up": "follow-up",
    "anniversary": "anniversary",
    "check_in": "check-in",
    OTHER: "other",
}
KIND_COLOURS = {
    "birthday": "#e69f00",
    "order_thanks": "#56b4e9",
    "referral_thanks": "#009e73",
    "review_thanks": "#000000",
    "first_meeting": "#f0e442",
    "follow_up": "#0072b2",
    "anniversary": "#d55e00",
    "check_in": "#cc79a7",
    OTHER: "#7f7f7f",
}
"""The Okabe-Ito palette, told apart with the common colour blindnesses too; neighbours in the
stack differ in lightness as well as hue."""


def kind_series(days: dict[date, dict[str, int]]) -> tuple[Series, ...]:
    """A series for each kind the days count (the vocabulary's order, then `other`)."""
    present = next(iter(days.values()), {})
    kinds = [kind for kind in (*OCCASION_KINDS, OTHER) if kind in present]
    return tuple(Series(kind, KIND_LABELS[kind], KIND_COLOURS[kind]) for kind in kinds)


def notes_per_day_svg(days: dict[date, dict[str, int]]) -> str:
    """Each day's notes by what became of them."""
    return stacked_days_svg(days, STATUS_SERIES, "Notes per day by what became of them")


def notes_by_kind_svg(days: dict[date, dict[str, int]]) -> str:
    """Each day's notes by occasion."""
    return stacked_days_svg(days, kind_series(days), "Notes per day by occasion")


def stacked_days_svg(days: dict[date, dict[str, int]], series: Sequence[Series], title: str) -> str:
    """Stacked bars, one a day, oldest on the left, scaled to the tallest day; each bar's title
    gives the day and every series' count, 0 included."""
    ordered = sorted(days)
    step = WIDTH / max(len(ordered), 1)
    bar = max(step - 1, 1)
    scale = (HEIGHT - TOP) / (tallest(days) or 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'class="chart days" preserveAspectRatio="none"><title>{escape(title)}</title>',
        f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#8888" '
        'vector-effect="non-scaling-stroke"/>',
    ]
    for n, day in enumerate(ordered):
        counts = days[day]
        label = f"{day.isoformat()}: " + ", ".join(
            f"{counts.get(part.key, 0)} {part.label}" for part in series
        )
        parts.append(f"<g><title>{escape(label)}</title>")
        y: float = HEIGHT
        for part in series:
            height = counts.get(part.key, 0) * scale
            if height:
                y -= height
                parts.append(
                    f'<rect x="{n * step:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                    f'height="{height:.1f}" fill="{escape(part.colour)}"/>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def tallest(days: dict[date, dict[str, int]]) -> int:
    """The most notes any of the days has (0 for none)."""
    return max((sum(counts.values()) for counts in days.values()), default=0)


def legend_html(series: Sequence[Series]) -> str:
    """The series' colours and names, as HTML (see the module's rules)."""
    keys = []
    for part in series:
        detail = f" ({escape(part.detail)})" if part.detail else ""
        keys.append(
            '<span class="key"><svg width="12" height="12" viewBox="0 0 12 12" '
            f'aria-hidden="true"><rect width="12" height="12" fill="{escape(part.colour)}"/>'
            f"</svg> {escape(part.label)}{detail}</span>"
        )
    return '<p class="quiet legend">' + "".join(keys) + "</p>"


def tier_shares_svg(shares: list[TierShare]) -> str:
    """One bar per tier: its share of all customers' lifetime value. A share outside 0-1 (a
    tier whose refunds outweigh its orders makes its own negative and the others' larger) draws
    an empty or a full bar, never a negative or an overflowing one; its label says the share."""
    row = 26
    height = row * max(len(shares), 1) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {TIERS_WIDTH} {height}" '
        'role="img" class="chart tiers">'
        "<title>Customers by tier and their share of lifetime value</title>"
    ]
    for n, share in enumerate(shares):
        y = n * row + 4
        length = (TIERS_WIDTH - 240) * min(max(share.share, 0.0), 1.0)
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
