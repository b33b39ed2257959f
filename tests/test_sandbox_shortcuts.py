"""`NoteSandbox`'s shortcuts give what Jinja's immutable sandbox gives, in both environments:
`getattr` for plain dicts and `self` (an item for a name that is no attribute of the class,
the class's safe attribute first otherwise, an undefined for what is missing, a private name as
Jinja reads it), and `call` for a block called as `self.name()` (in loops, in other blocks,
with `super()`, escaped in HTML)."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import DictLoader, StrictUndefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from scheduler.notes.template_sandbox import NoteSandbox

VALUES: dict[str, Any] = {
    "name": "Zoë",
    "items": "an item called items",
    "get": 3,
    "": "empty",
    "_private": "hidden",
    "nested": {"keys": "k", "deep": {"x": 1}},
}
EXPRESSIONS = [
    "d.name",
    "d.nested.deep.x",
    "d.nested.keys",
    "d.items",
    "d.get",
    "d.missing",
    "d._private",
    "d.__class__",
    "d.clear",
    "d.update",
    "d.copy",
    "self.body()",
    "self.missing",
    "self._TemplateReference__context",
]


def outcome(environment: Any, expression: str) -> str:
    """What `{{ expression }}` gives (printed with repr), or the error it raises."""
    source = f"{{% block body %}}x{{% endblock %}}{{{{ ({expression}) | pprint }}}}"
    try:
        text: str = environment.from_string(source).render(d=VALUES)
    except (UndefinedError, SecurityError) as error:
        return f"{type(error).__name__}: {error}"
    return text


@pytest.mark.parametrize("autoescape", [False, True], ids=["text", "html"])
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_shortcut_gives_what_jinjas_sandbox_gives(expression: str, autoescape: bool) -> None:
    ours = NoteSandbox(DictLoader({}), autoescape=autoescape, limit=50_000)
    jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape)
    assert outcome(ours, expression) == outcome(jinja, expression)


BLOCKS = {
    "base.j2": (
        "{% block greeting %}Hi {{ d.name }} & co{% endblock %}|"
        "{% block body %}{% for i in [1, 2] %}{{ i }}{{ self.greeting() }}{% endfor %}"
        "{% endblock %}|{% block tail %}{{ self.body() ~ '!' }}{% endblock %}"
    ),
    "child.j2": (
        '{% extends "base.j2" %}{% block greeting %}<{{ super() }}>{% endblock %}'
        "{% block tail %}{% set x = self.greeting() %}{{ x | length }}{{ self.missing is defined }}"
        "{% endblock %}"
    ),
}


@pytest.mark.parametrize("autoescape", [False, True], ids=["text", "html"])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_a_block_called_as_self_gives_what_jinjas_sandbox_gives(
    name: str, autoescape: bool
) -> None:
    loader = DictLoader(BLOCKS)
    ours = NoteSandbox(loader, autoescape=autoescape, limit=50_000)
    jinja = ImmutableSandboxedEnvironment(
        loader=loader, undefined=StrictUndefined, autoescape=autoescape
    )
    written = ours.get_template(name).render(d=VALUES)
    assert written == jinja.get_template(name).render(d=VALUES)
    assert "Zoë" in written
