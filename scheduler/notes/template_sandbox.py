"""The sandbox note templates run in: no way out to Python, nothing bigger than a note, and no
note that takes longer than its deadline.

On top of Jinja's `ImmutableSandboxedEnvironment` (no attribute starting with `_`, no internal
attribute such as a function's globals, no changing a dict, list or set):
- Time (see `scheduler.notes.render_limits`): each `{% for %}` item, call, attribute, operator and
  piece of output checks the note's deadline and whether appreciate is stopping; `range` hands
  out at most RANGE_BUDGET numbers per note in all.
- No single operation builds a string or list longer than `limit`. Where the size is known
  before the work is done it is checked first: `*` and `**`, joining, replacing, padding and
  format widths, the fields a format repeats (`'{0}{0}'.format(x)`, `'%(a)s%(a)s' % d`), a
  list or dict turned into text (printed, joined, formatted, `~`), output captured by
  `{% set %}...{% endset %}`, macros and filter blocks. The rest (`+`, `~`, any call's result)
  is checked right after, so it can only double in one step.
- The string and bytes methods whose output no check can bound are refused: `expandtabs`
  (each tab becomes up to `tabsize` spaces), `translate` (each character may become a long
  string) and `maketrans` (which builds such tables).
- Numbers passed to a method of a string, number or list (a padding width, a byte length) or to
  a filter that pads or repeats may not exceed `limit`; integers stay below 2**MAX_INT_BITS.
- `{{ ... }}` may not print None (an optional fact not on record): the note would say "None".
- In HTML, what `{{ ... }}` prints from the context is defused for `links` (see
  `scheduler.notes.note_links`), and so is what `e`, `forceescape` and `safe` make of it.
- In the text environment, what `{{ ... }}` prints keeps the value it was printed from
  (`html_replay.Printed`), so that the HTML pass can replay a block instead of writing it again.
- `lipsum`, `tojson` and `urlize` are gone: a note has no use for filler text or JSON, and
  `urlize` would link what customers wrote (`links` links the business's addresses only).

A refusal is a `jinja2.exceptions.SecurityError` (printing None: a `TemplateRuntimeError`); the
renderer reports it with file and line. The note's total output is capped by the renderer, which
reads it as it is written. `~`, captured output and `{% for %}` are checked through small hooks
in Jinja's code generator (`visit_Concat`, `buffer`, `visit_For`); tests/test_render.py covers
each rule.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import update_wrapper, wraps
from itertools import chain
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import BlockReference, Context, TemplateReference, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from scheduler.notes.html_replay import Printed, Shape, shape
from scheduler.notes.note_links import DEFUSED_SCHEME, BusinessText, defused, html_links, links
from scheduler.notes.render_limits import CHECK_EVERY, RANGE_BUDGET, budgeted_range, check, spend

__all__ = ["MAX_INT_BITS", "RANGE_BUDGET", "NoteSandbox"]

MAX_INT_BITS = 10_000
"""Integers a template computes stay below 2**MAX_INT_BITS (about 3,000 digits)."""
_SIZED = (str, bytes, list, tuple)
_TEXTS = (str, bytes)
_CONTAINERS = (list, tuple, dict, set, frozenset)
_BUILTIN_VALUES = (str, bytes, int, float, list, tuple, dict)
_PERCENT_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?([a-zA-Z%]?)")
AMPLIFYING = frozenset({"expandtabs", "translate", "maketrans"})
"""String and bytes methods refused in a note: no check can bound what they build."""
_CALL_KEYWORDS = frozenset({"_block_vars", "_loop_vars"})
"""What Jinja's generated code passes to every call besides its arguments (dropped there)."""
_ITEM_FIRST: dict[type, frozenset[str]] = {
    cls: frozenset(dir(cls)) for cls in (dict, TemplateReference)
}
"""Classes whose instances have no attribute of their own (but private ones): a name that
is not one of the class's is looked up as an item (see `NoteSandbox.getattr`)."""


def text_size(value: Any, cap: int) -> int:
    """About how many characters `str(value)` has (strings and bytes exactly, a list or dict
    as the sum of its items and separators), counted without building it; stops counting
    once past `cap`."""
    total = 0
    pending = [value]
    while pending and total <= cap:
        item = pending.pop()
        if isinstance(item, _TEXTS):
            total += len(item) + 4
        elif isinstance(item, dict):
            total += 4 * len(item) + 2
            pending.extend(chain.from_iterable(item.items()))
        elif isinstance(item, _CONTAINERS):
            total += 2 * len(item) + 2
            pending.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 2
        else:
            total += 40  # a date, a float, a boolean: short
    return total


def content_size(sequence: Any) -> int:
    """The characters a string, bytes or list holds (a list: its strings' lengths, 1 for any
    other item), as repeating it with `*` multiplies them."""
    if isinstance(sequence, _TEXTS):
        return len(sequence)
    return sum(len(item) if isinstance(item, _TEXTS) else 1 for item in sequence)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `a ~ b` and captured output checked against the limit, and
    every `{% for %}` item checked against the note's deadline."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded({join}((")
        for part in node.nodes:
            self.write("environment.as_text(")
            self.visit(part, frame)
            self.write("), ")
        self.write(")))")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        """In the text environment, what `{{ ... }}` prints keeps the value it was printed
        from (`html_replay.Printed`), so the HTML pass can replay the block."""
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("environment.printed_text(")
        if finalize.src is not None:
            self.write(finalize.src)

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        """The loop runs over `environment.loop_items(ITERABLE)` (Jinja allows no node types
        of our own, so the wrapping is a call of an environment attribute)."""
        if not _is_guarded(node.iter):
            lineno = node.iter.lineno
            guard = nodes.EnvironmentAttribute(LOOP_ITEMS, lineno=lineno)
            node.iter = nodes.Call(guard, [node.iter], [], None, None, lineno=lineno)
        super().visit_For(node, frame)


LOOP_ITEMS = "loop_items"


def _is_guarded(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == LOOP_ITEMS
    )


class _CheckedItems:
    """An iterable whose every item first checks the note's deadline; its length is the
    original's (for `loop.length`)."""

    __slots__ = ("items",)

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            check()
            yield item


class _BoundedBuffer(list[str]):
    """Where macros, `{% set %}` blocks and filter blocks collect their output: counted as it
    arrives, so a loop cannot pile up gigabytes before the result is checked."""

    def __init__(self, sandbox: NoteSandbox) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.size = 0

    def append(self, piece: str) -> None:
        self._count(piece)
        super().append(piece)

    def extend(self, pieces: Iterable[str]) -> None:
        for piece in pieces:
            self.append(piece)

    def _count(self, piece: str) -> None:
        if not len(self) % CHECK_EVERY:
            check()
        self.size += len(piece) if isinstance(piece, str) else 0
        if self.size > self.sandbox.limit:
            raise self.sandbox.refuse("the output captured here is too long")


class NoteSandbox(ImmutableSandboxedEnvironment):
    """The environment note templates are compiled and run in (see the module's rules)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, loader: BaseLoader, *, autoescape: bool, limit: int) -> None:
        super().__init__(
            loader=loader,
            autoescape=autoescape,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Compiled once per renderer: the daemon takes up edited templates on SIGHUP, after
            # checking them, never half-saved in the middle of a run.
            auto_reload=False,
            finalize=self._printed_html if autoescape else self._printed,
        )
        self.limit = limit
        self.shapes: dict[str | None, Shape] = {}
        """Each compiled file's shape, for replaying blocks in HTML (text environment only)."""
        self.globals["range"] = budgeted_range
        self.globals.pop("lipsum", None)
        self.concat = self._bounded_concat  # type: ignore[method-assign]
        filters = self.filters
        filters["center"] = self._checked_numbers(filters["center"])
        filters["batch"] = self._checked_numbers(filters["batch"])
        filters["slice"] = self._checked_numbers(filters["slice"])
        filters.pop("tojson", None)  # JSON for a <script>: nothing a note needs
        filters.pop("urlize", None)  # links what customers wrote: `links` is the note's filter
        filters["truncate"] = self._checked_numbers(filters["truncate"])
        filters["wordwrap"] = self._checked_numbers(filters["wordwrap"])
        filters["indent"] = self._checked_indent(filters["indent"])
        filters["format"] = self._checked_format(filters["format"])
        filters["join"] = self._checked_join(filters["join"])
        filters["replace"] = self._checked_replace(filters["replace"])
        for name in ("string", "pprint"):
            filters[name] = self._checked_text(filters[name])
        filters["links"] = links
        if autoescape:
            filters["links"] = html_links
            filters["e"] = filters["escape"] = defused
            filters["forceescape"] = self._defusing(filters["forceescape"])
            filters["safe"] = self._defusing(filters["safe"])
        for name, function in filters.items():
            filters[name] = _counting_text(function)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        if not self.autoescape:  # read before the code generator changes the tree
            self.shapes[name] = shape(source, self)
        return super()._generate(source, name, filename, defer_init)

    # What {{ ... }} prints --------------------------------------------------------------------

    @staticmethod
    def printed_text(value: Any) -> Printed:
        """A printed value's text in the text environment, knowing its value (see
        `scheduler.notes.html_replay`)."""
        return Printed(value)

    def _printed(self, value: Any) -> Any:
        """What `{{ ... }}` prints, unless it is None (a note never says "None") or a list or
        dict whose text would be too long. (The output it joins is checked against the
        deadline as the renderer collects it.)"""
        if value.__class__ is str:  # by far the most common: no list, no None
            return value
        if value is None:
            raise TemplateRuntimeError(
                "this value is None (not on record for this customer): "
                "print it inside {% if ... %} so the note reads well without it"
            )
        return self.as_text(value)

    def _printed_html(self, value: Any) -> Any:
        """`_printed`, escaped and defused for `links` (see `scheduler.notes.note_links`)."""
        return defused(self._printed(value))

    def _defusing(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """A filter that makes Markup (`safe`, `forceescape`), defusing what it makes of a
        value that is not the business's own."""

        @wraps(original)
        def defusing(value: Any, *args: Any, **kwargs: Any) -> Any:
            made = original(value, *args, **kwargs)
            if isinstance(value, BusinessText) or not isinstance(made, Markup):
                return made
            return Markup(str(made).replace("://", DEFUSED_SCHEME))  # noqa: S704 - was Markup

        return defusing

    # Sizes ----------------------------------------------------------------------------------

    def refuse(self, what: str) -> SecurityError:
        return SecurityError(f"{what}: a note may hold at most {self.limit:,} characters")

    def bounded(self, value: Any) -> Any:
        """`value`, unless it is a string or list longer than the limit; text counts against
        the note's budget of text built along the way (`render_limits.spend`)."""
        if isinstance(value, _SIZED):
            if len(value) > self.limit:
                raise self.refuse(f"a value of {len(value):,} characters or items is too long")
            spend(len(value))
        return value

    def as_text(self, value: Any) -> Any:
        """`value`, unless it is a list or dict whose text would be longer than the limit (a
        list of 50,000 copies of a long string is small; its text is gigabytes)."""
        if isinstance(value, _CONTAINERS) and text_size(value, self.limit) > self.limit:
            raise self.refuse("this list or dict, as text, would be too long")
        return value

    def output_buffer(self) -> list[str]:
        """A new buffer for captured output (see `_BoundedBuffer`)."""
        return _BoundedBuffer(self)

    def loop_items(self, items: Any) -> Any:
        """A `{% for %}` loop's items, each checking the note's deadline (see `_CheckedItems`)."""
        check()
        if isinstance(items, Undefined):
            return items  # iterating it raises the usual "... is undefined"
        return _CheckedItems(items)

    def _bounded_concat(self, parts: Iterable[str]) -> str:
        """Captured output joined, counted before it is joined."""
        pieces = []
        total = 0
        for part in parts:
            total += len(part)
            if total > self.limit:
                raise self.refuse("the output captured here is too long")
            pieces.append(part)
        return "".join(pieces)

    def _check_numbers(self, values: Iterable[Any]) -> None:
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > self.limit:
                raise self.refuse(f"the number {value} is too large here")

    def _check_joined(self, separator: str | bytes, items: list[Any]) -> None:
        size = len(separator) * max(len(items) - 1, 0)
        for item in items:
            size += len(item) if isinstance(item, _TEXTS) else text_size(item, self.limit)
            if size > self.limit:
                raise self.refuse("the joined text would be too long")

    def _check_replaced(self, text: str | bytes, old: Any, new: Any, count: int | None) -> None:
        found = len(text) + 1 if len(old) == 0 else text.count(old)
        if count is not None and count >= 0:
            found = min(found, count)
        if len(text) + found * (len(new) - len(old)) > self.limit:
            raise self.refuse("the replaced text would be too long")

    def _check_percent_format(self, template: str, values: Any = None) -> None:
        """A `%` format's widths, and (given its `values`) the text its fields would print:
        a mapping's value may be printed by any number of fields."""
        widths = 0
        printed = len(template)
        for match in _PERCENT_SPEC.finditer(template):
            key, width, precision, conversion = match.groups()
            for number in (width, precision):
                if number == "*":
                    raise SecurityError("a width taken from the arguments (*) is not allowed")
                widths += int(number or 0)
            if key is not None and isinstance(values, Mapping) and conversion != "%":
                printed += text_size(values.get(key), self.limit)
        if values is not None and not isinstance(values, Mapping):
            printed += text_size(values, self.limit)  # a tuple's items are each printed once
        if widths > self.limit:
            raise self.refuse("the format's widths are too large")
        if printed > self.limit:
            raise self.refuse("the formatted text would be too long")

    def _check_brace_format(self, template: str) -> None:
        widths = 0
        for _, _, spec, _ in string.Formatter().parse(template):
            if spec and "{" in spec:
                raise SecurityError("a width taken from the arguments is not allowed")
            widths += sum(int(number) for number in re.findall(r"\d+", spec or ""))
        if widths > self.limit:
            raise self.refuse("the format's widths are too large")

    def _check_brace_output(
        self, template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        """The text `template.format(*args, **kwargs)` would print, counted before: each field
        prints at most its whole argument, and one argument may fill many fields."""
        printed = 0
        automatic = 0
        for literal, field, _, _ in string.Formatter().parse(template):
            printed += len(literal)
            if field is None:
                continue
            name = re.split(r"[.\[]", field, maxsplit=1)[0]
            value: Any = None
            if name == "":
                value = args[automatic] if automatic < len(args) else None
                automatic += 1
            elif name.isdigit():
                value = args[int(name)] if int(name) < len(args) else None
            else:
                value = kwargs.get(name)
            printed += text_size(value, self.limit)
            if printed > self.limit:
                raise self.refuse("the formatted text would be too long")

    # Operators, attributes and calls ----------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check()
        if operator == "**":
            self._check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            self._check_percent_format(left, right)
        return self.bounded(super().call_binop(context, operator, left, right))

    def _check_power(self, base: Any, exponent: Any) -> None:
        if not (_is_int(base) and _is_int(exponent)) or exponent <= 0 or abs(base) <= 1:
            return
        if abs(base).bit_length() * exponent > MAX_INT_BITS:
            raise SecurityError(f"{base} ** {exponent} is too large a number")

    def _check_product(self, left: Any, right: Any) -> None:
        if _is_int(left) and _is_int(right):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise SecurityError("the product is too large a number")
            return
        for sequence, times in ((left, right), (right, left)):
            if (
                isinstance(sequence, _SIZED)
                and _is_int(times)
                and max(len(sequence), content_size(sequence)) * times > self.limit
            ):
                raise self.refuse("the repeated value would be too long")

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.attribute` as Jinja's sandbox reads it (an attribute first, else an item).
        For a plain dict (every value of a note's context) or `self` (a template's blocks),
        whose attributes are only their class's, a name that is no attribute of the class
        (nor `_`-private) goes straight to the item: the same answer, without raising and
        catching an AttributeError for each `customer.name`."""
        check()
        known = _ITEM_FIRST.get(obj.__class__)
        if known is not None and attribute not in known and attribute[:1] != "_":
            try:
                return obj[attribute]
            except LookupError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check()
        return super().getitem(obj, argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in AMPLIFYING and isinstance(obj, str | bytes | bytearray):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        if attribute not in AMPLIFYING:
            return super().unsafe_undefined(obj, attribute)
        return self.undefined(
            f"{type(obj).__name__}.{attribute} is not allowed in a note: "
            "what it builds can be far longer than a note may be",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check()
        if __obj.__class__ is BlockReference and not args and kwargs.keys() <= _CALL_KEYWORDS:
            return __self.bounded(__self._block(__obj))
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _BUILTIN_VALUES):  # a method of a string, number, list...
            __self._check_numbers(chain(args, kwargs.values()))
        if isinstance(owner, _TEXTS):
            name = getattr(__obj, "__name__", "")
            texts = len(args) >= 2 and all(isinstance(arg, _TEXTS) for arg in args[:2])
            if name == "replace" and texts:
                count = args[2] if len(args) > 2 else kwargs.get("count")
                __self._check_replaced(owner, args[0], args[1], count)
            elif name == "join" and args:
                items = list(args[0])
                __self._check_joined(owner, items)
                args = (items, *args[1:])
        return __self.bounded(super().call(__context, __obj, *args, **kwargs))

    def _block(self, block: BlockReference) -> Any:
        """`self.name()`: Jinja's own block call, safely callable and taking no context, so
        what `Context.call` would do comes down to calling it (a StopIteration it raises is
        an undefined value, as there)."""
        try:
            return block()
        except StopIteration:
            return self.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__
        self._check_brace_format(template)
        is_format_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                mapping = args[0] if args and isinstance(args[0], Mapping) else {}
                self._check_brace_output(template, (), mapping)
            else:
                self._check_brace_output(template, args, kwargs)
            return wrapped(*args, **kwargs)

        return update_wrapper(checked, wrapped)

    # Filters ------------------------------------------------------------------------------

    def _checked_numbers(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self._check_numbers(chain(args, kwargs.values()))
            return original(*args, **kwargs)

        return checked

    def _checked_text(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """A filter that turns its value into text (`string`, `pprint`)."""

        @wraps(original)
        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            return original(self.as_text(value), *args, **kwargs)

        return checked

    def _checked_indent(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(text: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
            plain = str(self.as_text(text))
            step = len(width) if isinstance(width, str) else width
            self._check_numbers([step])
            if len(plain) + step * (plain.count("\n") + 1) > self.limit:
                raise self.refuse("the indented text would be too long")
            return original(text, width, *args, **kwargs)

        return checked

    def _checked_format(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            self._check_percent_format(str(self.as_text(value)), kwargs or args)
            return original(value, *args, **kwargs)

        return checked

    def _checked_join(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(eval_ctx: Any, value: Any, d: str = "", *args: Any, **kwargs: Any) -> Any:
            items = list(value)
            self._check_joined(str(d), items)
            return original(eval_ctx, items, d, *args, **kwargs)

        return checked

    def _checked_replace(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(eval_ctx: Any, text: Any, old: Any, new: Any, count: Any = None) -> Any:
            self._check_numbers([count])
            self._check_replaced(str(self.as_text(text)), str(old), str(new), count)
            return original(eval_ctx, text, old, new, count)

        return checked


def _counting_text(original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose text result counts against the note's budget of text built along the
    way (`render_limits.spend`); its own size checks stay (each filter is wrapped once)."""

    @wraps(original)
    def counting(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if isinstance(result, _TEXTS):
            spend(len(result))
        return result

    return counting


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
