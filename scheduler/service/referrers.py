"""The friendlies: customers ranked by the value of the customers they referred.

Rules (the referral model of `scheduler.ltv.referral`, on the stored values):
- a referred customer is worth their own value, historical + predicted (never their own
  referral credit: in a chain A -> B -> C, A is ranked on B's own value only);
- a referrer's `brought` is the sum over the customers they referred directly, and their
  `credit` the referral part of their own lifetime value (`[ltv] referral_credit` x brought);
- referrers are ranked by `brought`, highest first, equal ones by the store's customer order;
  a referred customer not valued yet (added since the last refresh) counts as 0 and is listed;
- only referrers with at least one referral are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql import Select

from scheduler.store.bulk import chunked
from scheduler.store.models import metadata

customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]
referrals = metadata.tables["referrals"]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Referred:
    customer_id: str
    name: str
    referred_on: str
    worth: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "referred_on": self.referred_on,
            "worth": self.worth,
        }


@dataclass(frozen=True)
class Referrer:
    customer_id: str
    name: str
    brought: Decimal
    credit: Decimal
    referred: list[Referred]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "brought": self.brought,
            "credit": self.credit,
            "referred": [one.as_dict() for one in self.referred],
        }


def _own_value() -> Any:
    return func.coalesce(customer_values.c.historical + customer_values.c.predicted, 0)


def top_referrers(connection: Connection, limit: int) -> list[Referrer]:
    """The `limit` referrers (0: all) who brought the most value (see the module)."""
    brought = func.sum(_own_value()).label("brought")
    ranked: Select[Any] = (
        select(referrals.c.referrer_id, brought)
        .select_from(
            referrals.outerjoin(
                customer_values, customer_values.c.customer_id == referrals.c.referred_id
            )
        )
        .group_by(referrals.c.referrer_id)
        .order_by(brought.desc(), referrals.c.referrer_id)
    )
    if limit:
        ranked = ranked.limit(limit)
    order = [(int(row[0]), _cents(row[1])) for row in connection.execute(ranked)]
    ids = [referrer for referrer, _ in order]
    names = _names(connection, ids)
    credits = _credits(connection, ids)
    referred = _referred(connection, ids)
    return [
        Referrer(
            *names[referrer],
            brought=total,
            credit=credits.get(referrer, Decimal("0.00")),
            referred=referred.get(referrer, []),
        )
        for referrer, total in order
    ]


def _names(connection: Connection, ids: list[int]) -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    for part in chunked(ids):
        query = select(customers.c.id, customers.c.external_id, customers.c.name).where(
            customers.c.id.in_(part)
        )
        found.update({row[0]: (row[1], row[2]) for row in connection.execute(query)})
    return found


def _credits(connection: Connection, ids: list[int]) -> dict[int, Decimal]:
    found: dict[int, Decimal] = {}
    for part in chunked(ids):
        query = select(customer_values.c.customer_id, customer_values.c.referral).where(
            customer_values.c.customer_id.in_(part)
        )
        found.update({row[0]: _cents(row[1]) for row in connection.execute(query)})
    return found


def _referred(connection: Connection, ids: list[int]) -> dict[int, list[Referred]]:
    found: dict[int, list[Referred]] = {}
    own = _own_value().label("worth")
    for part in chunked(ids):
        query = (
            select(
                referrals.c.referrer_id,
                customers.c.external_id,
                customers.c.name,
                referrals.c.referred_on,
                own,
            )
            .select_from(
                referrals.join(customers, customers.c.id == referrals.c.referred_id).outerjoin(
                    customer_values, customer_values.c.customer_id == referrals.c.referred_id
                )
            )
            .where(referrals.c.referrer_id.in_(part))
            .order_by(referrals.c.referrer_id, own.desc(), customers.c.id)
        )
        for row in connection.execute(query):
            found.setdefault(row[0], []).append(
                Referred(row[1], row[2], row[3].isoformat(), _cents(row[4]))
            )
    return found


def _cents(value: Any) -> Decimal:
    if value is None:
        return Decimal("0.00")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return number.quantize(CENT)
