"""Writing a note's blocks once: the HTML version reuses what the text pass wrote.

A note's HTML is written by the `html` block in an environment that escapes what it prints;
the starters' `html` block prints `self.greeting()`, `self.message()` and `self.signature()`,
blocks the text pass has just written. Instead of writing them again, the HTML pass replays
the text pass's output of each such block, as the HTML environment would have written it:

- Template text (the template's own words and tags) is the same in both environments.
- A value printed by `{{ ... }}` is, in HTML, the same value escaped and defused for `links`
  (`scheduler.notes.note_links.defused`): the text pass keeps each printed value beside its
  text (`Printed`), so the HTML of a piece is `defused(value)`, exactly what the HTML
  environment's `{{ ... }}` makes of it.

That equivalence holds only when a block computes the same values in both environments,
i.e. when nothing along the way makes or handles Markup (escaped text) differently: macros,
`{% call %}`, `{% filter %}`, captured `{% set %}` blocks and `self.x()` return Markup in HTML
and plain text in the text pass; `e`, `safe`, `links`, `paragraphs`, `join`... behave
differently on Markup. So a template is replayed only when every file it is made of (the note
and the files it extends) passes `shape`, which allows, outside the `html` block:
`{% extends "constant name" %}`, blocks (not scoped), text, `{{ ... }}`, `{% if %}`,
`{% for %}` (not recursive), `{% set x = ... %}` (a plain assignment), and expressions built
from names, attributes, items, literals, operators, tests, the filters in PLAIN_FILTERS,
`range(...)` and method calls (`date.strftime(...)`); and nothing printed by `{{ ... }}` may be
a constant (Jinja folds it into the template text, escaped in HTML). At run time a printed
value that is Markup (which a context value never is) also stops the replay. Anything else:
the HTML pass writes every block again, as before. The `html` block itself always runs in the
HTML environment; only the blocks it calls are replayed.

Each block's output is the same whichever pass writes it because, under these rules, a block
is a pure function of the note's context (no macro, cycler, joiner or namespace can carry
state from one block to the next).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, nodes
from markupsafe import Markup

from scheduler.notes.note_links import defused

HTML_BLOCK = "html"
"""The block only the HTML pass writes: its body is not checked (it runs for real)."""

PLAIN_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "first",
        "float",
        "int",
        "last",
        "length",
        "list",
        "lower",
        "max",
        "min",
        "reverse",
        "round",
        "sort",
        "string",
        "sum",
        "title",
        "trim",
        "truncate",
        "unique",
        "upper",
        "wordcount",
    }
)
"""Filters that, given no Markup, return the same value in either environment (and no Markup)."""

_CALLABLE_NAMES = frozenset({"range"})
"""Globals a replayed block may call (`range` returns numbers)."""
_UNSAFE_NAMES = frozenset({"self", "super", "caller", "varargs", "kwargs"})
_EXPRESSIONS = (
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Const,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Concat,
    nodes.Test,
    nodes.Filter,
    nodes.Call,
)


class Printed(str):
    """A piece of the text pass's output printed by `{{ ... }}`: its text, and the value it
    was printed from (`source`), from which the HTML environment would have printed
    `defused(source)`."""

    source: Any

    def __new__(cls, value: Any) -> Printed:
        piece = super().__new__(cls, value)
        piece.source = value
        return piece


@dataclass(frozen=True)
class Shape:
    """What `shape` found in one file: whether its code allows replaying (outside the html
    block), the file it extends, if any, and whether its top level is bare: nothing but
    `{% extends %}`, blocks and template text (running it only registers the blocks)."""

    plain: bool
    parent: str | None
    bare: bool = False


def shape(template: nodes.Template, environment: Environment) -> Shape:
    """The file's shape (see the module's rules), from its parsed form, before compiling;
    `environment` is the text pass's (to tell which printed expressions are constants)."""
    parent: str | None = None
    for node in template.body:
        if isinstance(node, nodes.Extends):
            if not isinstance(node.template, nodes.Const) or not isinstance(
                node.template.value, str
            ):
                return Shape(plain=False, parent=None)
            parent = node.template.value
    # An {% extends %} anywhere but at the top level (in an {% if %}): not a constant chain.
    extends = list(template.find_all(nodes.Extends))
    if len(extends) > 1 or (extends and extends[0] not in template.body):
        return Shape(plain=False, parent=None)
    plain = all(_plain_statement(node, environment) for node in template.body)
    bare = all(
        isinstance(node, nodes.Extends | nodes.Block)
        or (
            isinstance(node, nodes.Output)
            and all(isinstance(child, nodes.TemplateData) for child in node.nodes)
        )
        for node in template.body
    )
    return Shape(plain=plain, parent=parent, bare=bare)


def _plain_statement(node: nodes.Node, environment: Environment) -> bool:
    if isinstance(node, nodes.Block):
        return node.name == HTML_BLOCK or (not node.scoped and _plain_body(node.body, environment))
    if isinstance(node, nodes.Output):
        return all(_plain_output(child, environment) for child in node.nodes)
    if isinstance(node, nodes.If):
        return (
            _plain_expression(node.test)
            and _plain_body(node.body, environment)
            and _plain_body(node.elif_, environment)
            and _plain_body(node.else_, environment)
        )
    if isinstance(node, nodes.For):
        return (
            not node.recursive
            and _plain_target(node.target)
            and _plain_expression(node.iter)
            and (node.test is None or _plain_expression(node.test))
            and _plain_body(node.body, environment)
            and _plain_body(node.else_, environment)
        )
    if isinstance(node, nodes.Assign):  # a plain name: `ns.x` would carry state between blocks
        return _plain_target(node.target) and _plain_expression(node.node)
    return isinstance(node, nodes.Extends)


def _plain_body(body: Iterable[nodes.Node], environment: Environment) -> bool:
    return all(_plain_statement(child, environment) for child in body)


def _plain_target(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Name):
        return node.name not in _UNSAFE_NAMES
    return isinstance(node, nodes.Tuple) and all(_plain_target(item) for item in node.items)


def _plain_output(node: nodes.Expr, environment: Environment) -> bool:
    if isinstance(node, nodes.TemplateData):
        return True
    if not _plain_expression(node):
        return False
    try:  # a constant is folded into the text when compiled: escaped in HTML, not here
        node.as_const(nodes.EvalContext(environment))
    except Exception:  # Impossible, or an error left for run time
        return True
    return False


def _plain_expression(node: nodes.Node) -> bool:
    for item in _walk(node):
        if not isinstance(item, _EXPRESSIONS):
            return False
        if isinstance(item, nodes.Name) and item.name in _UNSAFE_NAMES:
            return False
        if isinstance(item, nodes.Filter) and item.name not in PLAIN_FILTERS:
            return False
        if isinstance(item, nodes.Call) and not (
            isinstance(item.node, nodes.Getattr)
            or (isinstance(item.node, nodes.Name) and item.node.name in _CALLABLE_NAMES)
        ):
            return False
        if isinstance(item, nodes.Call) and (item.dyn_args or item.dyn_kwargs):
            return False
    return True


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def html_pieces(pieces: Iterable[str]) -> list[str] | None:
    """The HTML environment's output for the text pass's `pieces` of one block, or None when
    a printed value was Markup (see the module's rules)."""
    html: list[str] = []
    for piece in pieces:
        if piece.__class__ is Printed:
            source = piece.source
            if isinstance(source, Markup):
                return None
            html.append(defused(source))
        else:
            html.append(piece)
    return html


class BlockRecorder:
    """Keeps, for each block the text pass writes (of those in `wanted`, or all when None),
    the pieces it wrote (see the module's rules): a block written twice (or left unfinished)
    is not kept."""

    def __init__(self, wanted: frozenset[str] | None = None) -> None:
        self.wanted = wanted
        self.written: dict[str, list[str] | None] = {}

    def wants(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def wrap(
        self, name: str, block: Callable[[Any], Generator[str, None, None]]
    ) -> Callable[[Any], Generator[str, None, None]]:
        written = self.written

        def recorded(context: Any) -> Generator[str, None, None]:
            pieces: list[str] = []
            inner = block(context)
            for piece in inner:
                pieces.append(piece)
                try:
                    yield piece
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as error:  # thrown in by the renderer (too long, too
                    inner.throw(error)  # late): raised where the template is, for its line
                    raise
            written[name] = None if name in written else pieces

        return recorded


def replay(
    pieces: list[str], block: Callable[[Any], Iterator[str]]
) -> Callable[[Any], Iterator[str]]:
    """A block function for the HTML pass that writes the text pass's `pieces` as HTML, or
    runs `block` (the block itself) when they cannot be replayed."""

    def replayed(context: Any) -> Iterator[str]:
        html = html_pieces(pieces)
        return block(context) if html is None else iter(html)

    return replayed
