"""A private Dovecot IMAP server on a loopback port, holding one Maildir per user: a real
mailbox for the inbound tests and for `bench/inbound.py`.

Debian's dovecot-imapd package (`apt-get install dovecot-imapd`); run as root, since Dovecot's
master starts as root. The instance lives in a folder of its own (a new temporary one): its
configuration, `run/` and `state/`, `dovecot.log`, and `mail/USER/Maildir`, owned by the
`mail` user, as whom Dovecot reads and writes mail (so another private server, such as the
tests' Postfix, can deliver into the same Maildir as that user). It never touches the system's
instance: not /etc/dovecot, not port 143. Any user logs in with PASSWORD; only IMAP, plain
text on loopback, or IMAPS with the given certificate.

`private_dovecot` starts it, waits until it answers, always stops it, and removes its folder.
`DovecotUnavailable` says why it could not start.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"  # noqa: S105 - a throwaway server's, on loopback
MAIL_USER = "mail"
START_WITHIN = 30.0


class DovecotUnavailable(RuntimeError):
    """Dovecot could not be started here (the message says why)."""


@dataclass(frozen=True)
class Dovecot:
    port: int
    folder: Path
    tls: bool

    def maildir(self, user: str) -> Path:
        """The user's Maildir (made on first use, owned by the mail user)."""
        path = self.folder / "mail" / user / "Maildir"
        for part in ("cur", "new", "tmp"):
            (path / part).mkdir(parents=True, exist_ok=True)
        owner = pwd.getpwnam(MAIL_USER)
        for here in [path.parent, path, *(path / part for part in ("cur", "new", "tmp"))]:
            os.chown(here, owner.pw_uid, owner.pw_gid)
        return path

    def deliver(self, user: str, raw: bytes, *, seen: bool = False) -> Path:
        """`raw` put in the user's INBOX as a new, unseen message (Maildir's own way: written
        in tmp/, then moved to new/), or as one the owner has read (`seen`: in cur/, flag S)."""
        maildir = self.maildir(user)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.appreciate-test"
        staged = maildir / "tmp" / name
        staged.write_bytes(raw)
        owner = pwd.getpwnam(MAIL_USER)
        os.chown(staged, owner.pw_uid, owner.pw_gid)
        if seen:
            return staged.rename(maildir / "cur" / f"{name}:2,S")
        return staged.rename(maildir / "new" / name)

    def messages(self, user: str, folder: str = "") -> list[Path]:
        """The message files of a folder ("" is the INBOX, else e.g. "processed")."""
        base = self.maildir(user) / (f".{folder}" if folder else "")
        return sorted(
            path
            for part in ("cur", "new")
            if (base / part).is_dir()
            for path in (base / part).iterdir()
        )

    @property
    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def why_unavailable() -> str | None:
    """Why Dovecot cannot be started here, or None if it may."""
    if not Path(DOVECOT).exists():
        return f"{DOVECOT} not found (Debian: apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "a private Dovecot instance must be started as root"
    return None


def _config(folder: Path, port: int, certificate: tuple[Path, Path] | None) -> str:
    owner = pwd.getpwnam(MAIL_USER)
    if certificate is None:
        ssl = "ssl = no\n"
        listeners = f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n"
        listeners += "  inet_listener imaps {\n    port = 0\n  }\n"
    else:
        cert, key = certificate
        ssl = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\n"
        listeners = "  inet_listener imap {\n    port = 0\n  }\n"
        listeners += (
            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n"
            "    ssl = yes\n  }\n"
        )
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = appreciate-test-{port}
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {owner.pw_uid}
first_valid_gid = {owner.pw_gid}
mail_location = maildir:{folder}/mail/%u/Maildir
mail_uid = {owner.pw_uid}
mail_gid = {owner.pw_gid}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={folder}/mail/%u
}}
service imap-login {{
{listeners}  chroot =
}}
service anvil {{
  chroot =
}}
"""


def _answers(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


@contextmanager
def private_dovecot(
    port: int | None = None, certificate: tuple[Path, Path] | None = None
) -> Iterator[Dovecot]:
    """A private Dovecot on 127.0.0.1:`port` (a free one if None) for the block; IMAPS with
    `certificate` (certificate file, key file), else plain IMAP. Raises `DovecotUnavailable`."""
    reason = why_unavailable()
    if reason is not None:
        raise DovecotUnavailable(reason)
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="appreciate-dovecot-"))
    folder.chmod(0o755)
    for name in ("run", "state", "mail"):
        (folder / name).mkdir()
    owner = pwd.getpwnam(MAIL_USER)
    os.chown(folder / "mail", owner.pw_uid, owner.pw_gid)
    config = folder / "dovecot.conf"
    config.write_text(_config(folder, port, certificate), encoding="utf-8")
    instance = Dovecot(port, folder, certificate is not None)
    try:
        with (folder / "start.log").open("w") as said:  # a pipe would stay open: it forks
            started = subprocess.run(
                [DOVECOT, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=said,
                stderr=subprocess.STDOUT,
                timeout=START_WITHIN,
                check=False,
            )
        if started.returncode != 0:
            output = (folder / "start.log").read_text(errors="replace") + instance.log
            lines = output.strip().splitlines()
            raise DovecotUnavailable("dovecot failed to start: " + " | ".join(lines[-5:]))
        deadline = time.monotonic() + START_WITHIN
        while not _answers(port):
            if time.monotonic() > deadline:
                raise DovecotUnavailable("dovecot did not answer: " + instance.log[-500:])
            time.sleep(0.05)
        yield instance
    finally:
        with suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                [DOVECOT, "-c", str(config), "stop"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=START_WITHIN,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)
