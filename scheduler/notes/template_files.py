"""Reading the owner's template files, whatever their editor saved them as, or saying why not.

Rules:
- UTF-8, with or without a byte-order mark, is read as such.
- UTF-16 with a byte-order mark (what Windows Notepad calls "Unicode") is read too.
- Anything else (Windows-1252 "ANSI", UTF-16 without a mark) is a TemplateSyntaxError naming
  the file, the line and the byte that is not UTF-8, so the note, the check and the service's
  start-up say which file to save again as UTF-8; never a bare UnicodeDecodeError.
- Line ends are `\\n` whatever the file used (as Jinja's own loader reads them).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, TemplateSyntaxError

__all__ = ["TemplateFiles", "template_text"]


class TemplateFiles(FileSystemLoader):
    """Jinja's FileSystemLoader (same search, same reload on change), reading by the rules."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, encoding="latin-1")  # finds the file; never fails to decode

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        _, filename, uptodate = super().get_source(environment, template)
        return template_text(Path(filename).read_bytes(), template), filename, uptodate


def template_text(data: bytes, name: str) -> str:
    """The text of template file `name` holding `data` (see the module's rules)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start]
        raise TemplateSyntaxError(
            f"the file is not saved as UTF-8 (byte 0x{byte:02x} cannot be read): "
            "open it and save it again choosing UTF-8",
            line,
            name,
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
