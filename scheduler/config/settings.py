"""The shape of appreciate's configuration: frozen, strictly typed pydantic models.

Every section forbids unknown keys and accepts only the TOML type it documents (a port written
as `"587"` is an error, not a guess). Relative paths stay as written here; `scheduler.config.file`
resolves them against the config file's folder. Later features add keys to their own section.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from functools import cache
from typing import ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.addresses import InvalidAddress, normalize_address
from scheduler.config.import_columns import column_name, mapping_target_problem
from scheduler.config.occasion_settings import Duration, OccasionsSettings
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_TIME_OF_DAY = re.compile(r"(\d{2}):(\d{2})")


def known_time_zone(name: str) -> str:
    """Return `name` if it is an IANA time zone this machine knows, else raise ValueError.

    Only real zone names count: `localtime` (this machine's own setting, a file, not a zone),
    `posixrules`, `Factory` and the `posix/` and `right/` copies of the database are not.
    """
    if name not in _time_zones():
        raise ValueError(f'unknown time zone "{name}" (expected an IANA name like "Europe/Paris")')
    return name


def time_zone_names() -> frozenset[str]:
    """Every IANA zone name this machine knows (see `known_time_zone`)."""
    return _time_zones()


_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_FOLDERS = ("posix/", "right/")


@cache
def _time_zones() -> frozenset[str]:
    """The zone names, listed once: reading the zone database takes tens of milliseconds."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(_NOT_ZONE_FOLDERS)
    )


def known_currency(code: str) -> str:
    """Return `code` if it is empty or an ISO 4217 currency code, else raise ValueError."""
    if not code:
        return code
    from babel.numbers import list_currencies  # noqa: PLC0415 - only configs that set one

    if code not in list_currencies():
        raise ValueError(
            f'unknown currency "{code}" (expected an ISO 4217 code such as "EUR" or "USD", '
            "or empty for amounts without a currency sign)"
        )
    return code


def known_locale(name: str) -> str:
    """Return `name` if it is a locale such as `en_US` or `de_DE`, else raise ValueError."""
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 - only when a config sets one

    try:
        Locale.parse(name)
    except (ValueError, TypeError, UnknownLocaleError):
        raise ValueError(
            f'unknown locale "{name}" (expected a language and country such as "en_US" or "de_DE")'
        ) from None
    return name


_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _is_dns_name(value: str, *, labels: int) -> bool:
    """Whether `value` is at least `labels` DNS labels joined by dots (letters, digits and
    hyphens, 1-63 characters, no hyphen at either end), 253 characters at most. The value is
    never quoted back in messages: a key pasted into the wrong place must not be echoed."""
    parts = value.split(".")
    return (
        len(value) <= 253
        and len(parts) >= labels
        and all(_DNS_LABEL.fullmatch(part) for part in parts)
    )


def check_dkim_selector(value: str) -> str:
    """`value` lower-cased if empty or a DKIM selector (one or more DNS labels, RFC 6376), else
    ValueError. Never quotes the value (see `_is_dns_name`)."""
    if value and not _is_dns_name(value, labels=1):
        raise ValueError(
            'expected a DKIM selector such as "mail2026": letters, digits and hyphens, '
            "dots between parts"
        )
    return value.lower()


def check_dkim_domain(value: str) -> str:
    """`value` lower-cased, without a final dot, if empty or a domain name of two labels or
    more in ASCII (an internationalised one as punycode, as DNS has it), else ValueError."""
    value = value.removesuffix(".")
    if value and not value.isascii():
        raise ValueError(
            "write an internationalised domain in its ASCII form (xn--...), as DNS has it"
        )
    if value and not _is_dns_name(value, labels=2):
        raise ValueError('expected a domain name such as "example.com"')
    return value.lower()


def _address(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddress as error:
        raise ValueError(f'"{value}" is not a valid email address: {error}') from None


class Section(BaseModel):
    """A config table: no unknown keys, no type coercion, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatabaseSettings(Section):
    """Where the customer store lives. Empty `url` means `appreciate.db` beside the config."""

    url: str = ""
    url_env: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSettings:
        if self.url and self.url_env:
            raise ValueError("set either url or url_env, not both")
        return self


class BusinessSettings(Section):
    """Who the notes come from."""

    name: str = Field(min_length=1)
    sender_name: str = Field(min_length=1)
    sender_email: str
    reply_to: str = ""
    timezone: str = "UTC"
    currency: str = ""
    """ISO 4217 code of the currency amounts are in; empty: amounts carry no currency sign."""
    locale: str = "en_US"
    """How amounts are written: the decimal and group separators of this locale."""
    review_url: str = ""
    unsubscribe_url: str = ""
    unsubscribe_email: str = ""

    _check_sender = field_validator("sender_email")(_address)
    _check_zone = field_validator("timezone")(known_time_zone)
    _check_currency = field_validator("currency")(known_currency)
    _check_locale = field_validator("locale")(known_locale)

    @field_validator("reply_to")
    @classmethod
    def _check_reply_to(cls, value: str) -> str:
        return _address(value) if value else value

    @field_validator("review_url")
    @classmethod
    def _check_review_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f'expected a web address starting with https://, got "{value}"')
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _check_unsubscribe_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError(f'expected a web address starting with https://, got "{value}"')
        if value and "{token}" not in value:
            raise ValueError('put "{token}" where the customer\'s unsubscribe token goes')
        return value

    @field_validator("unsubscribe_email")
    @classmethod
    def _check_unsubscribe_email(cls, value: str) -> str:
        return _address(value) if value else value


class SmtpSettings(Section):
    """The owner's mail server. The password is never written here: name an environment
    variable (`password_env`) or a file (`password_file`) that holds it."""

    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=0, ge=0, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password_env: str = ""
    password_file: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0)
    connections: int = Field(default=4, ge=1, le=64)
    max_per_minute: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_after: Duration = timedelta(minutes=5)
    lease: Duration = timedelta(minutes=10)
    ca_file: str = ""
    dkim_key_file: str = ""
    """A PEM file holding the RSA private key notes are signed with (DKIM); empty: no signing.
    The key lives only in that file: never in this one, never in a message or a log."""
    dkim_selector: str = ""
    dkim_domain: str = ""

    @model_validator(mode="after")
    def _one_password_source(self) -> SmtpSettings:
        if self.password_env and self.password_file:
            raise ValueError("set either password_env or password_file, not both")
        return self

    @field_validator("dkim_key_file")
    @classmethod
    def _check_key_file(cls, value: str) -> str:
        if "-----BEGIN" in value or "\n" in value:  # never echoed: it may be the key itself
            raise ValueError(
                "this holds a key, not a file name: a private key never goes in the config; "
                "put it in a file of its own and name that file here"
            )
        return value

    _check_selector = field_validator("dkim_selector")(check_dkim_selector)
    _check_domain = field_validator("dkim_domain")(check_dkim_domain)

    @model_validator(mode="after")
    def _dkim_all_or_nothing(self) -> SmtpSettings:
        keys = {
            "dkim_key_file": self.dkim_key_file,
            "dkim_selector": self.dkim_selector,
            "dkim_domain": self.dkim_domain,
        }
        missing = [key for key, value in keys.items() if not value]
        if 0 < len(missing) < len(keys):
            given = [key for key in keys if key not in missing]
            raise ValueError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: DKIM "
                "signing needs dkim_key_file, dkim_selector and dkim_domain together (or none)"
            )
        return self

    @property
    def signs(self) -> bool:
        """Whether notes are signed with DKIM (the three dkim_ keys are set)."""
        return bool(self.dkim_key_file)

    @property
    def effective_port(self) -> int:
        """The configured port, or the standard one for the security mode (587, 465, 25)."""
        if self.port:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]


LATER_KINDS = ("review_thanks",)
"""Kinds added after configs listed `precedence` in full: one missing from a configured list
goes right after the kind it follows in OCCASION_KINDS (review_thanks after referral_thanks),
wherever the owner put that one, so an upgrade does not make a working config invalid."""


def _with_later_kinds(value: tuple[str, ...]) -> tuple[str, ...]:
    placed = list(value)
    for kind in LATER_KINDS:
        if kind in placed:
            continue
        before = [k for k in OCCASION_KINDS[: OCCASION_KINDS.index(kind)] if k in placed]
        placed.insert(placed.index(before[-1]) + 1 if before else 0, kind)
    return tuple(placed)


class ScheduleSettings(Section):
    """When notes may go out, in each customer's local time."""

    send_window: str = "09:00-17:00"
    send_days: tuple[Weekday, ...] = WEEKDAYS
    min_days_between: int = Field(default=7, ge=0, le=365)
    precedence: tuple[OccasionKind, ...] = OCCASION_KINDS
    daily_budget: int = Field(default=0, ge=0)
    """At most this many notes per day (the business's day); 0: no limit."""
    detect_every: Duration = timedelta(minutes=5)
    """The daemon looks for new occasions this often."""
    deliver_every: Duration = timedelta(seconds=30)
    """The daemon sends what is due this often (and right after a detection adds notes)."""
    stop_within: Duration = timedelta(seconds=30)
    """On stop, notes being handed to the server get this long to finish."""

    @field_validator("detect_every", "deliver_every", "stop_within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("expected a duration longer than zero")
        return value

    @field_validator("precedence")
    @classmethod
    def _every_kind_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = _with_later_kinds(value)
        missing = [kind for kind in OCCASION_KINDS if kind not in value]
        repeated = sorted({kind for kind in value if value.count(kind) > 1})
        if missing or repeated:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"repeated {', '.join(repeated)}"] if repeated else []
            raise ValueError(f"list every occasion kind once ({'; '.join(problems)})")
        return value

    @field_validator("send_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_window(value)
        return value

    @field_validator("send_days", "precedence", mode="before")
    @classmethod
    def _list_as_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("send_days")
    @classmethod
    def _some_day(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one day")
        return value

    @property
    def window(self) -> tuple[time, time]:
        """The send window as (start, end) local times."""
        return parse_window(self.send_window)


END_OF_DAY = time.max
"""The end of a window written `24:00`: the next midnight (see `SendWindow.closes`)."""


def parse_window(value: str) -> tuple[time, time]:
    """Parse `"HH:MM-HH:MM"`; the start must come before the end on the same day. The end may
    be `24:00` (up to midnight: "00:00-24:00" is the whole day), given as END_OF_DAY."""
    match = _WINDOW.fullmatch(value.strip())
    if not match:
        raise ValueError(f'expected "HH:MM-HH:MM", got "{value}"')
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    try:
        start = time(h1, m1)
        end = END_OF_DAY if (h2, m2) == (24, 0) else time(h2, m2)
    except ValueError:
        raise ValueError(f'"{value}" is not a pair of times of day') from None
    if start >= end:
        raise ValueError(f'the window "{value}" must start before it ends')
    return start, end


class LtvSettings(Section):
    """How customer lifetime value is estimated (see `scheduler.ltv`)."""

    model: Literal["auto", "bgnbd", "simple"] = "auto"
    margin: float = Field(default=1.0, gt=0, le=1)
    horizon_months: int = Field(default=36, ge=1, le=600)
    annual_discount_rate: float = Field(default=0.10, ge=0, le=1)
    expected_lifetime_years: float = Field(default=5.0, gt=0, le=100)
    referral_credit: float = Field(default=0.5, ge=0, le=1)
    vip_share: float = Field(default=0.10, ge=0, le=1)
    prior_orders: float = Field(default=3.0, gt=0, le=1000)
    """The simple model: the business's average order counts as this many of a customer's own."""
    prior_years: float = Field(default=1.0, gt=0, le=100)
    """The simple model: the business's purchases a year count as this many years of their own."""
    acquisition_share: float = Field(default=1 / 3, ge=0, le=1)
    """Share of a new customer's average lifetime value worth spending to win one."""
    goodwill_share: float = Field(default=0.10, ge=0, le=1)
    """Share of a customer's lifetime value worth conceding to keep them after a complaint."""
    recompute_at: str = "03:00"

    @field_validator("recompute_at")
    @classmethod
    def _check_time_of_day(cls, value: str) -> str:
        parse_time_of_day(value)
        return value

    @property
    def recompute_time(self) -> time:
        """`recompute_at` as a local time of day (business time zone)."""
        return parse_time_of_day(self.recompute_at)


def parse_time_of_day(value: str) -> time:
    """Parse `"HH:MM"` (24-hour clock)."""
    match = _TIME_OF_DAY.fullmatch(value.strip())
    if not match:
        raise ValueError(f'expected a time of day as "HH:MM", got "{value}"')
    try:
        return time(int(match[1]), int(match[2]))
    except ValueError:
        raise ValueError(f'"{value}" is not a time of day') from None


class TemplatesSettings(Section):
    """Where the owner's note templates live (relative to the config file), and how long one
    note may take to write."""

    directory: str = Field(default="templates", min_length=1)
    render_timeout: Duration = timedelta(seconds=2)
    """Writing one note takes longer (a runaway loop): that note fails, the others go on."""

    @field_validator("render_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("expected a duration longer than zero")
        return value


class ImportColumns(Section):
    """How one kind's files name their columns: `columns` maps a column of the file (matched
    as headers are: case-insensitive, punctuation as `_`) to the column appreciate reads."""

    kind: ClassVar[str]
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [
            f'"{source}" = {problem}'
            for source, target in value.items()
            if (problem := mapping_target_problem(cls.kind, target))
        ]
        if any(not column_name(source) for source in value):
            problems.append("a mapped column has no usable name")
        targets: dict[str, str] = {}
        for source, target in value.items():
            name = column_name(target)
            if name in targets:
                problems.append(f'"{targets[name]}" and "{source}" are both mapped to "{target}"')
            targets.setdefault(name, source)
        if problems:
            raise ValueError("; ".join(problems))
        return value


class CustomerColumns(ImportColumns):
    kind = "customers"


class OrderColumns(ImportColumns):
    kind = "orders"


class ReferralColumns(ImportColumns):
    kind = "referrals"


class MeetingColumns(ImportColumns):
    kind = "meetings"


class ReviewColumns(ImportColumns):
    kind = "reviews"


class ImportSettings(Section):
    """Column mappings for `appreciate import`, per kind (`[import.customers]`, ...)."""

    customers: CustomerColumns = CustomerColumns()
    orders: OrderColumns = OrderColumns()
    referrals: ReferralColumns = ReferralColumns()
    meetings: MeetingColumns = MeetingColumns()
    reviews: ReviewColumns = ReviewColumns()

    def columns(self, kind: str) -> dict[str, str]:
        """The mapping configured for `kind`."""
        found: ImportColumns = getattr(self, kind)
        return found.columns


class WebSettings(Section):
    """The web service: the unsubscribe page customers reach, and (later) the owner's console.

    `public_url` is where customers reach it (behind a reverse proxy, say); with it set, notes
    link `{public_url}/u/{token}` unless `[business] unsubscribe_url` names another page.
    """

    enabled: bool = False
    """Serve it inside `appreciate run` (one service); `appreciate web` serves it on its own."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str = ""
    password_hash_env: str = ""
    """An environment variable holding the owner's password hash (`appreciate web
    hash-password`); or `password_hash_file`, a file holding it. Neither: nobody can log in."""
    password_hash_file: str = ""
    opt_out_spool: str = ""
    """The folder where opt-outs wait while the store cannot take them (relative to the
    config's folder). Empty: beside a SQLite store (`appreciate.db.opt-outs`), else in
    systemd's StateDirectory, else beside the config."""

    @model_validator(mode="after")
    def _one_hash_source(self) -> WebSettings:
        if self.password_hash_env and self.password_hash_file:
            raise ValueError("set either password_hash_env or password_hash_file, not both")
        return self

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError(f'expected a host name or address, got "{value}"')
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(
                f'expected the https:// address customers reach, e.g. "https://thanks.example.com",'
                f' got "{value}"'
            )
        return value.rstrip("/")


class InboundSettings(Section):
    """What comes back: bounces, complaints and replies.

    `bounce_address` is the return path of every note, with `{tag}` where each note's own
    tag goes (VERP): `bounces+{tag}@example.com`. The mail server must deliver every
    `bounces+...` address to one mailbox (most do: "subaddressing", "plus addressing"). Empty:
    notes go out with the business's address as return path, and bounces are matched by the
    Message-ID they quote. `keep_raw_for`: how long each inbound message is kept whole.
    """

    bounce_address: str = ""
    keep_raw_for: Duration = timedelta(days=30)
    imap_host: str = ""
    """The mailbox the daemon reads what came back from; empty: none (use the pipe)."""
    imap_port: int = Field(default=0, ge=0, le=65535)
    """0 picks the standard port for the security mode: 993 tls, 143 starttls or none."""
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_user: str = ""
    imap_password_env: str = ""
    imap_password_file: str = ""
    imap_ca_file: str = ""
    """A file of CA certificates to trust for this server (relative to the config)."""
    folder: str = Field(default="INBOX", min_length=1)
    processed_folder: str = Field(default="processed", min_length=1)
    """Where each message goes once recorded (made when missing); mail is never deleted."""
    poll_every: Duration = timedelta(minutes=5)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _imap_complete(self) -> InboundSettings:
        if self.imap_host and not self.imap_user:
            raise ValueError("imap_host is set, so imap_user must be too")
        if self.imap_password_env and self.imap_password_file:
            raise ValueError("set either imap_password_env or imap_password_file, not both")
        if self.folder == self.processed_folder:
            raise ValueError("processed_folder must differ from folder")
        return self

    @property
    def port(self) -> int:
        """The IMAP port: as set, else the security mode's standard one."""
        return self.imap_port or (993 if self.imap_security == "tls" else 143)

    @field_validator("bounce_address")
    @classmethod
    def _check_bounce_address(cls, value: str) -> str:
        if not value:
            return value
        local, _, domain = value.rpartition("@")
        if local.count("{tag}") != 1 or "{tag}" in domain or value.count("{") != 1:
            raise ValueError(
                f"expected an address with {{tag}} once in its local part, such as "
                f'"bounces+{{tag}}@example.com", got "{value}"'
            )
        try:
            normalize_address(value.replace("{tag}", "t" * 26))
        except InvalidAddress as error:
            raise ValueError(f'"{value}" is not a valid address: {error}') from None
        return value


TIER_NAMES = ("regular", "new", "vip")
"""The tier labels of `scheduler.tiers.Tier` (a leaf test keeps the two the same)."""


class ChannelsSettings(Section):
    """Which notes become a printed card or a call instead of an email.

    `cards` and `call` each list tiers (regular, new, vip) and occasion kinds: a note goes to
    that channel when its customer's tier OR its kind is listed; a note listed in both is a
    call. `card_and_email`: a card note's email goes too (a second note keyed `card:<key>`
    holds the card). Cards are due `card_lead_days` before a dated occasion's day.
    """

    cards: tuple[str, ...] = ()
    call: tuple[str, ...] = ()
    card_and_email: bool = False
    card_lead_days: int = Field(default=5, ge=0, le=60)

    @field_validator("cards", "call", mode="before")
    @classmethod
    def _list_as_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("cards", "call")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = (*TIER_NAMES, *OCCASION_KINDS)
        for name in value:
            if name not in known:
                raise ValueError(
                    f'"{name}" is neither a tier nor an occasion kind ({", ".join(known)})'
                )
        return value


class Settings(Section):
    """The whole config file."""

    database: DatabaseSettings = DatabaseSettings()
    business: BusinessSettings
    smtp: SmtpSettings = SmtpSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    occasions: OccasionsSettings = OccasionsSettings()
    ltv: LtvSettings = LtvSettings()
    templates: TemplatesSettings = TemplatesSettings()
    imports: ImportSettings = Field(default=ImportSettings(), alias="import")
    """`[import]` in the file (`import` is a Python keyword)."""
    web: WebSettings = WebSettings()
    inbound: InboundSettings = InboundSettings()
    channels: ChannelsSettings = ChannelsSettings()

    @property
    def unsubscribe_url(self) -> str:
        """The unsubscribe link with `{token}` in it: `[business] unsubscribe_url`, else the
        page appreciate serves at `[web] public_url`, else empty (no link)."""
        if self.business.unsubscribe_url:
            return self.business.unsubscribe_url
        if self.web.public_url:
            return f"{self.web.public_url}/u/{{token}}"
        return ""
