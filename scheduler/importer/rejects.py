"""The rejects file: every rejected (or warned) row with its original cells and a reason.

Rules:

- It never replaces a file the import reads: the input itself by any path (a symlink,
  `./x.csv`, a hard link: compared by device and inode), nor the other `protected` files (the
  config, the store), refused before anything is read or written.
- It is written to a temporary file beside its target (created 0600: it holds customer data)
  and renamed into place when the import ends, so a crash or Ctrl-C never leaves half a file
  and leaves an earlier rejects file as it was. A symlink as the target is followed.
- It keeps the input's own header (less any `reason` column), so it imports again as it is,
  with the same column mapping. A cell a spreadsheet would run as a formula (starting with
  `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`, which the
  import takes off again (`scheduler.importer.source`).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from scheduler.errors import AppreciateError
from scheduler.importer.batch import Rejection
from scheduler.importer.source import RESERVED_COLUMNS
from scheduler.output import spreadsheet_safe

WARNING = "warning: "
"""How a warned row's reason starts: it was imported, all but the cells the reason names."""


class RejectsPathRefused(AppreciateError, ValueError):
    """A rejects file that would overwrite a file the command reads, or cannot be written."""

    exit_code = 2

    def __init__(self, rejects: Path, message: str) -> None:
        self.rejects = rejects
        self.message = message
        super().__init__(f"rejects file {rejects}: {message}")


def check_rejects_path(rejects: Path, protected: dict[str, Path]) -> None:
    """Refuse `rejects` if it is one of `protected` (by what they are called: "the file being
    imported", "the config file"...), compared as files, not as names."""
    target = Path(os.path.realpath(rejects))
    for what, path in protected.items():
        if _same_file(target, path):
            raise RejectsPathRefused(
                rejects, f"is {what} ({path}); writing it would destroy it: name another file"
            )
    if target.is_dir():
        raise RejectsPathRefused(rejects, "is a folder; name a file")
    if not target.parent.is_dir():
        raise RejectsPathRefused(rejects, f"its folder {target.parent} does not exist")


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet): they are not the same file
        return False


class RejectsWriter:
    """Writes rejections in the input's columns; see the module's rules."""

    def __init__(self, handle: IO[str], header: Sequence[str]) -> None:
        self._writer = csv.writer(handle)
        self._keep = [
            i for i, name in enumerate(header) if name.strip().lower() not in RESERVED_COLUMNS
        ]
        self._width = len(header)
        self._writer.writerow([*(spreadsheet_safe(header[i]) for i in self._keep), "reason"])

    def rejected(self, rejection: Rejection) -> None:
        self._write(rejection, f"line {rejection.line}: {rejection.reason}")

    def warned(self, warning: Rejection) -> None:
        self._write(
            warning,
            f"{WARNING}line {warning.line}: {warning.reason}; the rest of the row was imported "
            "(correct the cell and import this file again to complete it)",
        )

    def _write(self, rejection: Rejection, reason: str) -> None:
        raw = rejection.raw
        cells = [raw[i] if i < len(raw) else "" for i in self._keep]
        if len(raw) > self._width:  # keep what does not fit a column, in the reason
            reason += " (extra cells: " + " | ".join(raw[self._width :]) + ")"
        self._writer.writerow([*map(spreadsheet_safe, cells), spreadsheet_safe(reason)])


@contextmanager
def rejects_file(path: Path | None, header: Sequence[str]) -> Iterator[RejectsWriter | None]:
    """A RejectsWriter for `path` (None: no rejects file), put in place when the block ends
    without an error; on an error the temporary file is removed and `path` left alone."""
    if path is None:
        yield None
        return
    target = Path(os.path.realpath(path))
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as error:
        raise RejectsPathRefused(path, f"cannot be written: {error.strerror}") from None
    try:
        with os.fdopen(
            descriptor, "w", encoding="utf-8", errors="surrogateescape", newline=""
        ) as handle:
            yield RejectsWriter(handle, header)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
