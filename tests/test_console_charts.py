"""The console's charts, on both databases: each day's notes counted by what became of them and
by occasion (on the day of their latest activity, in UTC), tiers with their share of value, and
the SVG drawn on the server with every figure in it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert

from scheduler.service.activity import TierShare, daily_notes, notes_per_day, tier_shares
from scheduler.store.models import metadata
from scheduler.vocabulary import OCCASION_KINDS
from scheduler.web.charts import (
    KIND_COLOURS,
    KIND_LABELS,
    STATUS_SERIES,
    TIERS_WIDTH,
    Series,
    legend_html,
    notes_by_kind_svg,
    notes_per_day_svg,
    stacked_days_svg,
    tier_shares_svg,
)
from tests.test_console_note import client
from tests.test_detection import add_customer, add_ltv_run

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
customer_values = metadata.tables["customer_values"]


def add(engine: Engine, status: str, at: datetime, n: int, kind: str = "birthday") -> None:
    who = add_customer(engine, f"C-{status}-{n}-{at:%j%H}")
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=who,
                kind=kind,
                occasion_key=f"{kind}:{n}",
                status=status,
                due_at=at,
                updated_at=at,
            )
        )


def test_each_day_counts_its_notes_by_what_became_of_them(engine: Engine) -> None:
    today = NOW.date()
    add(engine, "sent", NOW, 1)
    add(engine, "sent", NOW - timedelta(hours=1), 2)
    add(engine, "failed", NOW, 3)
    add(engine, "suppressed", NOW - timedelta(days=1), 4)
    add(engine, "pending", NOW, 5)  # still waiting: not drawn
    add(engine, "sent", datetime(2027, 6, 14, 23, 30, tzinfo=UTC), 6)  # late yesterday, UTC
    add(engine, "sent", NOW - timedelta(days=30), 7)  # before the window
    with engine.connect() as connection:
        days = notes_per_day(connection, today, 7)
    assert sorted(days) == [today - timedelta(days=n) for n in range(6, -1, -1)]
    assert days[today] == {"sent": 2, "needs you": 1, "not sent": 0}
    assert days[date(2027, 6, 14)] == {"sent": 1, "needs you": 0, "not sent": 1}
    assert sum(sum(counts.values()) for counts in days.values()) == 5
    drawn = notes_per_day_svg(days)
    assert drawn.startswith("<svg")
    assert "2027-06-15: 2 sent, 1 needs you, 0 not sent" in drawn


def test_tiers_show_their_share_of_all_value(engine: Engine) -> None:
    with engine.begin() as connection:
        run_id = add_ltv_run(connection)
    for n, (tier, total) in enumerate([("vip", "750"), ("regular", "200"), ("regular", "50")]):
        who = add_customer(engine, f"T-{n}")
        with engine.begin() as connection:
            connection.execute(
                insert(customer_values).values(
                    customer_id=who,
                    run_id=run_id,
                    historical=Decimal(total),
                    predicted=Decimal(0),
                    referral=Decimal(0),
                    total=Decimal(total),
                    tier=tier,
                )
            )
    with engine.connect() as connection:
        shares = tier_shares(connection)
    assert [(s.tier, s.customers, s.share) for s in shares] == [
        ("vip", 1, 0.75),
        ("regular", 2, 0.25),
    ]
    assert "vip: 1 customers, 750.00 (75% of all value)" in tier_shares_svg(shares)


def test_a_tier_worth_less_than_nothing_draws_no_negative_bar() -> None:
    """Refunds can make a tier's value negative and the others' share over 100%: the bars
    were drawn with a negative width (which a browser refuses) and past the chart's edge."""
    shares = [
        TierShare("vip", 1, Decimal(600), 1.2),
        TierShare("new", 3, Decimal(-100), -0.2),
    ]
    widths = [
        float(w)
        for w in re.findall(r'<rect x="70" y="\d+" width="([-\d.]+)"', tier_shares_svg(shares))
    ]
    assert widths == [TIERS_WIDTH - 240, 0.0]
    assert "new: 3 customers, -100.00 (-20% of all value)" in tier_shares_svg(shares)


def test_each_day_counts_its_notes_by_occasion(engine: Engine) -> None:
    today = NOW.date()
    add(engine, "sent", NOW, 1, "birthday")
    add(engine, "failed", NOW - timedelta(hours=2), 2, "birthday")
    add(engine, "sent", NOW, 3, "order_thanks")
    add(engine, "pending", NOW, 4, "order_thanks")  # still waiting: not drawn
    add(engine, "expired", datetime(2027, 6, 13, 23, 59, tzinfo=UTC), 5, "follow_up")
    add(engine, "sent", datetime(2027, 6, 14, 0, 0, tzinfo=UTC), 6, "check_in")
    add(engine, "sent", NOW - timedelta(days=7), 7, "anniversary")  # before the window
    with engine.connect() as connection:
        days = daily_notes(connection, today, 3)
    assert sorted(days.by_kind) == [date(2027, 6, 13), date(2027, 6, 14), today]
    none = dict.fromkeys(OCCASION_KINDS, 0)
    assert days.by_kind[today] == none | {"birthday": 2, "order_thanks": 1}
    assert days.by_kind[date(2027, 6, 14)] == none | {"check_in": 1}
    assert days.by_kind[date(2027, 6, 13)] == none | {"follow_up": 1}
    for day, counts in days.by_kind.items():  # the same notes as by what became of them
        assert sum(counts.values()) == sum(days.by_group[day].values())
    drawn = notes_by_kind_svg(days.by_kind)
    assert "<title>Notes per day by occasion</title>" in drawn
    assert (
        "2027-06-15: 2 birthday, 1 order thanks, 0 referral thanks, 0 review thanks, "
        "0 first meeting, 0 follow-up, 0 anniversary, 0 check-in</title>"
    ) in drawn
    assert "2027-06-13: 0 birthday, 0 order thanks, 0 referral thanks, 0 review thanks, " in drawn
    assert "other" not in drawn  # no kind outside the vocabulary: no such series


def test_a_quiet_day_has_a_bar_of_nothing(engine: Engine) -> None:
    add(engine, "sent", NOW, 1, "referral_thanks")
    with engine.connect() as connection:
        days = daily_notes(connection, NOW.date(), 2)
    assert days.by_kind[date(2027, 6, 14)] == dict.fromkeys(OCCASION_KINDS, 0)
    drawn = notes_by_kind_svg(days.by_kind)
    assert drawn.count("<g><title>") == 2  # a day with none is still a day
    assert "2027-06-14: 0 birthday, 0 order thanks, 0 referral thanks," in drawn
    assert "2027-06-15: 0 birthday, 0 order thanks, 1 referral thanks," in drawn
    assert drawn.count("<rect ") == 1


def test_a_kind_outside_the_vocabulary_counts_as_other_and_is_never_shown(engine: Engine) -> None:
    add(engine, "sent", NOW, 1, "<script>alert(1)</script>")
    add(engine, "sent", NOW, 2, "birthday")
    with engine.connect() as connection:
        days = daily_notes(connection, NOW.date(), 2)
    assert days.by_kind[NOW.date()]["other"] == 1
    assert days.by_kind[date(2027, 6, 14)]["other"] == 0
    page = client(engine).get("/").text
    assert "2027-06-15: 1 birthday, 0 order thanks," in page
    assert "0 check-in, 1 other</title>" in page
    assert "alert(1)" not in page


def test_every_text_in_a_chart_and_its_legend_is_escaped() -> None:
    hostile = Series("x", '<b>"bold" & co</b>', '"/><script>', "<i>")
    days = {date(2027, 6, 15): {"x": 2}}
    for drawn in (stacked_days_svg(days, [hostile], "<title>"), legend_html([hostile])):
        assert "<b>" not in drawn
        assert "<script>" not in drawn
        assert "<i>" not in drawn
    drawn = stacked_days_svg(days, [hostile], "<title>")
    assert "<title>&lt;title&gt;</title>" in drawn
    assert "2027-06-15: 2 &lt;b&gt;&quot;bold&quot; &amp; co&lt;/b&gt;" in drawn
    assert 'fill="&quot;/&gt;&lt;script&gt;"' in drawn


def test_each_series_keeps_one_colour_in_bars_and_legend() -> None:
    days = {date(2027, 6, 15): {"sent": 1, "needs you": 1, "not sent": 1}}
    drawn, legend = notes_per_day_svg(days), legend_html(STATUS_SERIES)
    colours = [series.colour for series in STATUS_SERIES]
    assert len(set(colours)) == len(colours)
    for colour in colours:
        assert f'fill="{colour}"' in drawn
        assert f'fill="{colour}"' in legend
    assert "needs you (failed, unknown, held)" in legend


def test_every_kind_has_a_name_and_a_colour_of_its_own() -> None:
    kinds = [*OCCASION_KINDS, "other"]
    assert set(KIND_LABELS) == set(KIND_COLOURS) == set(kinds)
    assert len(set(KIND_COLOURS.values())) == len(kinds)
    assert len(set(KIND_LABELS.values())) == len(kinds)


def test_today_draws_the_charts(engine: Engine) -> None:
    add(engine, "sent", NOW - timedelta(days=1), 1, "birthday")
    add(engine, "failed", NOW - timedelta(days=1), 2, "follow_up")
    page = client(engine).get("/").text
    assert page.count('class="chart days"') == 2
    assert 'class="chart tiers"' not in page  # no values yet: the tier chart says so instead
    assert "Notes, the last 90 days" in page
    assert "2027-03-18 on the left to 2027-06-15 on the right" in page
    assert "The tallest day had 2 notes." in page
    assert "<title>2027-06-14: 1 sent, 1 needs you, 0 not sent</title>" in page
    assert (
        "<title>2027-06-14: 1 birthday, 0 order thanks, 0 referral thanks, 0 review thanks" in page
    )
    assert "1 follow-up, 0 anniversary, 0 check-in</title>" in page
    assert "Not valued yet" in page
