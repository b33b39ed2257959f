"""Check-ins: which valued customers have gone quiet, judged a chunk at a time.

The rule itself (`scheduler.occasions.rules.check_ins`) decides; this module finds the
candidates through the orders' indexes and brings each one's last notes, lifetime value and
contact. A customer's last order is their last one placed in 1900-2200: an order dated
9999-12-31 (a placeholder) would otherwise keep them from ever counting as quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from scheduler.config.settings import Settings
from scheduler.occasions.rules import Occasion, QuietCustomer, Span, check_ins
from scheduler.occasions.timing import SendWindow
from scheduler.store.bulk import chunked
from scheduler.store.calendar_edges import plausible
from scheduler.store.models import metadata
from scheduler.store.outbox import NOTED, Contact, touches
from scheduler.store.types import aware_utc, aware_utc_or_none
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
customer_values = metadata.tables["customer_values"]
TOP_TIER = "vip"
"""The lifetime-value tier that always qualifies for check-ins (the LTV issue names it)."""


class QuietCustomers:
    """The check-in pass of one detection run."""

    def __init__(
        self, connection: Connection, settings: Settings, span: Span, zone: ZoneBook
    ) -> None:
        self.connection = connection
        self.settings = settings.occasions.check_in
        self.span = span
        self.zone = zone
        self.window = SendWindow.from_settings(settings.schedule)

    def customers(self, last_pass: datetime | None) -> list[tuple[int, datetime]]:
        """(customer, last order) for the customers a check-in pass must judge: whose last
        order is older than `quiet_days` but within `stop_after_days`. The first pass reads
        them all (the recent orders, by the placed_at index); later passes only those who went
        quiet since the previous pass, or whose last check-in was `every_days` ago then."""
        settings = self.settings
        now = self.span.now
        quiet_since = now - timedelta(days=settings.quiet_days)
        oldest = now - timedelta(days=settings.stop_after_days)
        last_order = func.max(orders.c.placed_at)
        judged = (
            select(orders.c.customer_id, last_order)
            .where(plausible(orders.c.placed_at))
            .group_by(orders.c.customer_id)
        )
        judged = judged.having(and_(last_order <= quiet_since, last_order >= oldest))
        if last_pass is None:
            rows = self.connection.execute(judged.where(orders.c.placed_at >= oldest)).all()
            return [(customer_id, aware_utc(last)) for customer_id, last in rows]
        since_pass = now - last_pass
        newly_quiet = select(orders.c.customer_id).where(
            orders.c.placed_at.between(quiet_since - since_pass, quiet_since)
        )
        due_again = select(touches.c.customer_id).where(
            and_(
                touches.c.status.in_(NOTED),
                touches.c.kind == "check_in",
                touches.c.due_at.between(
                    now - timedelta(days=settings.every_days) - since_pass,
                    now - timedelta(days=settings.every_days),
                ),
            )
        )
        ids = sorted(
            {row[0] for query in (newly_quiet, due_again) for row in self.connection.execute(query)}
        )
        found: list[tuple[int, datetime]] = []
        for part in chunked(ids):
            chunk = self.connection.execute(judged.where(orders.c.customer_id.in_(part)))
            found += [(customer_id, aware_utc(last)) for customer_id, last in chunk]
        return found

    def judge(
        self, quiet: Sequence[tuple[int, datetime]]
    ) -> tuple[list[Occasion], dict[int, Contact]]:
        """Check-ins among these quiet customers (the rule decides, with their notes and
        values), and the customers' contacts."""
        settings = self.settings
        values_known = (
            self.connection.execute(
                select(func.count()).select_from(
                    select(customer_values.c.customer_id).limit(1).subquery()
                )
            ).scalar_one()
            > 0
        )
        ids = [customer_id for customer_id, _ in quiet]
        details = {
            row.id: row
            for row in self.connection.execute(
                select(
                    customers.c.id,
                    customers.c.timezone,
                    customers.c.email,
                    customers.c.opted_out_at,
                    customer_values.c.total,
                    customer_values.c.tier,
                )
                .outerjoin(customer_values, customer_values.c.customer_id == customers.c.id)
                .where(customers.c.id.in_(ids))
            )
        }
        notes = self._last_notes(ids)
        people = [
            QuietCustomer(
                customer_id,
                self.zone(details[customer_id].timezone),
                last_order_at,
                *notes.get(customer_id, (None, None)),
                value=details[customer_id].total,
                top_tier=details[customer_id].tier == TOP_TIER,
            )
            for customer_id, last_order_at in quiet
            if customer_id in details
        ]
        contacts = {
            row.id: Contact(row.email, row.opted_out_at, self.zone(row.timezone))
            for row in details.values()
        }
        return check_ins(people, self.span.now, settings, self.window, values_known), contacts

    def _last_notes(self, ids: list[int]) -> dict[int, tuple[datetime | None, datetime | None]]:
        """Per customer: the last note sent (any kind), and the last check-in."""
        found: dict[int, tuple[datetime | None, datetime | None]] = {}
        for part in chunked(ids):
            rows = self.connection.execute(
                select(
                    touches.c.customer_id,
                    func.max(touches.c.sent_at).label("last_sent"),
                    func.max(func.coalesce(touches.c.sent_at, touches.c.due_at))
                    .filter(touches.c.kind == "check_in")
                    .label("last_check_in"),
                )
                .where(touches.c.customer_id.in_(part))
                .where(touches.c.status.in_(NOTED))
                .group_by(touches.c.customer_id)
            )
            for row in rows:
                found[row.customer_id] = (
                    aware_utc_or_none(row.last_sent),
                    aware_utc_or_none(row.last_check_in),
                )
        return found
