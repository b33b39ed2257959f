"""Reading an amount of money as the business writes it: its locale and its currency.

`[business] locale` (default `en_US`) decides the decimal separator and how digits are grouped
(`1,250.00` in en_US, `1.250,00` in de_DE, `1 250,00` in fr_FR, `1,25,000.00` in en_IN);
`[business] currency` (an ISO 4217 code; default none) which signs may stand before or after
the number: its code (`EUR 95.00`) or its symbol (`€95.00`, `95,00 €`). Rules:

- A plain number (`1250.00`; `1250,00` where the decimal separator is a comma) is read at
  once: the common case, kept as fast as it was.
- Groups must be well formed (`1,25,0.00` is refused): of the locale's sizes, or all of
  three digits where the locale groups otherwise (en_IN takes `125,000.00` too); a number
  only another locale writes
  (`1.250,00` in en_US, `12.50` in de_DE) is refused with a reason naming a locale to set.
  A space group separator may be typed as a space, a no-break space or a narrow one, and an
  apostrophe as `'` or U+2019.
- A currency sign when no currency is configured, or another currency's sign, is refused with
  a reason that says how to fix it.
- Only the digits 0-9 (Python's `Decimal` would take Arabic-Indic or full-width ones).
- A minus sign (`-` or U+2212) may stand before or after a leading currency sign (`-€5.00`,
  `€-5.00`); negative amounts only where allowed (margins), but a minus zero (`-0.00`) is zero
  everywhere; at most two decimals; at most 12 digits before them (what fits NUMERIC(14, 2)).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from scheduler.importer.fields import FieldError, other_digits, quoted

DEFAULT_LOCALE = "en_US"
_SPACES = " \u00a0\u202f"
_APOSTROPHES = "'\u2019"
_MINUS = "\\-\u2212"
"""The minus signs, as a regular expression's character class holds them."""
MAX_DIGITS = 12


@dataclass(frozen=True)
class AmountFormat:
    """How amounts are written: built by `amount_format` from the locale and currency."""

    locale: str
    currency: str
    decimal: str
    signs: frozenset[str]
    """The currency's signs accepted in a cell (upper case): its code and symbols."""
    other_signs: frozenset[str]
    """Other currencies' codes and the locale's symbols for them (upper case)."""
    example: str
    """1250 as the locale writes it, grouped: `1,250.00`."""
    plain_example: str
    """The same without groups: `1250.00`."""
    plain: re.Pattern[str]
    shape: re.Pattern[str]
    grouped: re.Pattern[str]
    elsewhere: re.Pattern[str]
    """A number written with the other common pair of separators (`1.250,00` for en_US)."""

    def amount(self, column: str, text: str) -> Decimal:
        """An amount that may not be negative."""
        if self.plain.fullmatch(text) and text[0] != "-":  # the fast path: a plain number
            return (
                Decimal(text) if self.decimal == "." else Decimal(text.replace(self.decimal, "."))
            )
        return self._written(column, text, False)

    def margin(self, column: str, text: str) -> Decimal:
        """Money that may be negative (a sale at a loss); a minus zero is zero."""
        if self.plain.fullmatch(text):
            value = (
                Decimal(text) if self.decimal == "." else Decimal(text.replace(self.decimal, "."))
            )
            return abs(value) if value.is_zero() else value
        return self._written(column, text, True)

    def _written(self, column: str, text: str, allow_negative: bool) -> Decimal:
        """The slow path: signs, groups, and a reason for everything refused."""
        problem = other_digits(column, text)
        if problem:
            raise problem
        match = self.shape.fullmatch(text)
        if not match or (match["before"] and match["after"]) or (match["m1"] and match["m2"]):
            raise FieldError(column, f"{quoted(text)} is not an amount (like {self.example})")
        sign = match["before"] or match["after"]
        if sign:
            self._check_sign(column, text, sign)
        number = self._number(column, text, match["number"])
        if (match["m1"] or match["m2"]) and number.strip("0.") == "":
            pass  # "-0.00" (a rounded refund, a spreadsheet's minus zero) is zero, not negative
        elif match["m1"] or match["m2"]:
            if not allow_negative:
                raise FieldError(column, f"{quoted(text)} is negative")
            number = "-" + number
        whole, _, fraction = number.lstrip("-").partition(".")
        if len(fraction) > 2:
            raise FieldError(column, f"{quoted(text)} has more than two decimal places")
        if len(whole.lstrip("0")) > MAX_DIGITS:
            raise FieldError(column, f"{quoted(text)} is too large")
        return Decimal(number)

    def _number(self, column: str, text: str, number: str) -> str:
        """`number` (digits and separators) as a plain decimal with a point."""
        whole, point, fraction = number.partition(self.decimal)
        if (not point or fraction.isdigit()) and (whole.isdigit() or self.grouped.fullmatch(whole)):
            digits = "".join(character for character in whole if character.isdigit())
            return f"{digits}.{fraction}" if point else digits
        if self.elsewhere.fullmatch(number):
            other, written = ("de_DE", "1.250,00") if self.decimal == "." else ("en_US", "1,250.00")
            raise FieldError(
                column,
                f"{quoted(text)} is not how {self.locale} writes amounts ({self.example}): for "
                f'amounts written like {written}, set [business] locale (e.g. "{other}")',
            )
        if whole.isdigit():
            raise FieldError(column, f"{quoted(text)} is not an amount (like {self.example})")
        raise FieldError(
            column,
            f"{quoted(text)} has misplaced group separators (write {self.example} or "
            f"{self.plain_example})",
        )

    def _check_sign(self, column: str, text: str, sign: str) -> None:
        if not any(unicodedata.category(c) in ("Sc", "Lu", "Ll", "Lo") for c in sign):
            raise FieldError(column, f"{quoted(text)} is not an amount (like {self.example})")
        key = sign.upper()
        if not self.currency:
            raise FieldError(
                column,
                f'{quoted(text)} has a currency sign ("{sign}"): set [business] currency to its '
                'ISO 4217 code (e.g. "EUR") to read amounts with one, or write plain numbers',
            )
        if key in self.signs:
            return
        accepted = " or ".join(sorted(self.signs))
        if key in self.other_signs:
            raise FieldError(
                column,
                f'{quoted(text)} is in another currency ("{sign}"), not {self.currency} '
                f"([business] currency): convert it, or set [business] currency to its code",
            )
        raise FieldError(
            column,
            f'{quoted(text)} has "{sign}", which is no sign of {self.currency} (write '
            f"{accepted}, or none)",
        )


@cache
def amount_format(locale: str = DEFAULT_LOCALE, currency: str = "") -> AmountFormat:
    """The amount format of a locale such as `de_DE` and an ISO 4217 currency (or "")."""
    from babel import Locale  # noqa: PLC0415 - only imports read amounts
    from babel.numbers import (  # noqa: PLC0415
        get_currency_symbol,
        get_decimal_symbol,
        get_group_symbol,
        list_currencies,
    )

    place = Locale.parse(locale)
    decimal = get_decimal_symbol(place)
    group = get_group_symbol(place)
    primary, secondary = place.decimal_formats[None].grouping
    groups = _alike(group)
    signs: frozenset[str] = frozenset()
    if currency:
        signs = frozenset(
            symbol.upper()
            for symbol in (
                currency,
                get_currency_symbol(currency, place),
                get_currency_symbol(currency, place.language),
                get_currency_symbol(currency, "en"),
            )
        )
    others = {code.upper() for code in list_currencies()}
    others |= {symbol.upper() for symbol in place.currency_symbols.values()}
    d, g = re.escape(decimal), f"[{re.escape(groups)}]"
    other_decimal = "," if decimal == "." else "."
    od, og = re.escape(other_decimal), re.escape(decimal)
    spaces = f"[{_SPACES}]*"
    minus = f"[{_MINUS}]"
    sign = rf"[^\s0-9{_MINUS}]+"
    return AmountFormat(
        locale=locale,
        currency=currency,
        decimal=decimal,
        signs=signs,
        other_signs=frozenset(others - signs),
        example=f"1{group}250{decimal}00",
        plain_example=f"1250{decimal}00",
        plain=re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}(?:{d}[0-9]{{1,2}})?"),
        shape=re.compile(
            rf"(?P<m1>{minus})?{spaces}(?P<before>{sign})?{spaces}(?P<m2>{minus})?"
            rf"(?P<number>[0-9](?:[0-9.,{_SPACES}{_APOSTROPHES}]*[0-9])?)"
            rf"{spaces}(?P<after>{sign})?"
        ),
        grouped=re.compile(
            "|".join(
                rf"[0-9]{{1,{size}}}(?:{g}[0-9]{{{size}}})*{g}[0-9]{{{primary}}}"
                for size in sorted({primary, secondary})
            )
        ),
        elsewhere=re.compile(rf"(?:[0-9]+|[0-9]{{1,3}}(?:{og}[0-9]{{3}})+)(?:{od}[0-9]{{1,2}})?"),
    )


def _alike(group: str) -> str:
    """The characters read as the locale's group separator: any space for a space, either
    apostrophe for an apostrophe."""
    if group in _SPACES:
        return _SPACES
    if group in _APOSTROPHES:
        return _APOSTROPHES
    return group
