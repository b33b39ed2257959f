"""Reading a small file a setting names (a password, a password hash, a DKIM key), never waiting.

Rules:
- Only a regular file is read; a symlink is followed to what it names (systemd's credentials
  and secret managers' mounts are regular files behind links). A named pipe, a socket, a folder
  or a device is refused before it is opened: a pipe with no writer would keep start-up, and
  every reload, waiting for ever, and opening some devices does something (a watchdog starts).
- The file is opened non-blocking and checked again through the open descriptor, so one swapped
  for a pipe between the check and the open is refused too, without waiting.
- At most `limit` + 1 bytes are read: the caller refuses a file longer than `limit`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


class NotARegularFile(ValueError):
    """The path names something other than a regular file; the message says what it is."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is not a regular file (it is {kind})")
        self.path = path
        self.kind = kind


def read_regular_file(path: Path, limit: int) -> bytes:
    """The first `limit` + 1 bytes of the regular file `path` (see the module's rules).
    Raises NotARegularFile for anything else, OSError when it cannot be opened or read."""
    _check(path, os.stat(path).st_mode)
    descriptor = os.open(path, _OPEN_FLAGS)
    with open(descriptor, "rb") as file:  # closes the descriptor, whatever happens
        _check(path, os.fstat(descriptor).st_mode)
        return file.read(limit + 1)


def _check(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISFIFO(mode):
        kind = "a named pipe"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:  # pragma: no cover - no other kind of file on Linux
        kind = "not a file"
    raise NotARegularFile(path, kind)
