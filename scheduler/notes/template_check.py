"""`appreciate templates check`: every note template written against sample data, with each
problem named by file and line.

Rules:
- Each kind's `KIND.j2`, and each tier variant present (`KIND.TIER.j2`), is rendered twice
  with `sample_context`: once with every optional fact known and once with none, so both sides
  of an `{% if %}` on an optional fact are tried.
- Attributes, given the store (an `AttributeCensus`): the sample customer and referred friend
  carry every attribute name the store's customers hold (and those the template uses), and
  each `customer.attributes.X` / `referral.referred.attributes.X` the template uses, itself or
  through the files it extends, includes or imports (`attribute_uses`), is checked against the
  store: held by no customer, an error; lacking for some, a warning with how many and the own
  ids of a few, since their notes would fail. A use the template guards (`X is defined`, a
  `default`, `'X' in customer.attributes`) is not checked. Without the store, the sample
  customer has `pet_name` only (none when sparse), as before.
- Errors: syntax, undefined names, sandbox refusals, a missing or empty subject or text, a
  subject over SUBJECT_MAX characters, no `KIND.j2` for a kind that is switched on.
- Warnings: a subject over SUBJECT_WARN characters (mail clients cut it short), a missing
  `KIND.j2` for a kind that is switched off, a `.j2` file no note uses (files starting with `_`
  are shared parts, such as the layout, and are checked through the notes that use them; those
  starting with `card.` or `call.` write cards and calls).
- Cards' and calls' templates (`card.j2`, `card.KIND.j2`, `call.j2`, `call.KIND.j2`) are
  written as `appreciate cards` and `calls` write them, from the sample contexts of each kind
  they serve (`card.j2`: the kinds without their own), customer attributes being those the
  store holds. Errors: any problem writing them, a card without a `{% block inside %}` (that
  card would not print), a file of that name that is not a file. Warnings: a call without a
  `{% block script %}` (nothing to say on the list), `card.X.j2` for X no kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jinja2 import Environment, TemplateError, nodes

from scheduler.config.settings import Settings
from scheduler.notes.note_context import sample_context
from scheduler.notes.render import NoteRenderer, TemplateProblem
from scheduler.notes.template_choice import TIERS
from scheduler.notes.template_files import TemplateFiles
from scheduler.store.attributes import AttributeCensus
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind

CHANNEL_TEMPLATES = ("card.", "call.")
"""Cards' and calls' templates (`card.KIND.j2`, `call.j2`...): not notes, so not "unused"."""
CHANNEL_BLOCKS = {"card": ("front", "inside"), "call": ("script",)}
"""The blocks a card's and a call's template are written for; the last must say something."""
SUBJECT_WARN = 78
SUBJECT_MAX = 200
Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    """One line of the report: the template checked and what was found."""

    template: str
    level: Level
    message: str = ""
    file: str | None = None
    """Where the problem is, when not in `template` itself (e.g. `_layout.j2`)."""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or self.template
        where = f"{where}:{self.line}" if self.line is not None else where
        if self.level == "ok":
            return f"{where}: ok"
        via = f" (writing {self.template})" if self.file and self.file != self.template else ""
        return f"{where}: {self.level}: {self.message}{via}"


def check_templates(
    directory: Path, settings: Settings, census: AttributeCensus | None = None
) -> list[Finding]:
    """Every finding, one or more per template, in kind order (see the module's rules);
    attributes are checked against `census` when given."""
    renderer = NoteRenderer.configured(directory, settings)
    findings: list[Finding] = []
    used: set[str] = set()
    for kind in OCCASION_KINDS:
        plain = f"{kind}.j2"
        used.add(plain)
        if not (directory / plain).is_file():
            enabled = getattr(settings.occasions, kind).enabled
            level: Level = "error" if enabled else "warning"
            state = "switched on" if enabled else "switched off"
            hint = f": `appreciate templates add {kind}` copies the starter" if enabled else ""
            findings.append(Finding(plain, level, f"missing, and {kind} notes are {state}{hint}"))
        else:
            findings += _check(renderer, kind, None, plain, settings, census)
        for tier in TIERS:
            variant = f"{kind}.{tier}.j2"
            used.add(variant)
            if (directory / variant).is_file():
                findings += _check(renderer, kind, tier, variant, settings, census)
    findings += _channel_findings(renderer, settings, census)
    for path in sorted(directory.glob("*.j2")):
        if (
            path.name not in used
            and not path.name.startswith("_")
            and not path.name.startswith(CHANNEL_TEMPLATES)
        ):
            findings.append(
                Finding(
                    path.name,
                    "warning",
                    "no note uses it: notes are KIND.j2 or KIND.TIER.j2, with a kind among "
                    f"{', '.join(OCCASION_KINDS)} and a tier among {', '.join(TIERS)}",
                )
            )
    return findings


def _channel_findings(
    renderer: NoteRenderer, settings: Settings, census: AttributeCensus | None
) -> list[Finding]:
    """The findings for each card and call template present (see the module's rules)."""
    directory = renderer.directory
    findings: list[Finding] = []
    for channel in CHANNEL_BLOCKS:
        for path in [*sorted(directory.glob(f"{channel}.*.j2")), directory / f"{channel}.j2"]:
            if not (path.exists() or path.is_symlink()):
                continue
            name = path.name
            middle = name[len(channel) + 1 : -len(".j2")]
            kinds = [kind for kind in OCCASION_KINDS if kind == middle]
            if not middle:
                kinds = [
                    kind
                    for kind in OCCASION_KINDS
                    if not (directory / f"{channel}.{kind}.j2").is_file()
                ]
            if not path.is_file():
                findings.append(Finding(name, "error", "not a file, so not a template"))
            elif not kinds and middle:
                message = f"no kind is {middle}: kinds are {', '.join(OCCASION_KINDS)}"
                findings.append(Finding(name, "warning", message))
            else:
                findings.append(_channel_finding(renderer, name, kinds, channel, settings, census))
    return findings


def _channel_finding(
    renderer: NoteRenderer,
    name: str,
    kinds: list[OccasionKind],
    channel: str,
    settings: Settings,
    census: AttributeCensus | None,
) -> Finding:
    """The first problem writing `name` for `kinds`, else ok."""
    wanted = CHANNEL_BLOCKS[channel]
    attributes = sorted(census.names) if census is not None else None
    for kind in kinds:
        for sparse in (False, True):
            context = sample_context(kind, settings, sparse=sparse, attributes=attributes)
            try:
                blocks = renderer.render_blocks(name, context, wanted, html=channel == "card")
            except TemplateProblem as problem:
                message = f"{problem.message} ({channel} for {kind}"
                message += ", for a customer with few details on record)" if sparse else ")"
                return Finding(name, "error", message, problem.file, problem.line)
            block = wanted[-1]
            if not blocks.get(block, "").strip():
                level: Level = "error" if block == "inside" else "warning"
                effect = "the card would not print" if level == "error" else "nothing to say"
                message = f"there is no {{% block {block} %}}, or it is empty: {effect}"
                return Finding(name, level, message)
    return Finding(name, "ok")


def _check(
    renderer: NoteRenderer,
    kind: OccasionKind,
    tier: str | None,
    name: str,
    settings: Settings,
    census: AttributeCensus | None,
) -> list[Finding]:
    uses = attribute_uses(renderer.directory, name) if census is not None else []
    held = None if census is None else sorted(census.names | {use.name for use in uses})
    findings = _rendered(renderer, kind, tier, name, settings, held)
    if census is not None:
        findings += _attribute_findings(kind, name, uses, census)
    return findings or [Finding(name, "ok")]


def _rendered(
    renderer: NoteRenderer,
    kind: OccasionKind,
    tier: str | None,
    name: str,
    settings: Settings,
    attributes: list[str] | None,
) -> list[Finding]:
    """The problems of writing the note from the sample contexts."""
    subject = ""
    for sparse in (False, True):
        context = sample_context(
            kind, settings, tier=tier or "regular", sparse=sparse, attributes=attributes
        )
        try:
            note = renderer.render(kind, tier, context)
        except TemplateProblem as problem:
            message = problem.message
            if sparse:
                message += " (for a customer with few details on record)"
            return [Finding(name, "error", message, problem.file, problem.line)]
        subject = max(subject, note.subject, key=len)
    if len(subject) <= SUBJECT_WARN:
        return []
    file, line = subject_origin(renderer.directory, name)
    level: Level = "error" if len(subject) > SUBJECT_MAX else "warning"
    limit = SUBJECT_MAX if level == "error" else SUBJECT_WARN
    message = f'the subject is {len(subject)} characters long, over {limit}: "{subject}"'
    return [Finding(name, level, message, file, line)]


def _attribute_findings(
    kind: OccasionKind, name: str, uses: list[AttributeUse], census: AttributeCensus
) -> list[Finding]:
    """An error for each attribute used that no customer holds, a warning for each that some
    lack (see the module's rules); guarded uses are trusted."""
    findings = []
    checked: set[tuple[str, str]] = set()
    for use in uses:
        if use.guarded or (use.owner, use.name) in checked:
            continue
        checked.add((use.owner, use.name))
        lacking, shown = census.lacking(use.name)
        if not lacking:
            continue
        guard = f"{{% if {use.path} is defined %}}"
        if lacking >= census.customers:
            message = (
                f"no customer in the store has attributes.{use.name}: every {kind} note "
                f"written here would fail; check the column's name in your import, or write "
                f"`{guard}`"
            )
            findings.append(Finding(name, "error", message, use.file, use.line))
            continue
        ids = ", ".join(shown) + (", ..." if lacking > len(shown) else "")
        people = "customer has" if lacking == 1 else "customers have"
        message = (
            f"{lacking:,} {people} no attributes.{use.name} ({ids}): "
            + (f"their {kind} notes" if use.owner == "customer" else f"{kind} notes about them")
            + f" will fail; write `{guard}`"
        )
        findings.append(Finding(name, "warning", message, use.file, use.line))
    return findings


@dataclass(frozen=True)
class AttributeUse:
    """One `customer.attributes.X` (owner "customer") or `referral.referred.attributes.X`
    (owner "referred") in a template."""

    owner: Literal["customer", "referred"]
    name: str
    file: str
    line: int
    guarded: bool = False
    """The template tests it (`is defined`, `default`, `in`): customers without it are fine."""

    @property
    def path(self) -> str:
        prefix = "customer" if self.owner == "customer" else "referral.referred"
        return f"{prefix}.attributes.{self.name}"


_OWNERS: dict[tuple[str, ...], Literal["customer", "referred"]] = {
    ("customer", "attributes"): "customer",
    ("referral", "referred", "attributes"): "referred",
}


def attribute_uses(directory: Path, name: str) -> list[AttributeUse]:
    """Every attribute use in template `name` and the files it extends, includes or imports
    (named by constants), in the order found. A parent's block that a child replaces (without
    calling `super()`) is not used, so neither are its attributes, nor the macros of an import
    whose names nothing used calls. Files that cannot be read or parsed are skipped (the render
    reports them)."""
    parser = Environment(loader=TemplateFiles(directory), autoescape=True)  # parses only
    found: list[AttributeUse] = []
    guarded: set[tuple[str, str]] = set()
    waiting: list[tuple[str, frozenset[str]]] = [(name, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    loaded: set[str] = set()
    """The names the used parts read so far (an import counts only if one is called)."""
    while waiting:
        current, replaced = waiting.pop(0)
        if (current, replaced) in seen:
            continue
        seen.add((current, replaced))
        try:
            source = parser.loader.get_source(parser, current)[0]  # type: ignore[union-attr]
            tree = parser.parse(source, current)
        except (TemplateError, OSError):
            continue
        used = list(_used_nodes(tree, replaced))
        loaded |= {node.name for node in used if isinstance(node, nodes.Name)}
        for part in used:
            if isinstance(part, nodes.Extends):
                parents = _constant_names(part.template)
                waiting += [(parent, replaced | _replaced(tree)) for parent in parents]
            elif isinstance(part, nodes.Include) or _imported(part) & loaded:
                others = _constant_names(part.template)  # type: ignore[attr-defined]
                waiting += [(other, frozenset()) for other in others]
        called = {id(node.node) for node in used if isinstance(node, nodes.Call)}
        for node in used:
            use = _attribute(node) if isinstance(node, nodes.Getattr | nodes.Getitem) else None
            if use is not None and id(node) not in called:
                found.append(AttributeUse(use[0], use[1], current, node.lineno))
        guarded |= _guards(used)
    return [
        AttributeUse(use.owner, use.name, use.file, use.line, (use.owner, use.name) in guarded)
        for use in found
    ]


def _used_nodes(tree: nodes.Template, replaced: frozenset[str]) -> Iterator[nodes.Node]:
    """Every node of `tree` in document order, but those inside the blocks named in
    `replaced`."""
    waiting: list[nodes.Node] = [tree]
    while waiting:
        node = waiting.pop()
        if isinstance(node, nodes.Block) and node.name in replaced:
            continue
        yield node
        waiting.extend(reversed(list(node.iter_child_nodes())))


def _imported(node: nodes.Node) -> set[str]:
    """The names an `{% import %}` or `{% from ... import %}` binds (none for other nodes)."""
    if isinstance(node, nodes.Import):
        return {node.target}
    if isinstance(node, nodes.FromImport):
        return {name if isinstance(name, str) else name[1] for name in node.names}
    return set()


def _replaced(tree: nodes.Template) -> frozenset[str]:
    """The blocks `tree` defines without calling `super()`: its parents' are not used."""
    return frozenset(
        block.name
        for block in tree.find_all(nodes.Block)
        if not any(
            isinstance(call.node, nodes.Name) and call.node.name == "super"
            for call in block.find_all(nodes.Call)
        )
    )


def _guards(used: list[nodes.Node]) -> set[tuple[str, str]]:
    """The attributes a template tests before use: `is defined`, `| default`, `'X' in ...`."""
    guarded: set[tuple[str, str]] = set()
    for test in (node for node in used if isinstance(node, nodes.Test)):
        if test.name in ("defined", "undefined") and (use := _attribute(test.node)):
            guarded.add(use)
    for applied in (node for node in used if isinstance(node, nodes.Filter)):
        if applied.name in ("default", "d") and applied.node and (use := _attribute(applied.node)):
            guarded.add(use)
    for compare in (node for node in used if isinstance(node, nodes.Compare)):
        if (
            isinstance(compare.expr, nodes.Const)
            and isinstance(compare.expr.value, str)
            and compare.ops
            and compare.ops[0].op in ("in", "notin")
        ):
            owner = _OWNERS.get(tuple(_path(compare.ops[0].expr) or ()))
            if owner is not None:
                guarded.add((owner, compare.expr.value))
    return guarded


def _attribute(node: nodes.Node) -> tuple[Literal["customer", "referred"], str] | None:
    """(owner, name) when `node` reads an attribute of the customer or the referred friend."""
    path = _path(node)
    if not path or len(path) < 3:
        return None
    owner = _OWNERS.get(tuple(path[:-1]))
    return None if owner is None else (owner, path[-1])


def _path(node: nodes.Node) -> list[str] | None:
    """`customer.attributes["pet_name"]` as ["customer", "attributes", "pet_name"]; None for
    anything but names, attributes and constant keys."""
    parts = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None


def _constant_names(expression: nodes.Expr) -> list[str]:
    if isinstance(expression, nodes.Const) and isinstance(expression.value, str):
        return [expression.value]
    if isinstance(expression, nodes.List | nodes.Tuple):
        return [name for item in expression.items for name in _constant_names(item)]
    return []


def subject_origin(directory: Path, name: str) -> tuple[str, int | None]:
    """The file and line of the `subject` block a template uses: its own, or the nearest
    parent's it extends by name."""
    parser = Environment(loader=TemplateFiles(directory), autoescape=True)  # parses only
    seen: set[str] = set()
    current: str | None = name
    while current is not None and current not in seen:
        seen.add(current)
        try:
            source = parser.loader.get_source(parser, current)[0]  # type: ignore[union-attr]
            tree = parser.parse(source, current)
        except (TemplateError, OSError):
            break
        for block in tree.find_all(nodes.Block):
            if block.name == "subject":
                return current, block.lineno
        parent = tree.find(nodes.Extends)
        target = parent.template if parent is not None else None
        current = target.value if isinstance(target, nodes.Const) else None
    return name, None
