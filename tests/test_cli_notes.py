"""`appreciate preview` and `appreciate templates check`, as an owner runs them."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import insert

from scheduler.cli.notes import Kind
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.vocabulary import OCCASION_KINDS
from tests.conftest import Workspace, run_cli
from tests.test_cli import count_rows
from tests.test_detection import add_customer, add_order

STARTERS = Path(__file__).parent.parent / "templates"
NOW = "2027-06-15T10:00:00+00:00"


@pytest.fixture
def owner(migrated_workspace: Workspace) -> Workspace:
    """A workspace with the starter templates, links configured, and a few customers."""
    with migrated_workspace.path.open("a", encoding="utf-8") as config:
        config.write('review_url = "https://g.page/r/ada/review"\n')
        config.write('unsubscribe_url = "https://ada.example/unsubscribe/{token}"\n')
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        ann = add_customer(
            engine,
            "C-1",
            name="Ann Lee",
            birth_year=1990,
            birth_month=7,
            birth_day=2,
            customer_since=date(2021, 9, 1),
        )
        bob = add_customer(engine, "C-2", name="Bob <b>Stone</b>")
        add_order(
            engine,
            "A-1",
            ann,
            datetime(2027, 5, 1, tzinfo=UTC),
            amount=Decimal("20"),
            description="bread",
        )
        add_order(
            engine,
            "A-2",
            ann,
            datetime(2027, 6, 1, tzinfo=UTC),
            amount=Decimal("42.5"),
            description="a lemon cake",
        )
        with engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["referrals"]).values(
                    referrer_id=ann, referred_id=bob, referred_on=date(2027, 6, 10)
                )
            )
            connection.execute(
                insert(metadata.tables["reviews"]).values(
                    external_id="R-1",
                    customer_id=ann,
                    reviewed_at=datetime(2027, 6, 12, 18, tzinfo=UTC),
                    site="Google",
                    url="javascript:alert(1)",
                    rating=5,
                    text="The lemon cake was <b>perfect</b>; see https://spam.example/win",
                )
            )
    finally:
        engine.dispose()
    return migrated_workspace


def preview(owner: Workspace, *args: str) -> tuple[int, str, str]:
    result = run_cli("--config", owner.path, "preview", *args, "--now", NOW)
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line_offers_every_kind() -> None:
    assert tuple(kind.value for kind in Kind) == OCCASION_KINDS


def test_a_preview_shows_the_subject_and_text_from_real_data(owner: Workspace) -> None:
    code, shown, notice = preview(owner, "order_thanks", "--customer", "C-1")
    assert code == 0, notice
    assert shown.startswith("Subject: Thank you for your order, Ann\n\nHi Ann,\n\n")
    assert "Thank you for your order of a lemon cake." in shown  # the latest order
    assert "with us for 5 years" in shown
    assert "https://ada.example/unsubscribe/PREVIEW-TOKEN" in shown
    assert "order_thanks.j2" in notice
    code, shown, _ = preview(owner, "follow_up", "--customer", "C-1", "--order", "A-1")
    assert code == 0
    assert "since your order of bread" in shown
    assert "https://g.page/r/ada/review" in shown


def test_a_preview_finds_the_next_birthday_and_the_latest_referral(owner: Workspace) -> None:
    code, shown, _ = preview(owner, "birthday", "--customer", "C-1")
    assert code == 0
    assert shown.startswith("Subject: Happy birthday, Ann!\n")
    code, shown, _ = preview(owner, "referral_thanks", "--customer", "C-1")
    assert code == 0
    assert "Subject: Thank you for sending Bob our way" in shown
    code, shown, _ = preview(owner, "anniversary", "--customer", "C-1")
    assert code == 0
    assert shown.startswith("Subject: 6 years together, Ann\n")


def test_a_preview_in_html_is_escaped(owner: Workspace) -> None:
    code, shown, _ = preview(owner, "check_in", "--customer", "C-2", "--format", "html")
    assert code == 0
    assert shown.startswith("<!DOCTYPE html>")
    assert "<p>Hi Bob,</p>" in shown
    code, shown, _ = preview(owner, "referral_thanks", "--customer", "C-1", "-f", "html")
    assert "Bob came to us" in shown
    (owner.folder / "templates" / "check_in.j2").write_text(
        "{% block subject %}Hi{% endblock %}{% block text %}Hello{% endblock %}", encoding="utf-8"
    )
    code, shown, notice = preview(owner, "check_in", "--customer", "C-2", "--format", "html")
    assert code == 1
    assert shown == ""
    assert "check_in.j2 has no html block: this note goes out as plain text only" in notice


def test_a_review_thanks_quotes_the_review_safely_and_asks_for_nothing(owner: Workspace) -> None:
    """The business's app wrote the review straight into the table, with markup, an address in
    the text and a url that is no web address: the note quotes the words as text, links
    nothing a customer wrote, and carries no request."""
    code, shown, _ = preview(owner, "review_thanks", "--customer", "C-1")
    assert code == 0
    assert shown.startswith("Subject: Thank you for your kind words, Ann\n")
    assert "on Google" in shown
    assert '"The lemon cake was <b>perfect</b>; see https://spam.example/win"' in shown
    code, html, _ = preview(owner, "review_thanks", "--customer", "C-1", "--format", "html")
    assert code == 0
    assert "&lt;b&gt;perfect&lt;/b&gt;" in html
    assert "spam.example" in html
    assert 'href="https://spam.example' not in html
    assert "javascript" not in html
    body = shown.split("Rather not get notes")[0]
    for request in ("?", "please", "review_url", "g.page", "discount", "offer", "would you"):
        assert request not in body.lower(), request


def test_a_preview_as_eml_is_the_whole_message(owner: Workspace) -> None:
    code, shown, _ = preview(owner, "order_thanks", "--customer", "C-1", "--format", "eml")
    assert code == 0
    message = message_from_string(shown, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["From"] == "Ada <ada@example.com>"
    assert message["To"] == "Ann Lee <c-1@example.com>"
    assert message["Message-ID"].startswith("<")
    assert "https://ada.example/unsubscribe/" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert text is not None
    assert "a lemon cake" in text.get_content()


def test_a_preview_writes_nothing(owner: Workspace) -> None:
    before = {table: count_rows(owner.database_url, table) for table in metadata.tables}
    for kind in OCCASION_KINDS:
        if kind != "referral_thanks":
            assert preview(owner, kind, "--customer", "C-1")[0] == 0, kind
    after = {table: count_rows(owner.database_url, table) for table in metadata.tables}
    assert after == before
    assert after["unsubscribe_tokens"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check_in", "--customer", "C-9"], 'there is no customer with id "C-9"'),
        (["order_thanks", "--customer", "C-2"], "customer C-2 has no orders yet"),
        (
            ["follow_up", "--customer", "C-2", "--order", "A-1"],
            'customer C-2 has no order with id "A-1"',
        ),
        (["referral_thanks", "--customer", "C-2"], "customer C-2 has not referred anyone yet"),
        (["review_thanks", "--customer", "C-2"], "customer C-2 has not written a review yet"),
        (["birthday", "--customer", "C-2"], "customer C-2 has no birthday on record"),
        (["anniversary", "--customer", "C-2"], "customer C-2 has no customer_since on record"),
        (["birthday", "--customer", "C-1", "--order", "A-1"], "--order applies to order_thanks"),
    ],
)
def test_a_preview_without_the_data_it_needs_says_what_is_missing(
    owner: Workspace, args: list[str], message: str
) -> None:
    code, shown, notice = preview(owner, *args)
    assert code == 1
    assert shown == ""
    assert message in notice


def test_a_broken_template_makes_preview_name_the_file_and_line(owner: Workspace) -> None:
    (owner.folder / "templates" / "check_in.j2").write_text(
        '{% extends "_layout.j2" %}\n{% block subject %}{{ customer.nick }}{% endblock %}',
        encoding="utf-8",
    )
    code, _, notice = preview(owner, "check_in", "--customer", "C-1")
    assert code == 2
    assert "error: check_in.j2:2: 'dict object' has no attribute 'nick'" in notice


# templates check -------------------------------------------------------------------------


def check(owner: Workspace) -> tuple[int, list[str]]:
    result = run_cli("--config", owner.path, "templates", "check")
    return result.exit_code, result.stdout.splitlines()


def test_a_card_or_note_template_not_saved_as_utf8_fails_the_check_by_name(
    owner: Workspace,
) -> None:
    """The check stopped with a UnicodeDecodeError traceback on the first such file."""
    folder = owner.folder / "templates"
    (folder / "check_in.j2").write_bytes(b'{% extends "_layout.j2" %}\n\xff\xfe{{ x }}')
    (folder / "card.j2").write_bytes((folder / "card.j2").read_bytes() + b"\n\xe9t\xe9\n")
    result = run_cli("--config", owner.path, "templates", "check")
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    not_utf8 = "the file is not saved as UTF-8"
    assert any(line.startswith(f"check_in.j2:2: error: {not_utf8} (byte 0xff") for line in lines)
    assert any(line.startswith("card.j2:") and not_utf8 in line for line in lines)
    assert "birthday.j2: ok" in lines


def test_the_starter_templates_pass_the_check(owner: Workspace) -> None:
    code, lines = check(owner)
    assert code == 0
    assert lines == [
        "birthday.j2: ok",
        "birthday.vip.j2: ok",
        "order_thanks.j2: ok",
        "referral_thanks.j2: ok",
        "review_thanks.j2: ok",
        "first_meeting.j2: ok",
        "follow_up.j2: ok",
        "anniversary.j2: ok",
        "check_in.j2: ok",
        "card.birthday.j2: ok",
        "card.j2: ok",
        "call.j2: ok",
    ]


def test_the_check_names_each_problem_with_file_and_line(owner: Workspace) -> None:
    folder = owner.folder / "templates"
    (folder / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}\n{% block subject %}Hi{% endblock %}\n'
        "{% block message %}{{ customer.nick }}{% endblock %}\n",
        encoding="utf-8",
    )
    (folder / "order_thanks.j2").write_text(
        '{% extends "_layout.j2" %}\n{% block subject %}Thanks{% endblock %}\n'
        "{% block message %}\n{{ order.description }}\n{% endblock %}\n",
        encoding="utf-8",
    )
    (folder / "anniversary.j2").write_text(
        '{% extends "_layout.j2" %}\n\n{% block subject %}'
        + "A very long subject line that goes on and on " * 2
        + "{% endblock %}{% block message %}Hi{% endblock %}",
        encoding="utf-8",
    )
    (folder / "follow_up.j2").write_text(
        '{% extends "_layout.j2" %}{% block subject %}{{ "x" * 201 }}{% endblock %}',
        encoding="utf-8",
    )
    (folder / "first_meeting.j2").write_text(
        '{% extends "_layout.j2" %}{% block message %}', encoding="utf-8"
    )
    (folder / "check_in.j2").unlink()
    (folder / "birthday.gold.j2").write_text("{% block subject %}{% endblock %}", encoding="utf-8")
    code, lines = check(owner)
    assert code == 1
    assert lines[0] == "birthday.j2:3: error: 'dict object' has no attribute 'nick'"
    assert lines[1] == "birthday.vip.j2: ok"  # its own message block replaces the broken one
    assert lines[2] == (
        "order_thanks.j2:4: error: this value is None (not on record for this customer): print "
        "it inside {% if ... %} so the note reads well without it (for a customer with few "
        "details on record)"
    )
    assert lines[3] == "referral_thanks.j2: ok"
    assert lines[4] == "review_thanks.j2: ok"
    assert lines[5].startswith("first_meeting.j2:1: error: Unexpected end of template.")
    assert lines[6].startswith(
        "follow_up.j2:1: error: the subject is 201 characters long, over 200"
    )
    assert lines[7].startswith(
        'anniversary.j2:3: warning: the subject is 89 characters long, over 78: "A very'
    )
    assert lines[8] == (
        "check_in.j2: error: missing, and check_in notes are switched on: "
        "`appreciate templates add check_in` copies the starter"
    )
    assert lines[9:12] == ["card.birthday.j2: ok", "card.j2: ok", "call.j2: ok"]
    assert lines[12].startswith("birthday.gold.j2: warning: no note uses it")
    assert len(lines) == 13


def test_an_error_in_the_layout_is_reported_in_the_layout(owner: Workspace) -> None:
    layout = owner.folder / "templates" / "_layout.j2"
    source = layout.read_text(encoding="utf-8")
    layout.write_text(
        source.replace("{{ business.sender_name }}", "{{ business.owner }}"), encoding="utf-8"
    )
    line = source.splitlines().index("{{ business.sender_name }}") + 1
    code, lines = check(owner)
    assert code == 1
    assert (
        lines[0]
        == f"_layout.j2:{line}: error: 'dict object' has no attribute 'owner' (writing birthday.j2)"
    )
    assert len(lines) == 12


def test_the_check_writes_the_card_and_call_templates_too(owner: Workspace) -> None:
    """`templates check` said nothing of card.*.j2 and call.*.j2: a typo there was found only
    when `appreciate cards` left that card out. Now each is written as cards and calls write
    them, for the kinds it serves, each problem with file and line; exit 1."""
    folder = owner.folder / "templates"
    (folder / "card.anniversary.j2").write_text(
        "{% block inside %}\n<p>{{ customer.nick }}</p>\n{% endblock %}\n", encoding="utf-8"
    )
    (folder / "card.order_thanks.j2").write_text(
        "{% block front %}Thanks{% endblock %}", encoding="utf-8"
    )
    (folder / "card.follow_up.j2").write_bytes(b"{% block inside %}caf\xe9{% endblock %}")
    (folder / "call.j2").write_text(
        "{% block script %}\n\nSay {% if %}hi{% endblock %}", encoding="utf-8"
    )
    (folder / "call.review_thanks.j2").mkdir()
    code, lines = check(owner)
    assert code == 1
    assert lines[9:] == [
        "card.anniversary.j2:2: error: 'dict object' has no attribute 'nick' "
        "(card for anniversary)",
        "card.birthday.j2: ok",
        "card.follow_up.j2:1: error: the file is not saved as UTF-8 (byte 0xe9 cannot be "
        "read): open it and save it again choosing UTF-8 (card for follow_up)",
        "card.order_thanks.j2: error: there is no {% block inside %}, or it is empty: "
        "the card would not print",
        "card.j2: ok",
        "call.review_thanks.j2: error: not a file, so not a template",
        "call.j2:3: error: Expected an expression, got 'end of statement block' "
        "(call for birthday)",
    ]


def test_a_switched_off_kind_may_go_without_a_template(owner: Workspace) -> None:
    with owner.path.open("a", encoding="utf-8") as config:
        config.write("\n[occasions.check_in]\nenabled = false\n")
    (owner.folder / "templates" / "check_in.j2").unlink()
    code, lines = check(owner)
    assert code == 0
    assert lines[8] == "check_in.j2: warning: missing, and check_in notes are switched off"


# templates check against the store's attributes ------------------------------------------

DENTIST_NOTE = (
    '{% extends "_layout.j2" %}\n{% block subject %}Happy birthday{% endblock %}\n'
    "{% block message %}\nDr {{ customer.attributes.dentist }} sends best wishes.\n"
    "{% endblock %}\n"
)


def with_attributes(owner: Workspace, **people: dict[str, str]) -> None:
    engine = create_store_engine(owner.database_url)
    try:
        with engine.begin() as connection:
            for external_id, attributes in people.items():
                connection.execute(
                    metadata.tables["customers"]
                    .update()
                    .where(metadata.tables["customers"].c.external_id == external_id)
                    .values(attributes=attributes)
                )
    finally:
        engine.dispose()


def test_an_attribute_some_customers_lack_is_a_warning_naming_a_few(owner: Workspace) -> None:
    """The note previews fine for a customer who has it, and the check says who would fail."""
    engine = create_store_engine(owner.database_url)
    try:
        for number in range(3, 8):
            add_customer(engine, f"C-{number}")
    finally:
        engine.dispose()
    with_attributes(owner, **{"C-1": {"dentist": "Lee", "pet_name": "Rex"}, "C-2": {}})
    (owner.folder / "templates" / "birthday.j2").write_text(DENTIST_NOTE, encoding="utf-8")
    code, shown, notice = preview(owner, "birthday", "--customer", "C-1")
    assert code == 0, notice
    assert "Dr Lee sends best wishes." in shown
    code, lines = check(owner)
    assert code == 0
    assert lines[0] == (
        "birthday.j2:4: warning: 6 customers have no attributes.dentist (C-2, C-3, C-4, ...): "
        "their birthday notes will fail; write `{% if customer.attributes.dentist is defined %}`"
    )
    assert lines[1] == "birthday.vip.j2: ok"  # its own message block does without
    assert len(lines) == 12  # nine notes, two cards and a call


def test_an_attribute_no_customer_has_is_an_error(owner: Workspace) -> None:
    with_attributes(owner, **{"C-1": {"dentist": "Lee"}})
    (owner.folder / "templates" / "birthday.j2").write_text(
        DENTIST_NOTE.replace("dentist", "dentst"), encoding="utf-8"
    )
    code, lines = check(owner)
    assert code == 1
    assert lines[0] == (
        "birthday.j2:4: error: no customer in the store has attributes.dentst: every birthday "
        "note written here would fail; check the column's name in your import, or write "
        "`{% if customer.attributes.dentst is defined %}`"
    )


def test_a_guarded_attribute_is_trusted(owner: Workspace) -> None:
    with_attributes(owner, **{"C-1": {"dentist": "Lee"}})
    (owner.folder / "templates" / "birthday.j2").write_text(
        DENTIST_NOTE.replace(
            "Dr {{ customer.attributes.dentist }} sends best wishes.",
            "{% if customer.attributes.dentist is defined %}Dr {{ customer.attributes.dentist }}"
            "{% endif %}{{ customer.attributes['nurse'] | default('') }}"
            "{{ 'x' if 'hygienist' in customer.attributes else '' }}"
            "{% if 'hygienist' in customer.attributes %}{{ customer.attributes.hygienist }}"
            "{% endif %}{{ customer.attributes.get('gp', '') }}",
        ),
        encoding="utf-8",
    )
    code, lines = check(owner)
    assert (code, lines[0]) == (0, "birthday.j2: ok")


def test_attributes_are_found_through_parents_includes_and_imports(owner: Workspace) -> None:
    """And a referred friend's attributes too; a parent's block the note replaces is not used."""
    with_attributes(owner, **{"C-1": {"dentist": "Lee", "pet_name": "Rex"}})
    folder = owner.folder / "templates"
    (folder / "_parts.j2").write_text(
        "{% macro signed() %}\n-- and {{ customer.attributes.dentist }}{% endmacro %}",
        encoding="utf-8",
    )
    (folder / "_ps.j2").write_text("PS: {{ customer.attributes.pet_name }}", encoding="utf-8")
    (folder / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}{% from "_parts.j2" import signed with context %}\n'
        "{% block subject %}Hi{% endblock %}\n"
        '{% block message %}\nHi.\n{{ signed() }}\n{% include "_ps.j2" %}\n{% endblock %}\n',
        encoding="utf-8",
    )
    (folder / "referral_thanks.j2").write_text(
        '{% extends "_layout.j2" %}{% block subject %}Thanks{% endblock %}\n'
        "{% block message %}\n{{ referral.referred.attributes.pet_name }}{% endblock %}",
        encoding="utf-8",
    )
    code, lines = check(owner)
    assert code == 0
    assert lines[0].startswith("_parts.j2:2: warning: 1 customer has no attributes.dentist (C-2)")
    assert lines[0].endswith("(writing birthday.j2)")
    assert lines[1].startswith("_ps.j2:1: warning: 1 customer has no attributes.pet_name (C-2)")
    assert lines[2] == "birthday.vip.j2: ok"  # replaces the message block: none of those
    assert lines[4] == (
        "referral_thanks.j2:3: warning: 1 customer has no attributes.pet_name (C-2): "
        "referral_thanks notes about them will fail; write "
        "`{% if referral.referred.attributes.pet_name is defined %}`"
    )


def test_without_a_store_the_check_says_so_and_uses_the_sample(workspace: Workspace) -> None:
    shutil.copytree(STARTERS, workspace.folder / "templates")
    (workspace.folder / "templates" / "birthday.j2").write_text(
        DENTIST_NOTE.replace("dentist", "pet_name"), encoding="utf-8"
    )
    result = run_cli("--config", workspace.path, "templates", "check")
    assert result.exit_code == 1
    assert "note: could not look at the store" in result.stderr
    assert "appreciate db upgrade" in result.stderr
    if workspace.database_url.startswith("sqlite"):
        assert not (workspace.folder / "store.db").exists()  # looking made no empty store
    assert result.stdout.splitlines()[0] == (
        "birthday.j2:4: error: 'dict object' has no attribute 'pet_name' (for a customer with "
        "few details on record)"
    )


def test_a_preview_of_an_anniversary_from_a_placeholder_date_says_why(owner: Workspace) -> None:
    engine = create_store_engine(owner.database_url)
    try:
        add_customer(engine, "C-9", customer_since=date(9999, 12, 31))
    finally:
        engine.dispose()
    code, shown, notice = preview(owner, "anniversary", "--customer", "C-9")
    assert (code, shown) == (1, "")
    assert "customer C-9's customer_since, 9999-12-31, is not a date from 1900 to 2200" in notice
