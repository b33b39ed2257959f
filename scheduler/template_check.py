"""`appreciate templates check`: every note template written against sample data, with each
problem named by file and line.

Rules:
- Each kind's `KIND.j2`, and each tier variant present (`KIND.TIER.j2`), is rendered twice
  with `sample_context`: once with every optional fact known and once with none, so both sides
  of an `{% if %}` on an optional fact are tried.
- Errors: syntax, undefined names, sandbox refusals, a missing or empty subject or text, a
  subject over SUBJECT_MAX characters, no `KIND.j2` for a kind that is switched on.
- Warnings: a subject over SUBJECT_WARN characters (mail clients cut it short), a missing
  `KIND.j2` for a kind that is switched off, a `.j2` file no note uses (files starting with `_`
  are shared parts, such as the layout, and are checked through the notes that use them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, TemplateError, nodes

from scheduler.note_context import sample_context
from scheduler.render import NoteRenderer, TemplateProblem
from scheduler.settings import OCCASION_KINDS, OccasionKind, Settings
from scheduler.template_choice import TIERS

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


def check_templates(directory: Path, settings: Settings) -> list[Finding]:
    """Every finding, one or more per template, in kind order (see the module's rules)."""
    renderer = NoteRenderer(directory)
    findings: list[Finding] = []
    used: set[str] = set()
    for kind in OCCASION_KINDS:
        plain = f"{kind}.j2"
        used.add(plain)
        if not (directory / plain).is_file():
            enabled = getattr(settings.occasions, kind).enabled
            level: Level = "error" if enabled else "warning"
            state = "switched on" if enabled else "switched off"
            findings.append(Finding(plain, level, f"missing, and {kind} notes are {state}"))
        else:
            findings += _check(renderer, kind, None, plain, settings)
        for tier in TIERS:
            variant = f"{kind}.{tier}.j2"
            used.add(variant)
            if (directory / variant).is_file():
                findings += _check(renderer, kind, tier, variant, settings)
    for path in sorted(directory.glob("*.j2")):
        if path.name not in used and not path.name.startswith("_"):
            findings.append(
                Finding(
                    path.name,
                    "warning",
                    "no note uses it: notes are KIND.j2 or KIND.TIER.j2, with a kind among "
                    f"{', '.join(OCCASION_KINDS)} and a tier among {', '.join(TIERS)}",
                )
            )
    return findings


def _check(
    renderer: NoteRenderer, kind: OccasionKind, tier: str | None, name: str, settings: Settings
) -> list[Finding]:
    subject = ""
    for sparse in (False, True):
        context = sample_context(kind, settings, tier=tier or "regular", sparse=sparse)
        try:
            note = renderer.render(kind, tier, context)
        except TemplateProblem as problem:
            message = problem.message
            if sparse:
                message += " (for a customer with few details on record)"
            return [Finding(name, "error", message, problem.file, problem.line)]
        subject = max(subject, note.subject, key=len)
    if len(subject) <= SUBJECT_WARN:
        return [Finding(name, "ok")]
    file, line = subject_origin(renderer.directory, name)
    level: Level = "error" if len(subject) > SUBJECT_MAX else "warning"
    limit = SUBJECT_MAX if level == "error" else SUBJECT_WARN
    message = f'the subject is {len(subject)} characters long, over {limit}: "{subject}"'
    return [Finding(name, level, message, file, line)]


def subject_origin(directory: Path, name: str) -> tuple[str, int | None]:
    """The file and line of the `subject` block a template uses: its own, or the nearest
    parent's it extends by name."""
    parser = Environment(loader=FileSystemLoader(directory), autoescape=True)  # parses only
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
