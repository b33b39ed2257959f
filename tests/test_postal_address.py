"""Labels follow the customer's country's post: its order of lines (Latin order abroad and for
addresses in Latin script), no country line within the business's own country, no city dropped;
an address the data does not know is kept as written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.notes.postal_address import PostalAddress, country_code, home_country, label_lines

ANN = PostalAddress("Ann Lee", "1 High Street", "Flat 2", "Bath", "BA1 1AA", "Somerset", "UK")


@pytest.mark.parametrize(
    ("address", "home", "expected"),
    [
        (ANN, "GB", ["Ann Lee", "1 High Street", "Flat 2", "BATH", "BA1 1AA"]),
        (ANN, "US", ["Ann Lee", "1 High Street", "Flat 2", "BATH", "BA1 1AA", "UNITED KINGDOM"]),
        (
            PostalAddress("Bo", "1600 Amphitheatre Pkwy", None, "Mountain View", "94043", "CA", ""),
            "US",
            ["Bo", "1600 Amphitheatre Pkwy", "MOUNTAIN VIEW, CA 94043"],
        ),
        (
            PostalAddress("Cleo", "Hauptstr. 5", None, "Berlin", "10115", None, "Germany"),
            "FR",
            ["Cleo", "Hauptstr. 5", "10115 BERLIN", "GERMANY"],
        ),
        (
            PostalAddress("Dan", "5 rue de Rivoli", None, "Paris", "75001", None, "fr"),
            "FR",
            ["Dan", "5 rue de Rivoli", "75001 PARIS"],
        ),
        (
            PostalAddress("Eve", "1 Main St", None, "Springfield", "12345", "North", "Atlantis"),
            "US",
            ["Eve", "1 Main St", "12345 Springfield", "North", "Atlantis"],
        ),
        (
            PostalAddress("山田 花子", "銀座1-2-3", None, "中央区", "104-0061", "東京都", None),
            "JP",
            ["〒104-0061", "東京都", "中央区", "銀座1-2-3", "山田 花子"],
        ),
        (
            PostalAddress("Ann", "1-2-3 Ginza", None, "Chuo-ku", "104-0061", "Tokyo", "Japan"),
            "JP",
            ["Ann", "1-2-3 Ginza", "Chuo-ku, TOKYO", "104-0061"],
        ),
        (
            PostalAddress("Ann", "1-2-3 Ginza", None, "Chuo-ku", "104-0061", None, "JP"),
            "GB",
            ["Ann", "1-2-3 Ginza", "Chuo-ku", "104-0061", "JAPAN"],
        ),
        (
            PostalAddress("Ann", "1 Orchard Rd", None, "Singapore", "238801", None, "SG"),
            "GB",
            ["Ann", "1 Orchard Rd", "SINGAPORE 238801", "REP. OF SINGAPORE"],
        ),
        (PostalAddress("Fay", "", None, "Bath", "BA1 1AA", None, "UK"), "GB", []),
        (PostalAddress("Gus", "1 Lane", None, None, None, None, "UK"), "GB", []),
    ],
)
def test_a_label_follows_the_customers_country(
    address: PostalAddress, home: str, expected: list[str]
) -> None:
    assert label_lines(address, home) == expected


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("GB", "GB"),
        ("gb", "GB"),
        ("UK", "GB"),
        ("United  Kingdom", "GB"),
        ("usa", "US"),
        ("United States", "US"),
        ("Deutschland", None),
        ("EU", None),
        ("Atlantis", None),
    ],
)
def test_a_country_is_read_from_its_code_its_english_name_or_a_common_short_form(
    written: str, code: str | None
) -> None:
    assert country_code(written) == code


def test_the_business_country_is_its_locales() -> None:
    assert (home_country("en_GB"), home_country("de_DE"), home_country("de")) == ("GB", "DE", None)


text = st.none() | st.text(max_size=40)


@given(
    text, text, text, text, text, text, st.sampled_from([None, "GB", "US", "DE", "JP", "CN", "SG"])
)
def test_any_address_gives_lines_or_none_and_never_fails(
    line1: str | None,
    line2: str | None,
    city: str | None,
    postal_code: str | None,
    region: str | None,
    country: str | None,
    home: str | None,
) -> None:
    address = PostalAddress("Ann", line1, line2, city, postal_code, region, country)
    lines = label_lines(address, home)
    if not address.postable:
        assert lines == []
    else:
        # The name opens the label, or closes it at home in Japan's or China's own order.
        own_order = home in ("JP", "CN") and not country and lines[0] != "Ann"
        assert lines[-1 if own_order else 0] == "Ann"
        assert all(line.strip() for line in lines)
