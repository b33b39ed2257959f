"""Email addresses: one address, normalised the way email-validator does it, never a list."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.addresses import InvalidAddress, normalize_address

ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-"
plausible = st.from_regex(
    rf"[{ATEXT}.]{{1,70}}@([A-Za-z0-9-]{{1,20}}\.){{1,3}}[A-Za-z0-9-]{{1,8}}", fullmatch=True
)


def reference(address: str) -> str | None:
    try:
        return str(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError:
        return None


def ours(address: str) -> str | None:
    try:
        return normalize_address(address)
    except InvalidAddress:
        return None


@given(plausible)
@example("0@00--0.AA")  # a label reserved by IDNA (`--` third and fourth): CI found it
@example("ann@a--b.example.com")
def test_the_fast_path_agrees_with_email_validator(address: str) -> None:
    assert ours(address) == reference(address)


@given(st.text(max_size=40))
def test_any_text_gets_email_validators_answer(text: str) -> None:
    assert ours(text) == reference(text.strip())


@pytest.mark.parametrize(
    ("given_address", "expected"),
    [
        ("Ann.Lee+shop@Example.COM", "Ann.Lee+shop@example.com"),
        ("  ann@example.com ", "ann@example.com"),
        ("josé@example.com", "josé@example.com"),
    ],
)
def test_good_addresses_are_normalised(given_address: str, expected: str) -> None:
    assert normalize_address(given_address) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "a@example.com, b@example.com",
        "a@example.com;b@example.com",
        "Ann <ann@example.com>",
        "ann@example.com\r\nBcc: eve@example.com",
        "ann@localhost",
        "ann@shop.test",
        "ann..lee@example.com",
        "ann@",
        "",
    ],
)
def test_anything_but_one_address_is_refused(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize_address(bad)
