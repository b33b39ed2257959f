"""The sandbox note templates run in: no way out to Python, and nothing bigger than a note.

On top of Jinja's `ImmutableSandboxedEnvironment` (no attribute starting with `_`, no internal
attribute such as a function's globals, no changing a dict, list or set):
- `range` hands out at most RANGE_BUDGET numbers per note in all, so loops inside loops cannot
  run for minutes (`range_budget()` starts a note's count).
- No single operation builds a string or list longer than `limit`. Where the size is known
  before the work is done it is checked first: `*` and `**`, joining, replacing, padding and
  format widths, output captured by `{% set %}...{% endset %}`, macros and filter blocks. The
  rest (`+`, `~`, any call's result) is checked right after, so it can only double in one step.
- Numbers passed to a method of a string, number or list (a padding width, a byte length) or to
  a filter that pads or repeats may not exceed `limit`; integers stay below 2**MAX_INT_BITS.
- `{{ ... }}` may not print None (an optional fact not on record): the note would say "None".
- `lipsum` and `tojson` are gone: a note has no use for filler text or JSON.

A refusal is a `jinja2.exceptions.SecurityError` (printing None: a `TemplateRuntimeError`); the
renderer reports it with file and line. The note's total output is capped by the renderer, which
reads it as it is written. `~` and captured output are checked through two small hooks in Jinja's
code generator (`visit_Concat`, `buffer`); tests/test_render.py covers each rule.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from itertools import chain
from typing import Any

from jinja2 import BaseLoader, StrictUndefined
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.nodes import Concat
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

RANGE_BUDGET = 100_000
"""Numbers `range` may hand out while one note is written."""
MAX_INT_BITS = 10_000
"""Integers a template computes stay below 2**MAX_INT_BITS (about 3,000 digits)."""
_SIZED = (str, bytes, list, tuple)
_BUILTIN_VALUES = (str, bytes, int, float, list, tuple, dict)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


class _Budget:
    def __init__(self) -> None:
        self.left = RANGE_BUDGET


_range_budget: ContextVar[_Budget | None] = ContextVar("range_budget", default=None)


@contextmanager
def range_budget() -> Iterator[None]:
    """Meanwhile, every `range` call in every template draws on one fresh budget."""
    token = _range_budget.set(_Budget())
    try:
        yield
    finally:
        _range_budget.reset(token)


def budgeted_range(*args: int) -> range:
    """`range`, drawing its length from the note's budget (see `range_budget`)."""
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = RANGE_BUDGET + 1
    budget = _range_budget.get()
    left = RANGE_BUDGET if budget is None else budget.left
    if size > left:
        raise SecurityError(
            f"range too big: a note may loop over at most {RANGE_BUDGET:,} numbers in all"
        )
    if budget is not None:
        budget.left -= size
    return numbers


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `a ~ b` and captured output checked against the limit."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")


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
            finalize=_refuse_none,
        )
        self.limit = limit
        self.globals["range"] = budgeted_range
        self.globals.pop("lipsum", None)
        self.concat = self._bounded_concat  # type: ignore[method-assign]
        filters = self.filters
        filters["center"] = self._checked_numbers(filters["center"])
        filters["batch"] = self._checked_numbers(filters["batch"])
        filters["slice"] = self._checked_numbers(filters["slice"])
        filters.pop("tojson", None)  # JSON for a <script>: nothing a note needs
        filters["truncate"] = self._checked_numbers(filters["truncate"])
        filters["wordwrap"] = self._checked_numbers(filters["wordwrap"])
        filters["indent"] = self._checked_indent(filters["indent"])
        filters["format"] = self._checked_format(filters["format"])
        filters["join"] = self._checked_join(filters["join"])
        filters["replace"] = self._checked_replace(filters["replace"])

    # Sizes ----------------------------------------------------------------------------------

    def refuse(self, what: str) -> SecurityError:
        return SecurityError(f"{what}: a note may hold at most {self.limit:,} characters")

    def bounded(self, value: Any) -> Any:
        """`value`, unless it is a string or list longer than the limit."""
        if isinstance(value, _SIZED) and len(value) > self.limit:
            raise self.refuse(f"a value of {len(value):,} characters or items is too long")
        return value

    def output_buffer(self) -> list[str]:
        """A new buffer for captured output (see `_BoundedBuffer`)."""
        return _BoundedBuffer(self)

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

    def _check_joined(self, separator: str, items: list[Any]) -> None:
        size = len(separator) * max(len(items) - 1, 0)
        size += sum(len(item) if isinstance(item, _SIZED) else 20 for item in items)
        if size > self.limit:
            raise self.refuse("the joined text would be too long")

    def _check_replaced(self, text: str, old: str, new: str, count: int | None) -> None:
        found = len(text) + 1 if old == "" else text.count(old)
        if count is not None and count >= 0:
            found = min(found, count)
        if len(text) + found * (len(new) - len(old)) > self.limit:
            raise self.refuse("the replaced text would be too long")

    def _check_percent_format(self, template: str) -> None:
        widths = 0
        for match in _PERCENT_SPEC.finditer(template):
            for number in match.groups():
                if number == "*":
                    raise SecurityError("a width taken from the arguments (*) is not allowed")
                widths += int(number or 0)
        if widths > self.limit:
            raise self.refuse("the format's widths are too large")

    def _check_brace_format(self, template: str) -> None:
        widths = 0
        for _, _, spec, _ in string.Formatter().parse(template):
            if spec and "{" in spec:
                raise SecurityError("a width taken from the arguments is not allowed")
            widths += sum(int(number) for number in re.findall(r"\d+", spec or ""))
        if widths > self.limit:
            raise self.refuse("the format's widths are too large")

    # Operators and calls ----------------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            self._check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            self._check_percent_format(left)
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
                and len(sequence) * times > self.limit
            ):
                raise self.refuse("the repeated value would be too long")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _BUILTIN_VALUES):  # a method of a string, number, list...
            __self._check_numbers(chain(args, kwargs.values()))
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name == "replace" and len(args) >= 2:
                count = args[2] if len(args) > 2 else kwargs.get("count")
                __self._check_replaced(owner, str(args[0]), str(args[1]), count)
            elif name == "join" and args:
                items = list(args[0])
                __self._check_joined(owner, items)
                args = (items, *args[1:])
        return __self.bounded(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        self._check_brace_format(value.__self__)
        return wrapped

    # Filters ------------------------------------------------------------------------------

    def _checked_numbers(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self._check_numbers(chain(args, kwargs.values()))
            return original(*args, **kwargs)

        return checked

    def _checked_indent(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(text: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
            plain = str(text)
            step = len(width) if isinstance(width, str) else width
            self._check_numbers([step])
            if len(plain) + step * (plain.count("\n") + 1) > self.limit:
                raise self.refuse("the indented text would be too long")
            return original(text, width, *args, **kwargs)

        return checked

    def _checked_format(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(original)
        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            self._check_percent_format(str(value))
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
            self._check_replaced(str(text), str(old), str(new), count)
            return original(eval_ctx, text, old, new, count)

        return checked


def _refuse_none(value: Any) -> Any:
    """What `{{ ... }}` prints, unless it is None: a note never says "None"."""
    if value is None:
        raise TemplateRuntimeError(
            "this value is None (not on record for this customer): "
            "print it inside {% if ... %} so the note reads well without it"
        )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
