"""A table of plain text cells, drawn exactly as rich draws `Table(box=SIMPLE_HEAD,
pad_edge=False, title_justify="left")` of `Text` cells, at a small part of the cost.

rich lays out every cell of a table as a general renderable (measure, pad, wrap, crop): about
3.7 million instructions a row, so drawing `appreciate log`'s 50 rows cost more than starting
Python five times. Most tables fit their width with every cell on one line; then the columns are
as wide as their widest cell and each line can be written directly.

Rules:
- Drawn directly only when the table fits `options.max_width` with every cell on one line: no
  cell or title holding a line break, a tab or a control character, no title wider than the
  table or with space at either end. Anything else is drawn by rich's own Table, with the same
  settings, so the two ways can never look different (tests/test_plain_table.py compares them,
  on a terminal and off one, for any text).
- Cells are written as given: escaping customer text (`printable`) is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

BOX = box.SIMPLE_HEAD
HEADER_STYLE = "table.header"
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""What rich would break, expand or treat specially: line breaks, tabs, control characters."""


class PlainTable:
    """`headers` over `rows` (each a row of cells, as many as headers) under an optional
    `title`; a rich renderable, printed with `console.print`."""

    def __init__(
        self, title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]]
    ) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows = [list(row) for row in rows]

    def rich_table(self) -> Table:
        """The same table as rich's own, for what cannot be drawn directly."""
        from rich.table import Table  # noqa: PLC0415 - loaded only when needed (start-up)

        table = Table(
            title=Text(self.title) if self.title else None,
            title_justify="left",
            box=BOX,
            pad_edge=False,
        )
        for header in self.headers:
            table.add_column(header)
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self._one_line_widths()
        padded = _padded(widths) if widths else []
        table_width = sum(padded) + len(padded) + 1  # a divider between columns, two edges
        if not widths or table_width > options.max_width or not self._title_fits(table_width):
            yield self.rich_table()
            return
        if self.title:
            title_options = options.update(width=table_width, highlight=False, height=None)
            yield from console.render(Text(self.title), title_options.update(justify="left"))
        yield from self._lines(console, options, widths, padded)

    def _title_fits(self, table_width: int) -> bool:
        """No title, or one rich would write on one line as it is."""
        title = self.title
        return not title or (cell_len(title) <= table_width and title == title.strip())

    def _one_line_widths(self) -> list[int] | None:
        """Each column's width of text (without padding), or None when a cell or the title
        cannot be drawn on one line as written or a column would be empty."""
        if not self.headers or any(len(row) != len(self.headers) for row in self.rows):
            return None
        texts = [*self.headers, *(cell for row in self.rows for cell in row)]
        if self.title:
            texts.append(self.title)
        if any(_NOT_ONE_LINE.search(text) for text in texts):
            return None
        widths = [cell_len(header) for header in self.headers]
        for row in self.rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], cell_len(cell))
        return widths if all(widths) else None

    def _lines(
        self, console: Console, options: ConsoleOptions, widths: list[int], padded: list[int]
    ) -> Iterator[Segment]:
        edges = BOX.substitute(options, safe=console.safe_box)
        border = Style.null()
        header_style = console.get_style(HEADER_STYLE)
        new_line = Segment.line()
        yield Segment(edges.get_top(padded), border)
        yield new_line
        head = (edges.head_left, edges.head_vertical, edges.head_right)
        yield from self._row(self.headers, widths, header_style, border, head)
        yield new_line
        yield Segment(edges.get_row(padded, "head", edge=True), border)
        yield new_line
        body = (edges.mid_left, edges.mid_vertical, edges.mid_right)
        for row in self.rows:
            yield from self._row(row, widths, None, border, body)
            yield new_line
        yield Segment(edges.get_bottom(padded), border)
        yield new_line

    def _row(
        self,
        cells: Sequence[str],
        widths: list[int],
        style: Style | None,
        border: Style,
        edges: tuple[str, str, str],
    ) -> Iterator[Segment]:
        """One line: the left edge, each cell padded (in the cell's style) with a divider
        between them, the right edge; the segments split as rich's are."""
        left, divider, right = edges
        pad_style = style or border
        last = len(cells) - 1
        yield Segment(left, border)
        for index, cell in enumerate(cells):
            if index:
                yield Segment(divider, border)
                yield Segment(" ", pad_style)
            yield Segment(cell + " " * (widths[index] - cell_len(cell)), style)
            if index < last:
                yield Segment(" ", pad_style)
        yield Segment(right, border)


def _padded(widths: list[int]) -> list[int]:
    """The columns' widths with their padding: one space either side, none at the edges."""
    last = len(widths) - 1
    return [width + (index > 0) + (index < last) for index, width in enumerate(widths)]
