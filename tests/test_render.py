"""Rendering notes from real template files: the starter notes, tier variants, the sandbox,
autoescaping, errors named by file and line, and the size cap."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler.config.settings import Settings
from scheduler.notes.cards import card_template
from scheduler.notes.note_context import sample_context
from scheduler.notes.render import NoteRenderer, RenderStopped, TemplateProblem, links, paragraphs
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind
from tests.conftest import adas_bakery

STARTERS = Path(__file__).parent.parent / "templates"
REVIEW = "https://g.page/r/ada-bakery/review"
SETTINGS = Settings(
    business=adas_bakery(
        review_url=REVIEW, unsubscribe_url="https://ada.example/unsubscribe/{token}"
    )
)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the starter templates the test may edit."""
    folder = tmp_path / "templates"
    shutil.copytree(STARTERS, folder)
    return folder


def write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(source, encoding="utf-8")


def render(folder: Path, kind: OccasionKind = "birthday", **context: Any) -> Any:
    values = sample_context(kind, SETTINGS)
    values.update(context)
    return NoteRenderer(folder).render(kind, None, values)


def problem_of(folder: Path, kind: OccasionKind = "birthday", **kwargs: Any) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as caught:
        render(folder, kind, **kwargs)
    return caught.value


# How the files were saved ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "line_end"),
    [("utf-8-sig", "\r\n"), ("utf-16", "\r\n"), ("utf-16", "\n")],
    ids=["utf8-bom-crlf", "notepad-unicode-crlf", "utf16-bom-lf"],
)
def test_a_template_saved_with_a_byte_order_mark_writes_the_same_note(
    templates: Path, encoding: str, line_end: str
) -> None:
    """Windows Notepad saves "Unicode" as UTF-16 with a byte-order mark, and UTF-8 with one."""
    as_utf8 = render(templates)
    for name in ("birthday.j2", "_layout.j2"):
        source = (STARTERS / name).read_text(encoding="utf-8")
        (templates / name).write_bytes(source.replace("\n", line_end).encode(encoding))
    assert render(templates) == as_utf8


def test_a_template_not_saved_as_utf8_names_the_file_line_and_byte(templates: Path) -> None:
    """Windows-1252 ("ANSI") was a bare UnicodeDecodeError, and `templates check` crashed."""
    source = (STARTERS / "birthday.j2").read_text(encoding="utf-8")
    (templates / "birthday.j2").write_bytes(
        source.replace("grateful", "gr\u00e4teful").encode("cp1252")
    )
    problem = problem_of(templates)
    line = 1 + source[: source.index("grateful")].count("\n")
    assert (problem.file, problem.line) == ("birthday.j2", line)
    assert problem.message == (
        "the file is not saved as UTF-8 (byte 0xe4 cannot be read): "
        "open it and save it again choosing UTF-8"
    )


# The starter notes ------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("kind", OCCASION_KINDS)
def test_each_starter_note_is_complete_and_personal(kind: OccasionKind, sparse: bool) -> None:
    context = sample_context(kind, SETTINGS, sparse=sparse)
    note = NoteRenderer(STARTERS).render(kind, None, context)
    assert note.template == f"{kind}.j2"
    assert note.subject
    assert "\n" not in note.subject
    assert len(note.subject) <= 78
    assert note.text.startswith("Hi Sam,\n\n")
    assert note.text.endswith("\n")
    assert "\n\n\n" not in note.text
    assert note.html is not None
    assert "<p>Hi Sam,</p>" in note.html
    for part in (note.subject, note.text, note.html):
        for leak in ("None", "{{", "}}", "{%", "%}", "{#", "Undefined"):
            assert leak not in part
    assert ("https://ada.example/unsubscribe/SAMPLE-TOKEN" in note.text) is not sparse


SUBJECTS = {
    "birthday": ("Happy birthday, Sam!", "Happy birthday!"),
    "order_thanks": ("Thank you for your order, Sam", "Thank you for your order"),
    "referral_thanks": (
        "Thank you for sending Jordan our way",
        "Thank you for sending a friend our way",
    ),
    "review_thanks": ("Thank you for your kind words, Sam", "Thank you for your kind words"),
    "first_meeting": ("It was lovely to meet you, Sam", "It was lovely to meet you"),
    "follow_up": ("How is everything going, Sam?", "How is everything going?"),
    "anniversary": ("6 years together, Sam", "6 years together"),
    "check_in": ("Thinking of you, Sam", "Thinking of you"),
}
"""Each starter's subject for Sam (the sample customer, referring Jordan), and with no name."""


def without_names(context: dict[str, Any]) -> dict[str, Any]:
    """`context` for a customer (and a referred friend) whose name is empty, as another
    application writing the store may leave it (the importer refuses such names)."""
    blank = {"name": "", "first_name": ""}
    context = {**context, "customer": {**context["customer"], **blank}}
    if context.get("referral"):
        referred = {**context["referral"]["referred"], **blank}
        context["referral"] = {**context["referral"], "referred": referred}
    return context


def assert_reads_well(text: str) -> None:
    """No gap where a name was left out: "Happy birthday, !", "Dear ,", "Thank  for"..."""
    for flaw in (", !", ", ?", ", .", " ,", "  ", "<p></p>"):
        assert flaw not in text
    assert not text.endswith((",", " "))


@pytest.mark.parametrize("tier", ["vip", "regular", None])
@pytest.mark.parametrize("kind", OCCASION_KINDS)
def test_each_starter_reads_well_for_a_customer_without_a_name(
    kind: OccasionKind, tier: str | None
) -> None:
    """A customer whose name was empty got "Happy birthday, !" (every subject ended in ", "),
    "Dear ," on a card and "Thank  for ..." in a call's script; a referral, " came to us on
    your recommendation". Now the name is left out where it was ("Happy birthday!"), or a
    word stands for it; with a name, every note, card and script is as it was."""
    renderer = NoteRenderer(STARTERS)
    for sparse in (False, True):
        context = sample_context(kind, SETTINGS, tier=tier, sparse=sparse)
        named, nameless = SUBJECTS[kind]
        assert renderer.render(kind, tier, context).subject == named
        note = renderer.render(kind, tier, without_names(context))
        assert note.subject == nameless
        assert note.text.startswith("Hi there,\n\n")
        assert "<p>Hi there,</p>" in (note.html or "")
        for part in (note.subject, note.text, note.html or ""):
            assert_reads_well(part)
        card = renderer.render_blocks(
            card_template(STARTERS, kind), without_names(context), ("front", "inside"), html=True
        )
        assert "<p>Hello,</p>" in card["inside"]
        script = renderer.render_blocks("call.j2", without_names(context), ("script",), html=False)
        for part in (card["front"], card["inside"], " ".join(script["script"].split())):
            assert_reads_well(part)


def test_a_call_script_and_a_card_stand_in_for_a_missing_name() -> None:
    renderer = NoteRenderer(STARTERS)

    def script(kind: OccasionKind) -> str:
        context = without_names(sample_context(kind, SETTINGS))
        text = renderer.render_blocks("call.j2", context, ("script",), html=False)["script"]
        return " ".join(text.split())

    assert script("birthday") == "Wish them a happy birthday (39)."
    assert script("referral_thanks") == "Thank them for sending a friend our way."
    assert script("check_in") == (
        "Call them to say thank you for being a customer of Ada's Bakery."
    )
    context = without_names(sample_context("birthday", SETTINGS))
    card = renderer.render_blocks("card.birthday.j2", context, ("front", "inside"), html=True)
    assert card["front"].strip() == "<h1>Happy birthday</h1>"
    referral = without_names(sample_context("referral_thanks", SETTINGS))
    text = renderer.render("referral_thanks", None, referral).text
    assert "A friend of yours came to us on your recommendation." in text
    assert "We'll take good care of them." in text


def test_the_thanks_for_an_order_names_what_was_ordered() -> None:
    note = render(STARTERS, "order_thanks")
    assert "Thank you for your order of a sourdough starter kit." in note.text


def test_the_follow_up_offers_the_review_link_only_when_there_is_one() -> None:
    renderer = NoteRenderer(STARTERS)
    with_link = renderer.render("follow_up", None, sample_context("follow_up", SETTINGS))
    context = sample_context("follow_up", SETTINGS)
    context["business"] = {**context["business"], "review_url": None}
    without = renderer.render("follow_up", None, context)
    assert REVIEW in with_link.text
    assert f'<a href="{REVIEW}">{REVIEW}</a>' in (with_link.html or "")
    assert "review" not in without.text
    assert "a few words" not in without.text


def test_the_review_thanks_quotes_the_words_and_asks_for_nothing() -> None:
    note = render(STARTERS, "review_thanks")
    assert note.subject == "Thank you for your kind words, Sam"
    assert "what you wrote about us on Google" in note.text
    assert '"Dr. Rivera and the whole team made me feel at ease' in note.text
    body = note.text.split("Rather not get notes")[0]
    assert REVIEW not in body
    assert "maps.example.com" not in body  # the review's own address is not repeated
    assert "?" not in body
    assert "<a " not in (note.html or "").split("Rather not get notes")[0]


def test_a_low_rating_is_thanked_for_its_honesty_without_quoting_it() -> None:
    context = sample_context("review_thanks", SETTINGS)
    context["review"] = {**context["review"], "rating": 2, "excerpt": "Cold and slow."}
    note = NoteRenderer(STARTERS).render("review_thanks", None, context)
    assert "tell us honestly how it went on Google" in note.text
    assert "Cold and slow." not in note.text
    assert "made my day" not in note.text


def test_a_review_gone_before_its_note_still_makes_a_kind_note() -> None:
    note = render(STARTERS, "review_thanks", review=None)
    assert "I just read what you wrote about us, and it made my day." in note.text
    assert '"' not in note.text


def test_the_referral_thanks_names_the_friend() -> None:
    note = render(STARTERS, "referral_thanks")
    assert note.subject == "Thank you for sending Jordan our way"
    assert "Jordan came to us on your recommendation." in note.text


def test_the_anniversary_says_how_many_years() -> None:
    note = render(STARTERS, "anniversary")
    assert note.subject == "6 years together, Sam"
    assert "It's been 6 years since you first became a customer of Ada's Bakery." in note.text
    one = sample_context("anniversary", SETTINGS)
    one["occasion"]["years"] = 1
    assert NoteRenderer(STARTERS).render("anniversary", None, one).subject.startswith("1 year ")


def test_the_first_meeting_note_names_the_day_only_when_it_was_this_week() -> None:
    context = sample_context("first_meeting", SETTINGS)
    assert (
        "meet you on Monday." in NoteRenderer(STARTERS).render("first_meeting", None, context).text
    )
    context["meeting"] = {"met_on": context["occasion"]["due_date"].replace(month=1)}
    text = NoteRenderer(STARTERS).render("first_meeting", None, context).text
    assert "It was lovely to meet you. Thank you" in text


def test_a_preferred_first_name_and_years_as_a_customer_are_used() -> None:
    context = sample_context("birthday", SETTINGS)
    context["customer"] = {**context["customer"], "first_name": "Sammy", "years_as_customer": 1}
    note = NoteRenderer(STARTERS).render("birthday", None, context)
    assert note.text.startswith("Hi Sammy,")
    assert "part of Ada's Bakery for 1 year now" in note.text


def test_a_tier_variant_wins_when_it_exists(templates: Path) -> None:
    renderer = NoteRenderer(templates)
    vip = renderer.render("birthday", "vip", sample_context("birthday", SETTINGS, tier="vip"))
    regular = renderer.render("birthday", "regular", sample_context("birthday", SETTINGS))
    unscored = renderer.render("birthday", None, sample_context("birthday", SETTINGS, sparse=True))
    assert (vip.template, regular.template, unscored.template) == (
        "birthday.vip.j2",
        "birthday.j2",
        "birthday.j2",
    )
    assert "one of the people who make Ada's Bakery what it is" in vip.text
    assert "With warmest wishes," in vip.text
    assert vip.subject == regular.subject == "Happy birthday, Sam!"
    write(
        templates,
        "order_thanks.new.j2",
        '{% extends "order_thanks.j2" %}{% block subject %}Welcome!{% endblock %}',
    )
    assert renderer.render(
        "order_thanks", "new", sample_context("order_thanks", SETTINGS)
    ).subject == ("Welcome!")


# Escaping ----------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_a_customer_name_is_escaped_in_html_and_verbatim_in_text(templates: Path) -> None:
    context = sample_context("order_thanks", SETTINGS)
    context["customer"] = {**context["customer"], "first_name": SCRIPT}
    context["order"] = {**context["order"], "description": 'cake & "tea"'}
    note = NoteRenderer(templates).render("order_thanks", None, context)
    assert f"Hi {SCRIPT}," in note.text
    assert SCRIPT in note.subject
    assert 'of cake & "tea".' in note.text
    assert note.html is not None
    assert "<script>" not in note.html
    assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;,</p>" in note.html
    assert "cake &amp; &#34;tea&#34;" in note.html


def test_an_html_block_written_in_the_note_itself_is_escaped_too(templates: Path) -> None:
    write(
        templates,
        "check_in.j2",
        '{% extends "_layout.j2" %}{% block subject %}Hello{% endblock %}'
        "{% block message %}Hello {{ customer.name }}{% endblock %}"
        "{% block html %}<b>{{ customer.name }}</b>{% endblock %}",
    )
    note = render(templates, "check_in", customer={"name": SCRIPT, "first_name": "Sam"})
    assert note.html == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"
    assert f"Hello {SCRIPT}" in note.text


def test_links_and_paragraphs_escape_first_and_keep_punctuation_out() -> None:
    assert str(links("see https://x.example/a?b=1&c=2. <b>")) == (
        'see <a href="https://x.example/a?b=1&amp;c=2">https://x.example/a?b=1&amp;c=2</a>. '
        "&lt;b&gt;"
    )
    assert str(links('"https://x.example/q"')) == (
        '&#34;<a href="https://x.example/q">https://x.example/q</a>&#34;'
    )
    assert (
        str(paragraphs("One\ntwo\n\n  \nThree <i>\n"))
        == "<p>One<br>\ntwo</p>\n<p>Three &lt;i&gt;</p>"
    )


# The sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ customer|attr('__class__') }}",
        "{{ customer.attributes.update({'x': 1}) }}",
        "{{ customer.attributes.pop('pet_name') }}",
        "{% set names = [] %}{{ names.append(1) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ range.__self__ }}",
        "{{ (1).__class__.__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_sandbox_escapes_fail_and_leak_nothing(templates: Path, attempt: str) -> None:
    write(
        templates,
        "birthday.j2",
        f"{{% block subject %}}Hi{{% endblock %}}{{% block text %}}{attempt}{{% endblock %}}",
    )
    context = sample_context("birthday", SETTINGS)
    with pytest.raises(TemplateProblem) as caught:
        NoteRenderer(templates).render("birthday", None, context)
    problem = caught.value
    assert (problem.file, problem.line) == ("birthday.j2", 1)
    for leak in ("<class", "<built-in", "<function", "os.", "environ", "Biscuit"):
        assert leak not in str(problem)
    assert context["customer"]["attributes"] == {"pet_name": "Biscuit"}


@pytest.mark.parametrize(
    "bomb",
    [
        "{% for i in range(10**6) %}x{% endfor %}",
        "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}",
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ [0] * 10**9 }}",
        "{{ 9 ** (10 ** 8) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'|center(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%999999999d'|format(1) }}",
        "{{ range(90000)|join('x' * 40000) }}",
        "{{ 'ab'.replace('', 'x' * 40000) }}",
        "{{ 'a\\nb'|indent(40000) }}",
        "{% set s %}{% for i in range(90000) %}{{ 'y' * 40000 }}{% endfor %}{% endset %}",
        "{% filter upper %}{% for i in range(90000) %}{{ 'y' * 40000 }}{% endfor %}{% endfilter %}",
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s|length }}{% endmacro %}{{ d('x', 60) }}",
        "{% macro d(s, n) %}{{ d(s + s, n - 1) if n else s|length }}{% endmacro %}{{ d('x', 60) }}",
        "{% macro m(x, n) %}{{ m(x * x, n - 1) if n else 1 }}{% endmacro %}{{ m(3, 40) }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ (1).to_bytes(10**9, 'big') }}",
    ],
)
def test_runaway_templates_are_refused_quickly(templates: Path, bomb: str) -> None:
    write(
        templates,
        "birthday.j2",
        f"{{% block subject %}}Hi{{% endblock %}}{{% block text %}}{bomb}{{% endblock %}}",
    )
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as caught:
        render(templates)
    assert time.perf_counter() - started < 1.0
    assert (caught.value.file, caught.value.line) == ("birthday.j2", 1)


def test_ordinary_numbers_and_loops_still_work(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        "{% block subject %}{{ '{:,}'.format(1234567) }}{% endblock %}{% block text %}"
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ 2 ** 10 }} {{ 'ab' * 3 }} "
        "{{ range(50000)|list|length }} {{ '%05.1f'|format(3.14159) }}{% endblock %}",
    )
    note = render(templates)
    assert note.subject == "1,234,567"
    assert note.text == "012 1024 ababab 50000 003.1\n"


def test_a_note_over_the_size_limit_is_an_error_not_a_truncated_note(templates: Path) -> None:
    renderer = NoteRenderer(templates, max_chars=300)
    with pytest.raises(TemplateProblem) as caught:
        renderer.render("birthday", None, sample_context("birthday", SETTINGS))
    assert caught.value.message == (
        "the note is longer than 300 characters (subject, text and HTML together)"
    )
    assert caught.value.file in ("birthday.j2", "_layout.j2")
    assert caught.value.line is not None


# Errors name the file and the line --------------------------------------------------------


def test_an_undefined_name_is_reported_with_its_file_and_line(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        '{% extends "_layout.j2" %}\n{% block subject %}Hi{% endblock %}\n'
        "{% block message %}Dear {{ customer.nick }}{% endblock %}\n",
    )
    problem = problem_of(templates)
    assert str(problem) == "birthday.j2:3: 'dict object' has no attribute 'nick'"
    assert (problem.file, problem.line, problem.message) == (
        "birthday.j2",
        3,
        "'dict object' has no attribute 'nick'",
    )
    assert problem.exit_code == 2


def test_a_missing_context_key_is_an_error_not_an_empty_string(templates: Path) -> None:
    values = sample_context("order_thanks", SETTINGS)
    del values["order"]
    with pytest.raises(TemplateProblem, match=r"^order_thanks\.j2:4: 'order' is undefined$"):
        NoteRenderer(templates).render("order_thanks", None, values)


def test_a_syntax_error_in_the_layout_names_the_layout(templates: Path) -> None:
    source = (templates / "_layout.j2").read_text(encoding="utf-8")
    write(templates, "_layout.j2", source.replace("{% endif %}", "{% endfi %}", 1))
    line = source.splitlines().index("{% endif %}") + 1
    problem = problem_of(templates)
    assert (problem.file, problem.line) == ("_layout.j2", line)
    assert "endfi" in problem.message


def test_an_error_inside_the_layout_names_the_layout(templates: Path) -> None:
    source = (templates / "_layout.j2").read_text(encoding="utf-8")
    write(
        templates,
        "_layout.j2",
        source.replace("{{ business.sender_name }}", "{{ business.owner }}"),
    )
    line = source.splitlines().index("{{ business.sender_name }}") + 1
    assert (
        str(problem_of(templates)) == f"_layout.j2:{line}: 'dict object' has no attribute 'owner'"
    )


def test_a_syntax_error_in_the_note_names_the_note(templates: Path) -> None:
    write(
        templates,
        "anniversary.j2",
        '{% extends "_layout.j2" %}\n\n{% block subject %}{{ x }{% endblock %}',
    )
    problem = problem_of(templates, "anniversary")
    assert (problem.file, problem.line) == ("anniversary.j2", 3)


def test_a_note_without_a_subject_or_text_is_an_error(templates: Path) -> None:
    write(templates, "check_in.j2", "{% block text %}Hello{% endblock %}")
    assert str(problem_of(templates, "check_in")) == "check_in.j2: there is no {% block subject %}"
    write(templates, "check_in.j2", "{% block subject %}Hello{% endblock %}")
    assert str(problem_of(templates, "check_in")) == "check_in.j2: there is no {% block text %}"
    write(templates, "check_in.j2", '{% extends "_layout.j2" %}{% block message %}Hi{% endblock %}')
    assert str(problem_of(templates, "check_in")) == "check_in.j2: the subject is empty"
    write(
        templates,
        "check_in.j2",
        "{% block subject %}Hi{% endblock %}{% block text %}  \n{% endblock %}",
    )
    assert str(problem_of(templates, "check_in")) == "check_in.j2: the text is empty"


def test_a_missing_template_or_parent_is_named(templates: Path) -> None:
    (templates / "check_in.j2").unlink()
    assert str(problem_of(templates, "check_in")) == (
        f"check_in.j2: no such template in {templates}: "
        "`appreciate templates add check_in.j2` copies the starter"
    )
    write(templates, "check_in.j2", '\n{% extends "_frame.j2" %}')
    assert str(problem_of(templates, "check_in")) == "check_in.j2:2: there is no template _frame.j2"


def test_an_unknown_tier_is_a_problem_of_that_note(templates: Path) -> None:
    with pytest.raises(TemplateProblem, match="unknown tier"):
        NoteRenderer(templates).render("birthday", "gold", sample_context("birthday", SETTINGS))


# Shape of the output -----------------------------------------------------------------------


def test_the_subject_is_one_trimmed_line_and_the_text_is_tidied(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        "{% block subject %}\n  Happy\n\tbirthday,\n {{ customer.first_name }}!  \n{% endblock %}"
        "{% block text %}\n\n\nFirst line   \n\n\n\nSecond\r\nThird  \n\n\n{% endblock %}",
    )
    note = render(templates)
    assert note.subject == "Happy birthday, Sam!"
    assert note.text == "First line\n\nSecond\nThird\n"
    assert note.html is None


def test_top_level_code_runs_and_each_block_renders_once(templates: Path) -> None:
    write(templates, "_parts.j2", "{% macro signed(name) %}-- {{ name }}{% endmacro %}")
    write(
        templates,
        "birthday.j2",
        '{% extends "_layout.j2" %}{% from "_parts.j2" import signed %}{% set cake = "lemon" %}'
        "{% block subject %}A {{ cake }} cake{% endblock %}"
        "{% block message %}\n{{ signed(cake) }} {{ self.subject() }}\n{% endblock %}",
    )
    note = render(templates)
    assert note.subject == "A lemon cake"
    assert "\n-- lemon A lemon cake\n" in note.text
    assert note.text.count("lemon") == 2
    assert note.html is not None
    assert "<p>-- lemon A lemon cake</p>" in note.html


def test_edited_templates_apply_on_reload_never_mid_run(templates: Path) -> None:
    """A renderer keeps the templates it compiled (a half-saved edit never fails notes in the
    middle of a run); the renderer a reload builds (SIGHUP, a new command) uses the edit."""
    renderer = NoteRenderer(templates)
    context = sample_context("check_in", SETTINGS)
    assert renderer.render("check_in", None, context).subject == "Thinking of you, Sam"
    write(
        templates,
        "check_in.j2",
        '{% extends "_layout.j2" %}{% block subject %}Hello again{% endblock %}'
        "{% block message %}Hi{% endblock %}",
    )
    later = time.time() + 5
    os.utime(templates / "check_in.j2", (later, later))
    assert renderer.render("check_in", None, context).subject == "Thinking of you, Sam"
    reloaded = NoteRenderer(templates)
    assert reloaded.render("check_in", None, context).subject == "Hello again"


def test_printing_a_fact_not_on_record_is_an_error_never_none(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        '{% extends "_layout.j2" %}{% block subject %}Hi{% endblock %}\n'
        "{% block message %}Born on {{ customer.birthday }}{% endblock %}",
    )
    context = sample_context("birthday", SETTINGS, sparse=True)
    with pytest.raises(TemplateProblem, match=r"^birthday\.j2:2: this value is None \(not on"):
        NoteRenderer(templates).render("birthday", None, context)


# Time: a deadline per note, and a stop that abandons it ----------------------------------

NESTED_LOOP = (
    "{% for a in customer.attributes.notes %}{% for b in customer.attributes.notes %}"
    "{% endfor %}{% endfor %}"
)
LONG_NOTES = "x" * 45_000


def test_a_note_that_loops_past_its_deadline_fails_with_file_and_line(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        '{% extends "_layout.j2" %}{% block subject %}Hi{% endblock %}\n'
        f"{{% block message %}}\n{NESTED_LOOP}{{% endblock %}}",
    )
    context = sample_context("birthday", SETTINGS, attributes=["notes"])
    context["customer"]["attributes"]["notes"] = LONG_NOTES
    renderer = NoteRenderer(templates, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as caught:
        renderer.render("birthday", None, context)
    assert time.perf_counter() - started < 10  # not the hours 45,000 x 45,000 steps take
    assert (caught.value.file, caught.value.line) == ("birthday.j2", 3)
    assert "took longer than 0.3 s" in caught.value.message


NOTES = "customer.attributes.notes"


@pytest.mark.parametrize(
    "loop",
    [
        f"{{% for a in {NOTES} %}}{{% for b in {NOTES} %}}{{{{ customer.first_name[0:0] }}}}"
        "{% endfor %}{% endfor %}",
        "{% macro m(n) %}{% for i in [1, 2, 3, 4, 5, 6, 7, 8, 9] %}{{ m(n - 1) if n else '' }}"
        "{% endfor %}{% endmacro %}{{ m(7) }}",
        f"{{% for a in {NOTES} %}}{{% set s %}}{{% for b in {NOTES} %}}{{% endfor %}}{{% endset %}}"
        "{% endfor %}",
    ],
    ids=["output", "calls", "captured"],
)
def test_every_kind_of_step_counts_against_the_deadline(templates: Path, loop: str) -> None:
    # Each loop runs for minutes unchecked, and draws nothing from `range`'s budget (which
    # would end it first, with another message). The deadline is generous enough that a
    # pause of the machine while the template compiles does not end the note on line 1.
    write(
        templates,
        "birthday.j2",
        f"{{% block subject %}}Hi{{% endblock %}}\n{{% block text %}}{loop}{{% endblock %}}",
    )
    context = sample_context("birthday", SETTINGS, attributes=["notes"])
    context["customer"]["attributes"]["notes"] = LONG_NOTES
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as caught:
        NoteRenderer(templates, timeout=0.5).render("birthday", None, context)
    assert time.perf_counter() - started < 10
    assert (caught.value.file, caught.value.line) == ("birthday.j2", 2)
    assert "took longer than 0.5 s" in caught.value.message


def test_the_deadline_is_the_configs_render_timeout(templates: Path) -> None:
    assert NoteRenderer.configured(templates, SETTINGS).timeout == 2.0
    late = Settings.model_validate(
        {"business": SETTINGS.business.model_dump(), "templates": {"render_timeout": "1m 30s"}}
    )
    assert NoteRenderer.configured(templates, late).timeout == 90.0


def test_a_stop_abandons_a_note_being_written_and_is_no_template_problem(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        f"{{% block subject %}}Hi{{% endblock %}}{{% block text %}}{NESTED_LOOP}{{% endblock %}}",
    )
    context = sample_context("birthday", SETTINGS, attributes=["notes"])
    context["customer"]["attributes"]["notes"] = LONG_NOTES
    stop = threading.Event()
    renderer = NoteRenderer(templates, timeout=None)  # only the stop can end it
    outcome: list[BaseException] = []

    def write_note() -> None:
        try:
            renderer.render("birthday", None, context, stop=stop)
        except BaseException as error:
            outcome.append(error)

    writer = threading.Thread(target=write_note)
    writer.start()
    stop.set()
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert [type(error) for error in outcome] == [RenderStopped]


def test_loops_still_know_their_length_and_their_else(templates: Path) -> None:
    write(
        templates,
        "birthday.j2",
        "{% block subject %}Hi{% endblock %}{% block text %}"
        "{% for c in 'abc' %}{{ loop.index }}/{{ loop.length }}{{ ' ' if not loop.last }}"
        "{% endfor %};{% for c in [] %}x{% else %}none{% endfor %};"
        "{% for k, v in customer.attributes|dictsort %}{{ k }}={{ v }}{% endfor %};"
        "{% for n in [[1, [2]], [3]] recursive %}{% if n is iterable %}{{ loop(n) }}"
        "{% else %}{{ n }}{% endif %}{% endfor %}{% endblock %}",
    )
    assert render(templates).text == "1/3 2/3 3/3;none;pet_name=Biscuit;123\n"


# Memory: what no check can bound is refused ---------------------------------------------


@pytest.mark.parametrize(
    ("bomb", "message"),
    [
        ("{{ ('\\t' * 100).expandtabs(1000) }}", "str.expandtabs is not allowed"),
        ("{{ 'abc'.translate({97: 'x' * 1000}) }}", "str.translate is not allowed"),
        ("{{ ''.maketrans('a', 'b') }}", "str.maketrans is not allowed"),
        ("{{ 'ab'.encode().expandtabs(4) }}", "bytes.expandtabs is not allowed"),
        ("{{ 'ab'.encode().translate(none) }}", "bytes.translate is not allowed"),
        ("{{ 'ab'|attr('expandtabs') }}", "str.expandtabs is not allowed"),
        ("{{ 'ab'['translate'] }}", "str.translate is not allowed"),
        ("{{ ('{0}' * 1000).format('x' * 100) }}", "the formatted text would be too long"),
        ("{{ ('{a}' * 1000).format_map({'a': 'x' * 100}) }}", "formatted text would be too"),
        ("{{ ('%(a)s' * 1000) % {'a': 'x' * 100} }}", "the formatted text would be too long"),
        ("{{ ('%(a)s' * 1000)|format(a='x' * 100) }}", "the formatted text would be too long"),
        ("{{ ('ab' * 10).encode().replace(''.encode(), ('x' * 5000).encode()) }}", "replaced"),
        ("{{ ('x' * 5000).encode().join([''.encode()] * 30) }}", "the joined text would be"),
        ("{% set l = ['x' * 1000] %}{{ l * 100 }}", "the repeated value would be too long"),
        ("{% set l = ['x' * 1000] * 40 %}{{ [l, l] }}", "as text, would be too long"),
        ("{% set l = ['x' * 1000] * 40 %}{{ [l, l]|string }}", "as text, would be too long"),
        ("{% set l = ['x' * 1000] * 40 %}{{ 'a' ~ [l, l] }}", "as text, would be too long"),
        ("{% set l = ['x' * 1000] * 40 %}{{ [[l, l]]|join }}", "the joined text would be"),
        ("{{ range(50000)|map('string')|map('center', 50000)|list|length }}", "built more than"),
        ("{% for i in range(100) %}{{ ('x' * 40000)|length }}{% endfor %}", "built more than"),
    ],
)
def test_methods_that_build_unbounded_text_are_refused_with_file_and_line(
    templates: Path, bomb: str, message: str
) -> None:
    write(
        templates,
        "birthday.j2",
        f"{{% block subject %}}Hi{{% endblock %}}\n{{% block text %}}{bomb}{{% endblock %}}",
    )
    problem = problem_of(templates)
    assert (problem.file, problem.line) == ("birthday.j2", 2)
    assert message in problem.message


# Links: the business's, never the customers' ----------------------------------------------

EVIL = "https://evil.example/pay"


def customer_supplied(kind: OccasionKind) -> dict[str, Any]:
    """A context whose every fact a customer typed carries an address."""
    context = sample_context(kind, SETTINGS, attributes=["pet_name", "website"])
    person = context["customer"]
    person.update(name=f"Sam {EVIL}", first_name=f"Sam {EVIL}")
    person["attributes"] = {"pet_name": f"Rex {EVIL}", "website": EVIL}
    if "order" in context:
        context["order"]["description"] = f"a cake, see {EVIL}"
    if "referral" in context:
        friend = context["referral"]["referred"]
        friend.update(name=f"Jo {EVIL}", first_name=f"Jo {EVIL}")
    return context


@pytest.mark.parametrize("kind", OCCASION_KINDS)
def test_no_starter_note_links_what_a_customer_wrote(kind: OccasionKind) -> None:
    note = NoteRenderer(STARTERS).render(kind, None, customer_supplied(kind))
    html = note.html or ""
    links_made = re.findall(r'<a href="([^"]*)"', html)
    allowed = {REVIEW, "https://ada.example/unsubscribe/SAMPLE-TOKEN"}
    assert set(links_made) <= allowed
    assert "https://ada.example/unsubscribe/SAMPLE-TOKEN" in links_made
    assert (REVIEW in links_made) is (kind == "follow_up")
    assert "evil.example" in html  # shown as text: a browser reads &#58; as ":"
    assert "https&#58;//evil.example/pay" in html
    assert EVIL in note.text  # the plain text is untouched


@pytest.mark.parametrize(
    "printed",
    [
        "{{ customer.attributes.website | links }}",
        "{{ self.web() | links }}",
        "{{ (customer.name ~ '!') | links }}",
        "{{ customer.attributes.website | e | links }}",
        "{{ customer.attributes.website | safe | links }}",
        "{{ customer.attributes.website | forceescape | links }}",
        "{{ customer.attributes.website.strip() | links }}",
        "{{ ('%s' % customer.attributes.website) | links }}",
        "{% set w %}{{ customer.attributes.website }}{% endset %}{{ w | links }}",
        "{{ customer.attributes | links }}",
    ],
)
def test_no_way_of_printing_a_customers_text_makes_it_a_link(templates: Path, printed: str) -> None:
    write(
        templates,
        "check_in.j2",
        "{% block subject %}Hi{% endblock %}{% block text %}Hi{% endblock %}"
        "{% block web %}{{ customer.attributes.website }}{% endblock %}"
        f"{{% block html %}}{printed} {{{{ business.review_url | links }}}}"
        "{% endblock %}",
    )
    html = render(templates, "check_in", **customer_supplied("check_in")).html or ""
    assert "evil.example" in html.lower()
    assert '<a href="https://evil' not in html.lower()
    assert f'<a href="{REVIEW}">{REVIEW}</a>' in html


def test_addresses_written_in_the_template_are_linked(templates: Path) -> None:
    write(
        templates,
        "check_in.j2",
        "{% block subject %}Hi{% endblock %}{% block text %}Hi{% endblock %}"
        "{% block words %}Our menu: https://ada.example/menu. Hi {{ customer.name }}{% endblock %}"
        "{% block html %}{{ self.words() | links }}{% endblock %}",
    )
    html = render(templates, "check_in", **customer_supplied("check_in")).html or ""
    assert '<a href="https://ada.example/menu">https://ada.example/menu</a>.' in html
    assert "Hi Sam https&#58;//evil.example/pay" in html


def test_urlize_is_gone_it_would_link_what_customers_wrote(templates: Path) -> None:
    write(
        templates,
        "check_in.j2",
        "{% block subject %}Hi{% endblock %}{% block text %}{{ customer.name | urlize }}"
        "{% endblock %}",
    )
    assert problem_of(templates, "check_in").message == "No filter named 'urlize'."
