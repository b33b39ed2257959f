"""Tables drawn directly (scheduler.plain_table) look exactly as rich's own Table draws them,
on a terminal (with its bold header) and off one, for any text and any width."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from scheduler.plain_table import PlainTable

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
PLAIN_WORDS = st.text(st.sampled_from("abc XYZ-é日本😀:"), min_size=1, max_size=12)


def drawn(renderable: object, width: int, terminal: bool, *, soft_wrap: bool = True) -> str:
    console = Console(
        file=io.StringIO(),
        width=width,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        highlight=False,
        soft_wrap=soft_wrap,
        emoji=False,
    )
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def same_either_way(table: PlainTable, width: int, terminal: bool) -> None:
    """The same on a console set as the commands' (soft wrap) and on a plain one."""
    for soft_wrap in (True, False):
        ours = drawn(table, width, terminal, soft_wrap=soft_wrap)
        assert ours == drawn(table.rich_table(), width, terminal, soft_wrap=soft_wrap)


@st.composite
def tables(draw: st.DrawFn, cells: st.SearchStrategy[str]) -> PlainTable:
    columns = draw(st.integers(1, 5))
    headers = draw(st.lists(cells, min_size=columns, max_size=columns))
    rows = draw(st.lists(st.lists(cells, min_size=columns, max_size=columns), max_size=6))
    title = draw(st.none() | cells)
    return PlainTable(title, headers, rows)


@settings(max_examples=400, deadline=None)
@given(tables(PLAIN_WORDS), st.integers(10, 120), st.booleans())
def test_a_table_of_words_looks_as_rich_draws_it(
    table: PlainTable, width: int, terminal: bool
) -> None:
    same_either_way(table, width, terminal)


@settings(max_examples=400, deadline=None)
@given(tables(TEXT), st.integers(1, 120), st.booleans())
def test_a_table_of_any_text_looks_as_rich_draws_it(
    table: PlainTable, width: int, terminal: bool
) -> None:
    same_either_way(table, width, terminal)


class DirectOnly(PlainTable):
    """A table that fails when it is left to rich's Table."""

    def rich_table(self) -> Table:
        raise AssertionError("drawn by rich's Table, not directly")


def test_the_sent_log_fits_a_wide_pipe_and_is_drawn_directly() -> None:
    rows = [
        [str(n), "11-23 12:00", f"C-{n}", "birthday", "sent", "Happy birthday!", "250 Ok"]
        for n in range(50)
    ]
    table = DirectOnly(
        "Sent-log: 50 notes",
        ["id", "when", "customer id", "kind", "status", "subject", "reason"],
        rows,
    )
    output = drawn(table, 160, terminal=False)
    assert output == drawn(
        PlainTable(table.title, table.headers, table.rows).rich_table(), 160, False
    )
    assert drawn(table, 160, terminal=True).count("\x1b[1m") == 7 * 2 + 5  # the bold header
    lines = output.splitlines()
    assert lines[0].rstrip() == "Sent-log: 50 notes"
    assert lines[2].split() == [
        "id",
        "when",
        "customer",
        "id",
        "kind",
        "status",
        "subject",
        "reason",
    ]
    assert lines[4].split()[:3] == ["0", "11-23", "12:00"]
    assert len(lines) == 2 + 2 + 50 + 1


def test_a_table_too_wide_for_the_screen_is_wrapped_as_rich_wraps_it() -> None:
    table = PlainTable("Notes", ["id", "subject"], [["1", "word " * 30]])
    same_either_way(table, 40, terminal=True)
    narrow = drawn(table, 40, terminal=False, soft_wrap=False)
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert narrow.count("word") == 30
