"""Config files: strict validation with messages naming file, line and key; discovery order."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.config.file import Config, find_config, load_config, normalize_database_url
from scheduler.config.occasion_settings import format_duration, parse_duration
from scheduler.errors import ConfigError, ConfigNotFound

MINIMAL = """\
[business]
name = "Ada's Bakery"
sender_name = "Ada"
sender_email = "ada@example.com"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value).splitlines()


def test_a_minimal_config_gets_sensible_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    settings = config.settings
    assert settings.smtp.security == "starttls"
    assert settings.smtp.effective_port == 587
    assert settings.business.timezone == "UTC"
    assert settings.schedule.send_days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert config.database_url(environ={}) == f"sqlite:///{tmp_path / 'appreciate.db'}"
    assert config.templates_dir == tmp_path / "templates"


def test_a_wrong_type_names_file_line_key_and_value(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '\n[smtp]\nhost = "mail.example.com"\nport = "abc"\n')
    assert lines == [f'{tmp_path / "config.toml"}:8: smtp.port: expected an integer, got "abc"']


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL + '\n[smtp]\nport = 70000\nsecurity = "ssl"\n\n[ltv]\nmodel = 3\n'
    lines = problems(tmp_path, text)
    assert len(lines) == 3
    assert any("smtp.port" in line and "65535" in line for line in lines)
    assert any(
        'smtp.security: expected one of "starttls", "tls" or "none", got "ssl"' in line
        for line in lines
    )
    assert any("ltv.model" in line and "got 3" in line for line in lines)


def test_an_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + "\n[smtp]\nprot = 25\n")
    assert lines == [f'{tmp_path / "config.toml"}:7: smtp.prot: unknown key (did you mean "port"?)']


def test_an_unknown_section_is_an_error(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + "\n[occasions.birthdy]\nenabled = true\n")
    assert lines == [
        f'{tmp_path / "config.toml"}:6: occasions.birthdy: unknown key (did you mean "birthday"?)'
    ]


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    lines = problems(tmp_path, '[business]\nname = "Ada"\nsender_name = "Ada"\n')
    assert lines == [f"{tmp_path / 'config.toml'}:1: business.sender_email: required but missing"]


def test_a_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + "\n[smtp]\nhost = mail.example.com\n")
    assert len(lines) == 1
    assert lines[0].startswith(f"{tmp_path / 'config.toml'}:7: not valid TOML")


def test_an_inline_password_is_refused_with_the_safe_alternative(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '\n[smtp]\nusername = "ada"\npassword = "hunter2"\n')
    assert len(lines) == 1
    assert "smtp.password" in lines[0]
    assert "password_env" in lines[0]
    assert "hunter2" not in lines[0]


def test_an_inline_imap_password_is_refused_and_the_file_is_read(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '\n[inbound]\nimap_password = "hunter2"\n')
    assert len(lines) == 1
    assert "inbound.imap_password" in lines[0]
    assert "hunter2" not in lines[0]
    (tmp_path / "imap-secret").write_text("pw-from-file\n", encoding="utf-8")
    config = load_config(
        write(tmp_path, MINIMAL + '[inbound]\nimap_password_file = "imap-secret"\n', "i.toml")
    )
    assert config.imap_password({}) == "pw-from-file"
    missing = load_config(write(tmp_path, MINIMAL + '[inbound]\nimap_password_env = "X"\n'))
    with pytest.raises(ConfigError, match=r"inbound\.imap_password_env"):
        missing.imap_password({})


def test_a_database_url_with_a_password_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '\n[database]\nurl = "postgresql://ada:s3cret@db/x"\n')
    assert len(lines) == 1
    assert "database.url" in lines[0]
    assert "url_env" in lines[0]
    assert "s3cret" not in lines[0]


def test_the_password_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from_env = load_config(write(tmp_path, MINIMAL + '[smtp]\npassword_env = "SMTP_PW"\n'))
    assert from_env.smtp_password({"SMTP_PW": "pw-from-env"}) == "pw-from-env"
    with pytest.raises(ConfigError, match="SMTP_PW is not set"):
        from_env.smtp_password({})
    (tmp_path / "secret").write_text("pw-from-file\n", encoding="utf-8")
    from_file = load_config(
        write(tmp_path, MINIMAL + '[smtp]\npassword_file = "secret"\n', "file.toml")
    )
    assert from_file.smtp_password({}) == "pw-from-file"


def test_a_huge_empty_or_several_line_secret_is_refused_naming_key_and_source(
    tmp_path: Path,
) -> None:
    """A huge secret file was read whole (`password_file = "/dev/zero"`: for ever, a
    MemoryError and a traceback; now refused as a device, see the next test); an
    empty password, or one of several lines, started the service, and the server's refusal
    of the login paused every send."""
    huge = tmp_path / "huge"
    with huge.open("wb") as file:
        file.truncate(100 * 1024 * 1024)  # sparse: no disk used
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "two-lines").write_text("hunter2\nhunter3\n", encoding="utf-8")
    for name, message in (
        ("huge", "is far too large to hold a password"),
        ("empty", "is empty"),
        ("two-lines", "holds more than one line"),
    ):
        config = load_config(
            write(tmp_path, MINIMAL + f'[smtp]\npassword_file = "{name}"\n', "f.toml")
        )
        with pytest.raises(ConfigError, match=rf"f\.toml:6: smtp\.password_file: .*{message}"):
            config.smtp_password({})
        imap = load_config(
            write(tmp_path, MINIMAL + f'[inbound]\nimap_password_file = "{name}"\n', "i.toml")
        )
        with pytest.raises(ConfigError, match=rf"inbound\.imap_password_file: .*{message}"):
            imap.imap_password({})
    web = load_config(write(tmp_path, MINIMAL + '[web]\npassword_hash_file = "huge"\n', "w.toml"))
    with pytest.raises(ConfigError, match=r"web\.password_hash_file: .*far too large"):
        web.web_password_hash({})
    from_env = load_config(write(tmp_path, MINIMAL + '[smtp]\npassword_env = "SMTP_PW"\n'))
    assert from_env.smtp_password({"SMTP_PW": "hunter2\r\n"}) == "hunter2"
    for value, message in (("", "is empty"), ("\n", "is empty"), ("hunter2\nx", "holds more")):
        with pytest.raises(ConfigError, match=rf"password_env: .*SMTP_PW {message}") as caught:
            from_env.smtp_password({"SMTP_PW": value})
        assert "hunter" not in str(caught.value)


def test_a_secret_that_is_not_a_regular_file_is_refused_without_being_read(
    tmp_path: Path,
) -> None:
    """A folder, a socket or a device named as a secret file was opened (a device read for
    its first 64 KiB) and refused for what it held, or not at all; a named pipe with no writer
    kept the service starting for ever (`tests/test_cli.py` and `tests/test_daemon.py` check
    pipes, in processes of their own). Now each is refused for what it is, naming the key and
    the path; a link to a regular file, as systemd's credentials are, still works."""
    (tmp_path / "folder").mkdir()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "sock"))
    (tmp_path / "real-secret").write_text("pw-behind-a-link\n", encoding="utf-8")
    (tmp_path / "linked").symlink_to(tmp_path / "real-secret")
    (tmp_path / "to-folder").symlink_to(tmp_path / "folder")
    try:
        for name, kind in (
            ("folder", "a folder"),
            ("to-folder", "a folder"),
            ("sock", "a socket"),
            ("/dev/zero", "a device"),
        ):
            path = tmp_path / name
            for section, key, read in (
                ("smtp", "password_file", Config.smtp_password),
                ("inbound", "imap_password_file", Config.imap_password),
                ("web", "password_hash_file", Config.web_password_hash),
            ):
                config = load_config(
                    write(tmp_path, MINIMAL + f'[{section}]\n{key} = "{name}"\n', "f.toml")
                )
                with pytest.raises(ConfigError) as caught:
                    read(config, {})
                assert str(caught.value) == (
                    f"{tmp_path / 'f.toml'}:6: {section}.{key}: "
                    f"{path} is not a regular file (it is {kind})"
                )
        linked = load_config(write(tmp_path, MINIMAL + '[smtp]\npassword_file = "linked"\n'))
        assert linked.smtp_password({}) == "pw-behind-a-link"
    finally:
        listening.close()


def test_both_password_sources_at_once_is_an_error(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '[smtp]\npassword_env = "A"\npassword_file = "b"\n')
    assert lines == [
        f"{tmp_path / 'config.toml'}:5: smtp: set either password_env or password_file, not both"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[business]\ntimezone = "Europe/Londn"', 'unknown time zone "Europe/Londn"'),
        ('[business]\nsender_email = "ada@example.com, bob@example.com"', "not a valid email"),
        ('[schedule]\nsend_window = "17:00-09:00"', "must start before it ends"),
        ('[schedule]\nsend_window = "9-5"', 'expected "HH:MM-HH:MM"'),
        ('[schedule]\nsend_window = "09:00-24:30"', "is not a pair of times of day"),
        ('[schedule]\nsend_window = "24:00-24:00"', "is not a pair of times of day"),
        ('[schedule]\nsend_days = ["monday"]', 'expected one of "mon"'),
        ("[schedule]\nsend_days = []", "at least one day"),
        ("[ltv]\nmargin = 1.5", "less than or equal to 1"),
        ('[business]\nreview_url = "example.com/review"', "starting with https://"),
        ('[schedule]\nprecedence = ["birthday"]', "list every occasion kind once (missing"),
        ("[schedule]\nmin_days_between = -1", "greater than or equal to 0"),
        ('[occasions.order_thanks]\ndelay = "2 hours"', 'such as "2h", "90m"'),
        ('[occasions.birthday]\nfeb29 = "mar01"', 'expected one of "feb28" or "mar1"'),
        ("[occasions.check_in]\nquiet_days = 3", "greater than or equal to 7"),
        ("[occasions.review_thanks]\nmin_rating = 6", "less than or equal to 5"),
        ('[occasions.review_thanks]\nmax_lateness = "two weeks"', 'such as "2h", "90m"'),
        ('[import.reviews]\ncolumns = { "Stars" = "stars" }', "is not a column of reviews files"),
        ('[templates]\nrender_timeout = "0s"', "expected a duration longer than zero"),
        ('[templates]\nrender_timeout = "2"', 'such as "2h", "90m"'),
        ('[inbound]\nbounce_address = "bounces@example.com"', "with {tag} once in its local part"),
        ('[inbound]\nbounce_address = "b+{tag}{tag}@example.com"', "with {tag} once"),
        ('[inbound]\nbounce_address = "b+{tag}@exa mple.com"', "is not a valid address"),
        ('[inbound]\nimap_host = "imap.example.com"', "imap_user must be too"),
        ('[inbound]\nfolder = "x"\nprocessed_folder = "x"', "must differ from folder"),
        ('[inbound]\nimap_security = "ssl"', 'expected one of "tls", "starttls" or "none"'),
    ],
)
def test_values_are_checked(tmp_path: Path, table: str, message: str) -> None:
    base = MINIMAL if not table.startswith("[business]") else ""
    text = base + "\n" + table + "\n"
    if table.startswith("[business]"):
        key_line = table.splitlines()[1]
        text = MINIMAL.replace('sender_email = "ada@example.com"\n', "") + key_line + "\n"
        if "sender_email" not in key_line:
            text += 'sender_email = "ada@example.com"\n'
    lines = problems(tmp_path, text)
    assert len(lines) == 1
    assert message in lines[0]


def test_a_precedence_written_before_review_thanks_still_loads(tmp_path: Path) -> None:
    """Configs copied from an earlier example list seven kinds: review_thanks takes its default
    place after referral_thanks, wherever the owner put that."""
    older = '["check_in", "referral_thanks", "birthday", "first_meeting", "order_thanks", '
    older += '"follow_up", "anniversary"]'
    config = load_config(write(tmp_path, MINIMAL + f"[schedule]\nprecedence = {older}\n"))
    assert config.settings.schedule.precedence == (
        "check_in",
        "referral_thanks",
        "review_thanks",
        "birthday",
        "first_meeting",
        "order_thanks",
        "follow_up",
        "anniversary",
    )


def test_relative_sqlite_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[database]\nurl = "sqlite:///data/a.db"\n'))
    assert config.database_url({}) == f"sqlite:///{tmp_path / 'data' / 'a.db'}"


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_database_url("postgresql://ada@db/x") == "postgresql+psycopg://ada@db/x"


def test_url_env_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[database]\nurl_env = "DB_URL"\n'))
    assert config.database_url({"DB_URL": "postgresql://a:b@h/d"}) == "postgresql+psycopg://a:b@h/d"
    with pytest.raises(ConfigError, match="DB_URL is not set"):
        config.database_url({})


def test_discovery_prefers_the_option_then_the_environment_then_cwd(tmp_path: Path) -> None:
    option = write(tmp_path, MINIMAL, "option.toml")
    from_env = write(tmp_path, MINIMAL, "env.toml")
    in_cwd = write(tmp_path, MINIMAL, "appreciate.toml")
    env = {"APPRECIATE_CONFIG": str(from_env)}
    assert find_config(option, env, tmp_path) == option
    assert find_config(None, env, tmp_path) == from_env
    assert find_config(None, {}, tmp_path) == in_cwd


def test_a_missing_config_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigNotFound) as caught:
        find_config(None, {}, tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "appreciate.toml") in message
    assert "APPRECIATE_CONFIG" in message
    assert "appreciate init" in message


def test_a_named_config_that_is_missing_is_not_replaced_by_another(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "appreciate.toml")
    with pytest.raises(ConfigNotFound, match=r"typo\.toml"):
        find_config(tmp_path / "typo.toml", {}, tmp_path)
    with pytest.raises(ConfigNotFound, match="APPRECIATE_CONFIG"):
        find_config(None, {"APPRECIATE_CONFIG": str(tmp_path / "gone.toml")}, tmp_path)


def test_the_settings_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        config.settings.smtp.host = "elsewhere"  # type: ignore[misc]


def test_occasion_timings_read_as_written(tmp_path: Path) -> None:
    text = MINIMAL + '\n[occasions.order_thanks]\ndelay = "1d 12h"\nmin_amount = 20\n'
    occasions = load_config(write(tmp_path, text)).settings.occasions
    assert occasions.order_thanks.delay == timedelta(hours=36)
    assert occasions.order_thanks.min_amount == 20.0
    assert occasions.birthday.max_lateness == timedelta(days=3)
    assert occasions.first_meeting.delay == timedelta(days=1)


def test_a_bad_duration_names_its_file_line_and_key(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + '\n[occasions.follow_up]\nmax_lateness = "2w"\n')
    assert lines == [
        f"{tmp_path / 'config.toml'}:7: occasions.follow_up.max_lateness: expected a duration "
        'such as "2h", "90m", "1d" or "1d 12h", got "2w"'
    ]


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_durations_read_back_as_written_to_the_minute(value: timedelta) -> None:
    whole_minutes = timedelta(minutes=value // timedelta(minutes=1))
    assert parse_duration(format_duration(whole_minutes)) == whole_minutes


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_durations_read_back_as_written_to_the_second(value: timedelta) -> None:
    whole_seconds = timedelta(seconds=value // timedelta(seconds=1))
    assert parse_duration(format_duration(whole_seconds)) == whole_seconds


@pytest.mark.parametrize("value", ["3651d", "99999999999d", "87601h"])
def test_a_duration_longer_than_ten_years_is_refused_with_its_key(
    tmp_path: Path, value: str
) -> None:
    """Such a lease was an OverflowError in every delivery (the claim's lease past the
    calendar), and a huge one a traceback from `config check` itself."""
    lines = problems(tmp_path, MINIMAL + f'\n[smtp]\nlease = "{value}"\n')
    assert lines == [
        f'{tmp_path / "config.toml"}:7: smtp.lease: "{value}" is longer than 3650d (ten '
        "years), the longest allowed"
    ]
    assert parse_duration("3650d") == timedelta(days=3650)


def test_a_duration_may_be_given_in_seconds() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("1m 30s") == timedelta(seconds=90)


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "posix/Europe/Paris"])
def test_a_time_zone_must_be_a_real_zone_name(tmp_path: Path, name: str) -> None:
    text = MINIMAL + f'timezone = "{name}"\n'
    assert problems(tmp_path, text) == [
        f'{tmp_path / "config.toml"}:5: business.timezone: unknown time zone "{name}" '
        '(expected an IANA name like "Europe/Paris")'
    ]


def test_currency_and_locale_are_read_and_checked(tmp_path: Path) -> None:
    business = load_config(
        write(tmp_path, MINIMAL + 'currency = "EUR"\nlocale = "de_DE"\n')
    ).settings.business
    assert (business.currency, business.locale) == ("EUR", "de_DE")
    assert load_config(write(tmp_path, MINIMAL)).settings.business.locale == "en_US"
    lines = problems(tmp_path, MINIMAL + 'currency = "EURO"\nlocale = "xx_YY"\n')
    assert lines == [
        f'{tmp_path / "config.toml"}:5: business.currency: unknown currency "EURO" (expected an '
        'ISO 4217 code such as "EUR" or "USD", or empty for amounts without a currency sign)',
        f'{tmp_path / "config.toml"}:6: business.locale: unknown locale "xx_YY" (expected a '
        'language and country such as "en_US" or "de_DE")',
    ]


def test_import_column_mappings_are_read_per_kind(tmp_path: Path) -> None:
    text = MINIMAL + (
        '\n[import.customers]\ncolumns = { "Patient ID" = "id", "Pet" = "pet name" }\n'
        '\n[import.orders.columns]\n"Total" = "amount"\n'
    )
    imports = load_config(write(tmp_path, text)).settings.imports
    assert imports.columns("customers") == {"Patient ID": "id", "Pet": "pet name"}
    assert imports.columns("orders") == {"Total": "amount"}
    assert imports.columns("meetings") == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[import.orders]\ncolumns = { "Total" = "total" }',
         'import.orders.columns: "Total" = "total" is not a column of orders files (they have '
         "id, customer_id, placed_at, amount, margin, description)"),
        ('[import.customers]\ncolumns = { "A" = "id", "B" = "ID" }',
         'import.customers.columns: "A" and "B" are both mapped to "ID"'),
        ('[import.customers]\ncolumns = { "A" = "reason" }',
         "import.customers.columns: \"A\" = \"reason\" is the rejects file's column"),
        ('[import.customers]\ncolumns = { "A" = 3 }',
         "import.customers.columns.A: expected a string (in quotes), got 3"),
        ("[imports.customers]\ncolumns = {}", 'imports: unknown key (did you mean "import"?)'),
    ],
)  # fmt: skip
def test_import_column_mappings_are_checked_with_file_line_and_key(
    tmp_path: Path, table: str, message: str
) -> None:
    lines = problems(tmp_path, MINIMAL + "\n" + table + "\n")
    assert len(lines) == 1
    assert lines[0].startswith(f"{tmp_path / 'config.toml'}:")
    assert message in lines[0]
