"""Amounts as the business writes them: its locale's separators and its currency's signs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency, format_decimal, get_decimal_symbol, get_group_symbol
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from scheduler.importer.fields import FieldError
from scheduler.importer.money import amount_format
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CONFIG_TEMPLATE, Workspace, run_cli

LOCALES = ["en_US", "de_DE", "fr_FR", "de_CH", "en_IN", "sv_SE", "es_ES", "pt_BR"]
BABEL_WRITES = [locale for locale in LOCALES if locale != "de_CH"]
"""Locales Babel formats as people write (for de_CH it writes 1000000'000.00)."""


def grouped(amount: Decimal, locale: str) -> str:
    """`amount` grouped by threes with the locale's separators."""
    text = f"{amount:,.2f}"
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    return text.translate({ord(","): group, ord("."): decimal})


AMOUNTS = st.decimals(
    min_value=Decimal(0), max_value=Decimal("999999999999.99"), places=2, allow_nan=False
)


@given(AMOUNTS, st.sampled_from(LOCALES))
def test_an_amount_grouped_with_the_locales_separators_reads_back_exactly(
    amount: Decimal, locale: str
) -> None:
    assert amount_format(locale).amount("amount", grouped(amount, locale)) == amount
    assert (
        amount_format(locale).amount(
            "amount", grouped(amount, locale).replace(get_group_symbol(locale), "")
        )
        == amount
    )


@given(AMOUNTS, st.sampled_from(BABEL_WRITES))
def test_an_amount_formatted_by_the_locale_reads_back_exactly(amount: Decimal, locale: str) -> None:
    written = format_decimal(amount, locale=locale)  # the locale's own grouping (en_IN: 2s)
    assert amount_format(locale).amount("amount", written) == amount


@given(AMOUNTS, st.sampled_from(BABEL_WRITES), st.sampled_from(["EUR", "USD", "INR", "CHF"]))
def test_an_amount_with_its_currency_sign_reads_back_exactly(
    amount: Decimal, locale: str, currency: str
) -> None:
    written = format_currency(amount, currency, locale=locale)
    assert amount_format(locale, currency).amount("amount", written) == amount


@given(AMOUNTS.map(lambda amount: -amount), st.sampled_from(LOCALES))
def test_a_negative_margin_reads_back_exactly(amount: Decimal, locale: str) -> None:
    assert amount_format(locale).margin("margin", grouped(amount, locale)) == amount


@pytest.mark.parametrize(
    ("locale", "currency", "text", "value"),
    [
        ("en_US", "", "1,250.00", "1250.00"),
        ("en_US", "EUR", "€95.00", "95.00"),
        ("en_US", "EUR", "EUR 95.00", "95.00"),
        ("de_DE", "", "1.250,00", "1250.00"),
        ("de_DE", "EUR", "95,00 €", "95.00"),
        ("de_DE", "EUR", "95,00€", "95.00"),
        ("de_DE", "EUR", "-€5,00", "-5.00"),
        ("de_DE", "EUR", "€ -5,00", "-5.00"),
        ("fr_FR", "EUR", "1 250,00 €", "1250.00"),
        ("fr_FR", "EUR", "1\u00a0250,00\u00a0€", "1250.00"),
        ("de_CH", "CHF", "CHF 1'250.00", "1250.00"),
        ("en_IN", "INR", "₹1,25,000.00", "125000.00"),
        ("en_IN", "INR", "125,000.00", "125000.00"),
    ],
)
def test_written_amounts_are_read(locale: str, currency: str, text: str, value: str) -> None:
    assert amount_format(locale, currency).margin("amount", text) == Decimal(value)


@pytest.mark.parametrize(
    ("locale", "currency", "text", "reason"),
    [
        ("en_US", "", "1,25,0.00", "has misplaced group separators (write 1,250.00 or 1250.00)"),
        ("en_US", "", "12,50,000.00", "has misplaced group separators"),
        ("en_IN", "", "1,2,50,000.00", "has misplaced group separators"),
        ("en_US", "", "1.250,00", 'like 1.250,00, set [business] locale (e.g. "de_DE")'),
        ("de_DE", "", "12.50", 'like 1,250.00, set [business] locale (e.g. "en_US")'),
        ("en_US", "", "€95.00", 'has a currency sign ("€"): set [business] currency to its'),
        ("en_US", "EUR", "$95.00", 'in another currency ("$"), not EUR ([business] currency)'),
        ("de_DE", "EUR", "95,00 GBP", 'is in another currency ("GBP"), not EUR'),
        ("de_DE", "EUR", "95,00 xyz", 'has "xyz", which is no sign of EUR (write EUR or €'),
        ("en_US", "EUR", "€-€5.00", "is not an amount (like 1,250.00)"),
        ("en_US", "EUR", "--5.00", "is not an amount"),
        ("en_US", "EUR", "€5.001", "has more than two decimal places"),
        ("en_US", "", "1,000,000,000,000.00", "is too large"),
        ("en_US", "", "(5.00)", "is not an amount"),
    ],
)  # fmt: skip
def test_amounts_that_cannot_be_read_say_why(
    locale: str, currency: str, text: str, reason: str
) -> None:
    with pytest.raises(FieldError) as caught:
        amount_format(locale, currency).margin("amount", text)
    assert reason in str(caught.value)


def test_an_amount_may_not_be_negative_however_it_is_written() -> None:
    euros = amount_format("de_DE", "EUR")
    for text in ("-5", "-5,00 €", "€-5,00", "\u22125,00"):
        with pytest.raises(FieldError, match="is negative"):
            euros.amount("amount", text)


def test_a_minus_zero_is_zero_not_a_negative_amount() -> None:
    euros = amount_format("de_DE", "EUR")
    for text in ("-0", "-0,00", "-0,00 €", "€-0,00", "\u22120,00"):
        read = euros.amount("amount", text)
        assert (read, str(read)) == (Decimal(0), "0.00" if "," in text else "0")
    assert str(amount_format("en_US", "").margin("margin", "-0.00")) == "0.00"


def test_orders_are_read_with_the_configs_locale_and_currency(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    config = CONFIG_TEMPLATE.format(url=migrated_workspace.database_url)
    config = config.replace('timezone = "Europe/London"', 'timezone = "Europe/Berlin"')
    config += 'currency = "EUR"\nlocale = "de_DE"\n'
    migrated_workspace.path.write_text(config, encoding="utf-8")
    customers = tmp_path / "customers.csv"
    customers.write_text("id,name\nC-1,Ann\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "id,customer_id,placed_at,amount,margin\n"
        'A-1,C-1,2026-03-01T10:00Z,"1.250,00 €","-5,50"\n'
        "A-2,C-1,2026-03-01T11:00Z,€95,\n"
        "A-3,C-1,2026-03-01T12:00Z,$95,\n",
        encoding="utf-8",
    )
    path = migrated_workspace.path
    assert run_cli("--config", path, "import", "customers", customers).exit_code == 0
    result = run_cli("--config", path, "import", "orders", orders)
    assert result.exit_code == 1
    assert f'{orders}:4: amount: "$95" is in another currency ("$"), not EUR' in result.stderr
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(metadata.tables["orders"])).all()
    finally:
        engine.dispose()
    assert {row.external_id: (row.amount, row.margin) for row in rows} == {
        "A-1": (Decimal("1250.00"), Decimal("-5.50")),
        "A-2": (Decimal("95.00"), None),
    }
