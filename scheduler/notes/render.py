"""Writing a note from the owner's templates: a subject, a plain text and optionally HTML.

Rules:
- The template is `KIND.TIER.j2` when that file exists, else `KIND.j2`
  (`scheduler.notes.template_choice`). It fills in the blocks `subject` and `text` and may fill in
  `html`; the starters extend `_layout.j2`, which builds both bodies from one `message` block.
- Templates run in the sandbox of `scheduler.notes.template_sandbox` with StrictUndefined: a name or
  key missing from the context is an error, never an empty string. Top-level code (`{% set %}`,
  `{% from ... import %}`) runs as usual; each block is then rendered on its own.
- HTML is escaped automatically, subject and text never: they come from two environments over
  the same files, one compiling with autoescape on (for `html`), one with it off. (An
  `{% autoescape true %}` tag in the layout would not do: the note's own `message` block, called
  from inside it, is compiled in the note's file without escaping, so a customer's name would
  reach the HTML raw.)
- The subject is one line: runs of whitespace, newlines included, become one space, and it is
  trimmed. The text keeps its lines, loses trailing spaces and blank lines at either end, has at
  most one blank line in a row, and ends with one newline. HTML is trimmed. A subject or text
  that is missing or empty is an error; an html block that is missing or empty means no HTML.
- Subject, text and HTML together may hold at most `max_chars` characters: more is an error,
  never a truncated note. Output is counted as it is produced, so a runaway loop stops early.
- A note must be written within `timeout` seconds (`[templates] render_timeout`): the sandbox
  checks the deadline at every step a template can repeat (see `scheduler.notes.render_limits`).
  Past it, the note is a TemplateProblem like any other. When `stop` (an Event) is set while a
  note is being written, it is abandoned at the next step with RenderStopped: appreciate is
  stopping, and the note is not at fault.
- Any error (syntax, undefined name, sandbox refusal, size, time, a failing operation) is a
  TemplateProblem naming the file it is in (`_layout.j2` for the layout's own errors) and the
  line when known.
- In HTML, what templates print from the context never becomes a link; the business's own
  addresses and the template's own text do (see `scheduler.notes.note_links`).
- Each block is written once: the HTML pass replays, as HTML, what the text pass wrote for the
  blocks it calls (`self.message()`...), when every file of the template allows it; otherwise
  it writes them again (see `scheduler.notes.html_replay`). The note is the same either way.
  A chain of files whose top level holds only `{% extends %}`, blocks and text has its blocks
  registered directly instead of running its top level in each pass.
- Compiled templates are cached by Jinja (400 per environment), and recompiled when the file
  changes, so edits apply to a running daemon.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from jinja2 import Template, TemplateNotFound, TemplateSyntaxError
from jinja2.exceptions import TemplateError
from jinja2.runtime import new_context
from markupsafe import Markup, escape

from scheduler.config.settings import Settings
from scheduler.errors import AppreciateError
from scheduler.notes.html_replay import HTML_BLOCK, BlockRecorder, replay
from scheduler.notes.note_links import links
from scheduler.notes.render_limits import (
    CHECK_EVERY,
    RenderStopped,
    RenderTimeout,
    check,
    note_limits,
)
from scheduler.notes.template_choice import template_file
from scheduler.notes.template_files import TemplateFiles
from scheduler.notes.template_sandbox import NoteSandbox
from scheduler.vocabulary import OccasionKind

__all__ = ["MAX_CHARS", "NoteRenderer", "RenderStopped", "TemplateProblem", "links", "paragraphs"]

MAX_CHARS = 50_000
RENDER_TIMEOUT = 2.0
"""Seconds one note may take to write, unless `[templates] render_timeout` says otherwise."""
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_MAX_CHAIN = 64
"""Files an `{% extends %}` chain may have for its blocks to be replayed in HTML."""


@dataclass(frozen=True)
class RenderedNote:
    """A written note. `template` is the file used, e.g. "birthday.vip.j2"."""

    subject: str
    text: str
    html: str | None
    template: str


class TemplateProblem(AppreciateError):
    """A template that cannot write a note: the file, the line when known, and why."""

    exit_code = 2

    def __init__(
        self, file: str, line: int | None, message: str, *, timed_out: bool = False
    ) -> None:
        self.file = file
        self.line = line
        self.message = message
        self.timed_out = timed_out
        """It ran past `render_timeout` (it may well do so again for the next note)."""
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}")


class NoteRenderer:
    """Renders notes from the templates in `directory` (see the module's rules)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_chars: int = MAX_CHARS,
        timeout: float | None = RENDER_TIMEOUT,
    ) -> None:
        self.directory = directory
        self.max_chars = max_chars
        self.timeout = timeout
        """Seconds a note may take to write (None: no limit)."""
        loader = TemplateFiles(directory)
        self._text = NoteSandbox(loader, autoescape=False, limit=max_chars)
        self._html = NoteSandbox(loader, autoescape=True, limit=max_chars)
        for environment in (self._text, self._html):  # both compile every block
            environment.filters["paragraphs"] = paragraphs
        self._asked: dict[str, frozenset[str]] = {}
        """For each template, the blocks its HTML pass looked up last time: the text pass
        keeps what those write (see `scheduler.notes.html_replay`)."""

    @classmethod
    def configured(cls, directory: Path, settings: Settings) -> NoteRenderer:
        """The renderer for the templates in `directory`, with `[templates] render_timeout`."""
        return cls(directory, timeout=settings.templates.render_timeout.total_seconds())

    def template_name(self, kind: OccasionKind, tier: str | None) -> str:
        """The file that writes this note: the tier variant when it exists."""
        try:
            return template_file(self.directory, kind, tier)
        except ValueError as error:
            raise TemplateProblem(f"{kind}.j2", None, str(error)) from None

    def render(
        self,
        kind: OccasionKind,
        tier: str | None,
        context: Mapping[str, Any],
        *,
        stop: threading.Event | None = None,
    ) -> RenderedNote:
        """The note for `kind`, from the tier's variant when there is one. Raises
        TemplateProblem, or RenderStopped once `stop` is set (see the module's rules)."""
        name = self.template_name(kind, tier)
        output = _Output(self.max_chars)  # one limit for subject, text and HTML together
        with note_limits(self.timeout, stop):
            # The blocks the text pass writes are kept for the HTML pass to replay, when the
            # template allows it (see `scheduler.notes.html_replay`): each is written once.
            recorder = None
            if self._plain_chain(name) is not False:
                recorder = BlockRecorder(self._asked.get(name))
            values = dict(context)
            plain = self._blocks(self._text, name, values, ("subject", "text"), output, recorder)
            for block in ("subject", "text"):
                if block not in plain:
                    raise TemplateProblem(name, None, f"there is no {{% block {block} %}}")
            written = {}
            if recorder is not None and self._plain_chain(name):
                written = {
                    block: pieces
                    for block, pieces in recorder.written.items()
                    if pieces is not None and block != HTML_BLOCK
                }
            asked: set[str] = set()
            rich = self._blocks(
                self._html, name, values, ("html",), output, written=written, asked=asked
            )
            self._asked[name] = frozenset(asked)
        subject = " ".join(plain["subject"].split())
        text = _tidy_text(plain["text"])
        if not subject:
            raise TemplateProblem(name, None, "the subject is empty")
        if not text.strip():
            raise TemplateProblem(name, None, "the text is empty")
        html = rich.get("html", "").strip() or None
        return RenderedNote(subject=subject, text=text, html=html, template=name)

    def render_blocks(
        self,
        name: str,
        context: Mapping[str, Any],
        wanted: tuple[str, ...],
        *,
        html: bool,
        stop: threading.Event | None = None,
    ) -> dict[str, str]:
        """The `wanted` blocks the template `name` has (a card's or a call's), written in the
        same sandbox, within the same limits, as a note; `html` escapes what is printed.
        Raises TemplateProblem (no such file included), or RenderStopped."""
        output = _Output(self.max_chars)
        environment = self._html if html else self._text
        with note_limits(self.timeout, stop):
            return self._blocks(environment, name, dict(context), wanted, output)

    def _blocks(
        self,
        environment: NoteSandbox,
        name: str,
        context: dict[str, Any],
        wanted: tuple[str, ...],
        output: _Output,
        recorder: BlockRecorder | None = None,
        *,
        written: Mapping[str, list[str]] | None = None,
        asked: set[str] | None = None,
    ) -> dict[str, str]:
        """Render the `wanted` blocks that the template (with its parents) has, keeping what
        each block writes in `recorder`, or replaying the `written` blocks' HTML (and
        noting in `asked` the blocks looked up once the top level has run)."""
        try:
            template = self._load(environment, name)
            run = new_context(  # copies the values, as `template.new_context(context)` does
                environment, template.name, template.blocks, context, False, _flat(template)
            )
            table = _BlockTable(run.blocks)
            run.blocks = table
            parents = self._bare_parents(name)
            if parents is None:
                # Top-level code runs (extends, imports, sets); the blocks it reaches stay silent.
                _Output(self.max_chars).collect(_generator(template.root_render_func(run)))
            else:  # it would only register the blocks of the files extended, as here
                for parent in parents:
                    for block, function in environment.get_template(parent, name).blocks.items():
                        table.setdefault(block, []).append(function)
            table.silent = False
            table.recorder = recorder
            table.written = written or {}
            if asked is not None:
                table.asked = asked
            return {
                block: output.collect(_generator(table[block][0](run)))
                for block in wanted
                if block in table
            }
        except (TemplateProblem, RenderStopped):
            raise
        except TemplateSyntaxError as error:
            file = error.name or (Path(error.filename).name if error.filename else name)
            raise TemplateProblem(file, error.lineno, error.message or str(error)) from None
        except Exception as error:  # anything a template did: report it where it happened
            file, line = _where(error, name)
            raise TemplateProblem(
                file,
                line,
                _describe(error, self.max_chars),
                timed_out=isinstance(error, RenderTimeout),
            ) from None

    def _plain_chain(self, name: str) -> bool | None:
        """Whether the text pass's blocks can be replayed in HTML for `name` (every file of
        its chain of `{% extends %}` has a plain shape: see `scheduler.notes.html_replay`);
        None while a file of it is not compiled yet."""
        shapes = self._text.shapes
        file: str | None = name
        for _ in range(_MAX_CHAIN):
            if file is None:
                return True
            found = shapes.get(file)
            if found is None:
                return None
            if not found.plain:
                return False
            file = found.parent
        return False

    def _bare_parents(self, name: str) -> list[str] | None:
        """The files `name` extends (its parent first) when every file of its chain is plain
        and has a bare top level (see `html_replay.Shape`), else None: then running the top
        level only registers the blocks, which the renderer does itself."""
        shapes = self._text.shapes
        parents: list[str] = []
        found = shapes.get(name)
        while found is not None and found.plain and found.bare:
            if found.parent is None:
                return parents
            if len(parents) >= _MAX_CHAIN:
                return None
            parents.append(found.parent)
            found = shapes.get(found.parent)
        return None

    def _load(self, environment: NoteSandbox, name: str) -> Template:
        try:
            return environment.get_template(name)
        except TemplateNotFound:
            from scheduler.config.file import bundled_path  # noqa: PLC0415 - a rare path

            hint = ""
            if (bundled_path("templates") / name).is_file():
                hint = f": `appreciate templates add {name}` copies the starter"
            raise TemplateProblem(
                name, None, f"no such template in {self.directory}{hint}"
            ) from None


@lru_cache(maxsize=128)
def _flat(template: Template) -> dict[str, Any]:
    """The template's globals (its own over the environment's: a ChainMap) as one dict, made
    once per compiled template: a new context copies them, and a ChainMap is slow to copy.
    The environments' globals are set once, when they are made."""
    return dict(template.globals)


def paragraphs(value: str) -> Markup:
    """Text as HTML paragraphs: a blank line starts a paragraph, a line break becomes `<br>`.
    Text not yet marked safe is escaped first."""
    text = str(escape(value)).replace("\r\n", "\n").strip()
    found = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if lines:
            found.append("<p>" + "<br>\n".join(lines) + "</p>")
    return Markup("\n".join(found))  # noqa: S704 - built from escaped text and fixed tags


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    tidy = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
    return tidy + "\n" if tidy else ""


class _OutputTooLong(Exception):
    """Thrown into a template's output as it passes the limit (so the traceback says where)."""


class _Output:
    """Collects rendered text, counting every piece against one limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def collect(self, pieces: Generator[str, None, None]) -> str:
        kept: list[str] = []
        keep = kept.append
        limit = self.limit
        for count, piece in enumerate(pieces):
            if not count % CHECK_EVERY:
                try:
                    check()
                except RenderTimeout as late:  # raised where the template is, for its line
                    pieces.throw(late)
                    raise  # pragma: no cover - a template cannot catch it
            self.total += len(piece)
            if self.total > limit:
                pieces.throw(_OutputTooLong())
                raise _OutputTooLong  # pragma: no cover - a template cannot catch it
            keep(piece)
        return "".join(kept)


class _BlockTable(dict[str, list[Any]]):
    """`context.blocks`, which puts a silent block first in every lookup while `silent` is set.

    The root of a template renders its top-level blocks by looking them up here; the setup
    pass wants the root's side effects on the context, not the blocks' output. Registering
    blocks (`setdefault`, used by `{% extends %}`) is untouched, and the real blocks stay
    behind the silent one (so a `required` block's check still sees its overrides).

    Once not silent, the block a lookup finds (the first: the override) is kept by `recorder`
    as it writes, or replaced by what the text pass wrote when its name is in `written`."""

    silent = True
    recorder: BlockRecorder | None = None
    written: Mapping[str, list[str]] = MappingProxyType({})
    asked: set[str] | None = None

    def __getitem__(self, name: str) -> list[Any]:
        if self.silent:
            return [_silent_block, *self.get(name, ())]
        blocks = super().__getitem__(name)
        if self.asked is not None:
            self.asked.add(name)
        if self.recorder is not None and self.recorder.wants(name):
            return _Blocks(blocks, self.recorder.wrap(name, blocks[0]))
        pieces = self.written.get(name)
        if pieces is not None:
            return _Blocks(blocks, replay(pieces, blocks[0]))
        return blocks


class _Blocks(list[Any]):
    """A block's overrides with the first one wrapped; `index` still finds the original (as
    `super()` looks it up: a replayed block calls no `super()`, a recorded one may)."""

    def __init__(self, blocks: list[Any], first: Any) -> None:
        super().__init__(blocks)
        self.original = blocks[0]
        self[0] = first

    def index(self, value: Any, *args: Any) -> int:
        if value is self.original:
            return 0
        return super().index(value, *args)


def _silent_block(_context: Any) -> Iterator[str]:
    return iter(())


def _generator(pieces: Iterator[str]) -> Generator[str, None, None]:
    return cast(Generator[str, None, None], pieces)


def _where(error: BaseException, fallback: str) -> tuple[str, int | None]:
    """The template file and line where `error` was raised: its innermost template frame."""
    found: tuple[str, int | None] = (fallback, None)
    trace = error.__traceback__
    while trace is not None:
        template = trace.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, Template):
            line = template.get_corresponding_lineno(trace.tb_lineno)
            found = (template.name or fallback, line)
        trace = trace.tb_next
    return found


def _describe(error: Exception, limit: int) -> str:
    if isinstance(error, _OutputTooLong):
        return f"the note is longer than {limit:,} characters (subject, text and HTML together)"
    if isinstance(error, TemplateNotFound):
        return f"there is no template {error.name}"
    if isinstance(error, TemplateError):
        return error.message or str(error)
    if isinstance(error, RecursionError):
        return "macros or blocks call each other too deeply"
    return f"{type(error).__name__}: {error}"
