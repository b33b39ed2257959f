"""Each block written once: the HTML pass replays what the text pass wrote (see
`scheduler.notes.html_replay`), and the note is exactly what writing every block again in HTML
gives, for the starters and for templates with blocks, loops, conditionals, filters, macros and
customer text holding addresses and HTML. Templates the replay cannot cover are written in full."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup

from scheduler.notes import html_replay
from scheduler.notes.note_context import sample_context
from scheduler.notes.render import NoteRenderer, RenderedNote, RenderStopped, TemplateProblem
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind
from tests.test_render import SETTINGS, STARTERS, customer_supplied

EVIL = "https://evil.example/pay?a=1&b=<2>"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(STARTERS, folder)
    return folder


@pytest.fixture
def replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many blocks the HTML pass replayed, one entry per replay."""
    counted: list[int] = []
    original = html_replay.html_pieces

    def counting(pieces: Iterable[str]) -> list[str] | None:
        found = original(pieces)
        if found is not None:
            counted.append(1)
        return found

    monkeypatch.setattr(html_replay, "html_pieces", counting)
    return counted


def full(folder: Path, kind: OccasionKind, tier: str | None, context: Any) -> RenderedNote:
    """The note with every block written again in the HTML pass (as before the replay)."""
    renderer = NoteRenderer(folder)
    renderer._plain_chain = lambda _name: False  # type: ignore[method-assign,assignment]
    return renderer.render(kind, tier, context)


def twice(folder: Path, kind: OccasionKind, tier: str | None, context: Any) -> RenderedNote:
    """The note written twice by one renderer (the second knows which blocks HTML asks for)."""
    renderer = NoteRenderer(folder)
    first = renderer.render(kind, tier, context)
    second = renderer.render(kind, tier, context)
    assert first == second
    return second


def contexts(kind: OccasionKind) -> list[dict[str, Any]]:
    hostile = customer_supplied(kind)
    hostile["customer"]["name"] = hostile["customer"]["first_name"] = f'<b>Sam</b> & "co" {EVIL}'
    return [
        sample_context(kind, SETTINGS),
        sample_context(kind, SETTINGS, sparse=True),
        customer_supplied(kind),
        hostile,
    ]


@pytest.mark.parametrize("tier", [None, "vip"])
@pytest.mark.parametrize("kind", OCCASION_KINDS)
def test_every_starter_note_is_the_same_replayed(
    kind: OccasionKind, tier: str | None, replays: list[int]
) -> None:
    for context in contexts(kind):
        replays.clear()
        note = twice(STARTERS, kind, tier, context)
        assert replays, "the starters' blocks are replayed"
        assert note == full(STARTERS, kind, tier, context)
        assert note.html is not None
        assert "evil.example" not in note.html or "https&#58;//evil" in note.html
        assert '<a href="https://evil' not in note.html


PLAIN_MESSAGES = {
    "loops and conditionals": """
{% for word in ["one", customer.name, "<three>"] %}
{{ loop.index }}. {{ word | upper }}{% if loop.last %}.{% else %},{% endif %}
{% endfor %}
{% if customer.attributes.pet_name is defined %}
Say hi to {{ customer.attributes.pet_name }}.
{% endif %}
""",
    "set, filters, methods, operators": """
{% set who = customer.first_name | default("there") | title %}
{% set years = customer.years_as_customer or 0 %}
Dear {{ who ~ "!" }} {{ (years * 2) | string }} & {{ who | length }} <em>literal</em>
{{ occasion.due_date.strftime("%A") }} {{ customer.name[:3] }} {{ [1, years] | sum }}
See https://ada.example/menu, or {{ business.name }} {{ customer.email }}.
""",
    "nested blocks": """
{% block inner %}Inner {{ customer.name }} https://ada.example/x{% endblock %}
{% for i in range(2) %}{{ i }}{% endfor %}
""",
}


@pytest.mark.parametrize("message", PLAIN_MESSAGES.values(), ids=PLAIN_MESSAGES.keys())
def test_plain_templates_are_replayed_and_the_same(
    templates: Path, message: str, replays: list[int]
) -> None:
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}\n'
        "{% block subject %}Hi {{ customer.first_name }}{% endblock %}\n"
        f"{{% block message %}}{message}{{% endblock %}}\n",
        encoding="utf-8",
    )
    for context in contexts("birthday"):
        context["customer"]["attributes"] = {"pet_name": f"Rex <b> {EVIL}"}
        replays.clear()
        note = twice(templates, "birthday", None, context)
        assert replays
        assert note == full(templates, "birthday", None, context)
        assert '<a href="https://evil' not in (note.html or "")


OTHER_MESSAGES = {
    "a macro": "{% macro b(x) %}<b>{{ x }}</b>{% endmacro %}{{ b(customer.name) }}",
    "a call block": (
        "{% macro box() %}<div>{{ caller() }}</div>{% endmacro %}"
        "{% call box() %}{{ customer.name }}{% endcall %}"
    ),
    "a captured set": "{% set x %}<i>{{ customer.name }}</i>{% endset %}{{ x }} {{ x | upper }}",
    "a filter block": "{% filter upper %}<i>{{ customer.name }}</i>{% endfilter %}",
    "self": "{{ self.subject() }} {{ self.greeting() | upper }}",
    "escape filters": "{{ customer.name | e }} {{ customer.name | safe }} {{ 'a<b>' | e }}",
    "links": "{{ customer.name | links }} {{ business.review_url | links }}",
    "paragraphs": "{{ customer.name | paragraphs }}",
    "join and replace": "{{ [customer.name, '<b>'] | join(' & ') }} {{ 'x' | replace('x', '<') }}",
    "a constant": '{{ "<b>bold</b> https://ada.example" }}',
    "a namespace": (
        "{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set ns.n = ns.n + x %}"
        "{% endfor %}{{ ns.n }}"
    ),
    "a cycler": "{% set c = cycler('<a>', 'b') %}{{ c.next() }}{{ c.next() }}",
    "autoescape": "{% autoescape false %}{{ customer.name }}{% endautoescape %}",
    "super": "{{ super() }}",
}


@pytest.mark.parametrize("message", OTHER_MESSAGES.values(), ids=OTHER_MESSAGES.keys())
def test_other_templates_are_written_in_full_and_the_same(
    templates: Path, message: str, replays: list[int]
) -> None:
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}\n'
        "{% block subject %}Hi {{ customer.first_name }}{% endblock %}\n"
        f"{{% block message %}}{message}\n{{% endblock %}}\n",
        encoding="utf-8",
    )
    for context in contexts("birthday"):
        replays.clear()
        note = twice(templates, "birthday", None, context)
        assert not replays
        assert note == full(templates, "birthday", None, context)


def test_a_macro_imported_at_the_top_is_written_in_full(
    templates: Path, replays: list[int]
) -> None:
    (templates / "_macros.j2").write_text(
        "{% macro b(x) %}<b>{{ x }}</b>{% endmacro %}", encoding="utf-8"
    )
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}{% import "_macros.j2" as m %}\n'
        "{% block subject %}Hi{% endblock %}\n"
        "{% block message %}{{ m.b(customer.name) }}{% endblock %}\n",
        encoding="utf-8",
    )
    context = contexts("birthday")[3]
    note = twice(templates, "birthday", None, context)
    assert not replays
    assert note == full(templates, "birthday", None, context)
    assert "<p><b>&lt;b&gt;Sam" in (note.html or "")


def test_markup_in_the_context_is_written_in_full(templates: Path, replays: list[int]) -> None:
    context = sample_context("birthday", SETTINGS)
    context["customer"]["first_name"] = Markup("<b>Sam</b>")
    note = twice(templates, "birthday", None, context)
    assert note == full(templates, "birthday", None, context)
    assert "<p>Hi <b>Sam</b>,</p>" in (note.html or "")


def test_a_block_the_text_does_not_write_runs_in_html(templates: Path) -> None:
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}\n'
        "{% block subject %}Hi{% endblock %}\n"
        "{% block message %}Hello {{ customer.name }}{% endblock %}\n"
        "{% block html %}{{ self.message() }} / {{ self.extra() }}{% endblock %}\n"
        "{% block extra %}{{ customer.name }} <i>only in html</i>{% endblock %}\n",
        encoding="utf-8",
    )
    context = contexts("birthday")[3]
    note = twice(templates, "birthday", None, context)
    assert note == full(templates, "birthday", None, context)
    assert "&lt;b&gt;Sam" in (note.html or "")


def test_the_size_limit_still_counts_the_html(templates: Path) -> None:
    context = sample_context("birthday", SETTINGS)
    note = NoteRenderer(templates).render("birthday", None, context)
    assert note.html is not None
    size = len(note.subject) + len(note.text) + len(note.html)
    exact = NoteRenderer(templates, max_chars=size + 64)  # + what tidying took away
    assert exact.render("birthday", None, context) == note
    assert exact.render("birthday", None, context) == note
    short = NoteRenderer(templates, max_chars=size - 1)
    for _ in range(2):
        with pytest.raises(TemplateProblem, match="longer than"):
            short.render("birthday", None, context)


def test_a_stop_still_stops_a_replayed_note(templates: Path) -> None:
    renderer = NoteRenderer(templates)
    context = sample_context("birthday", SETTINGS)
    renderer.render("birthday", None, context)
    stop = threading.Event()
    stop.set()
    with pytest.raises(RenderStopped):
        renderer.render("birthday", None, context, stop=stop)


def test_a_top_level_that_does_more_than_extend_still_runs(templates: Path) -> None:
    """A `{% set %}` or an error at the top level: the top level runs as before."""
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}{% set cake = "lemon <cake>" %}\n'
        "{% block subject %}Hi{% endblock %}\n"
        "{% block message %}A {{ cake }} for {{ customer.name }}{% endblock %}\n",
        encoding="utf-8",
    )
    context = contexts("birthday")[3]
    note = twice(templates, "birthday", None, context)
    assert note == full(templates, "birthday", None, context)
    assert "A lemon &lt;cake&gt; for &lt;b&gt;Sam" in (note.html or "")
    (templates / "order_thanks.j2").write_text(
        '{% extends "_layout.j2" %}{{ not_there.at_all }}\n'
        "{% block subject %}Hi{% endblock %}{% block message %}Thanks{% endblock %}\n",
        encoding="utf-8",
    )
    renderer = NoteRenderer(templates)
    for _ in range(2):
        note = renderer.render("order_thanks", None, sample_context("order_thanks", SETTINGS))
        assert "Thanks" in note.text
