"""Validating email addresses: exactly one address, normalised, never a list or a display name.

`normalize_address` is the one rule used by the config and the importer. Most real addresses are
plain ASCII `local@domain.tld`; a conservative pattern accepts those directly (about 30x faster,
which matters for a million-row import) and everything else goes through `email-validator`.
The fast path only accepts what `email-validator` accepts too, with the same normalisation
(domain lower-cased); a property test holds it to that.
"""

from __future__ import annotations

import re

from email_validator import (
    SPECIAL_USE_DOMAIN_NAMES,
    EmailNotValidError,
    validate_email,
)

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{2,63}})"
)
_SPECIAL_SUFFIXES = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


class InvalidAddress(ValueError):
    """An address that is not exactly one valid email address; the message says why."""


def normalize_address(text: str) -> str:
    """Return `text` as one normalised email address, or raise `InvalidAddress`.

    Rules: surrounding white space is ignored; a list (`a@x, b@y`), a display name
    (`Ann <a@x>`), a missing dot in the domain, special-use domains (`.test`, `.local`,
    `localhost`) and over-long addresses are refused. The domain is lower-cased; the local part
    is kept as written. Internationalised addresses are accepted (the sender decides later
    whether a server can take them). No DNS lookups: validation never touches the network.
    """
    candidate = text.strip()
    match = _PLAIN_ADDRESS.fullmatch(candidate)
    if match and _plain_is_acceptable(match["local"], match["domain"], candidate):
        return f"{match['local']}@{match['domain'].lower()}"
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None
    return str(checked.normalized)


def _plain_is_acceptable(local: str, domain: str, whole: str) -> bool:
    """Whether the fast path may answer: not a special-use domain, lengths within bounds, and
    no `--` in the domain (a label with `--` as its third and fourth characters, `ab--c`, is
    reserved by IDNA and refused by `email-validator`; `xn--` labels are punycode)."""
    lowered = domain.lower()
    if lowered in SPECIAL_USE_DOMAIN_NAMES or lowered.endswith(_SPECIAL_SUFFIXES):
        return False
    if "--" in domain:
        return False
    return len(local) <= _MAX_LOCAL and len(whole) <= _MAX_ADDRESS
