"""A private Postfix on a loopback port that takes every message and throws it away (the
`discard` transport): a real mail server for tests and for `bench/deliver.py --server postfix`.

Debian's postfix package (`apt-get install postfix`); run as root, since Postfix's master
starts as root and drops to the `postfix` user. The instance has a folder of its own (a new
temporary one, readable by that user): `conf/` (main.cf, master.cf), `queue/`, `data/` and
`postfix.log`, and one listener, `127.0.0.1:PORT` (smtpd, no chroot). It never touches the
system's instance: not /etc/postfix, not /var/spool/postfix, not port 25; nothing is relayed
(every transport is `discard`), nothing is delivered locally (`mydestination` is empty).

`private_postfix` starts it and always stops it (`postfix stop`; the master killed if that
fails) and removes its folder, also when the block fails. `PostfixUnavailable` says why it
could not start (no postfix, not root, or its log's last lines).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
STOP_WITHIN = 60.0
"""Seconds `postfix start` or `stop` may take (each waits for the master itself)."""

_SERVICES = """\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixUnavailable(RuntimeError):
    """Postfix could not be started here (the message says why)."""


@dataclass(frozen=True)
class Postfix:
    port: int
    folder: Path

    @property
    def log(self) -> str:
        """What the instance logged so far (every line of every Postfix process)."""
        path = self.folder / "postfix.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def why_unavailable() -> str | None:
    """Why Postfix cannot be started here, or None if it may."""
    if not Path(POSTFIX).exists():
        return f"{POSTFIX} not found (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    return None


def _main_cf(folder: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-appreciate-test
maillog_file = {folder}/postfix.log
maillog_file_prefixes = {folder}
myhostname = appreciate-test.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
virtual_transport = discard
alias_maps =
alias_database =
biff = no
"""


def _configure(folder: Path, port: int, settings: Mapping[str, str], services: str) -> Path:
    """Writes the instance's configuration in `folder` (`settings` added to main.cf,
    `services` to master.cf); its `conf` folder."""
    conf = folder / "conf"
    for name in ("conf", "queue", "data"):
        (folder / name).mkdir()
    shutil.chown(folder / "data", user="postfix")
    added = "".join(f"{name} = {value}\n" for name, value in settings.items())
    (conf / "main.cf").write_text(_main_cf(folder) + added, encoding="utf-8")
    listener = f"127.0.0.1:{port} inet n - n - - smtpd\n"
    (conf / "master.cf").write_text(listener + _SERVICES + services, encoding="utf-8")
    return conf


def _postfix(conf: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTFIX, "-c", str(conf), command],
        capture_output=True,
        text=True,
        timeout=STOP_WITHIN,
        check=False,
    )


def _stop(folder: Path, conf: Path) -> None:
    """`postfix stop` (which waits for the master); if the master still runs, it is killed
    (its children follow it): only the process named in this instance's pid file, and only
    if it is Postfix's master."""
    with suppress(subprocess.TimeoutExpired):
        _postfix(conf, "stop")
    try:
        pid = int((folder / "queue" / "pid" / "master.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return  # no master (never started, or stopped)
    if command.split(b"\0")[0].endswith(b"/master"):
        os.kill(pid, signal.SIGKILL)


@contextmanager
def private_postfix(
    port: int | None = None, settings: Mapping[str, str] | None = None, services: str = ""
) -> Iterator[Postfix]:
    """A private Postfix listening on 127.0.0.1:`port` (a free port if None) for the block
    (see the module's rules), with `settings` added to its main.cf (such as
    `smtpd_discard_ehlo_keywords = pipelining`; a setting given twice, the later wins) and
    `services` to its master.cf (such as `local unix - n n - - local`, for an instance that
    delivers); raises `PostfixUnavailable` if it cannot start."""
    reason = why_unavailable()
    if reason is not None:
        raise PostfixUnavailable(reason)
    port = port or free_port()
    folder = Path(tempfile.mkdtemp(prefix="appreciate-postfix-"))
    folder.chmod(0o755)  # the postfix user reads its queue and data folders below it
    conf = folder / "conf"
    try:
        conf = _configure(folder, port, settings or {}, services)
        started = _postfix(conf, "start")
        instance = Postfix(port, folder)
        if started.returncode != 0:
            said = (started.stdout + started.stderr + instance.log).strip().splitlines()
            raise PostfixUnavailable("postfix start failed: " + " | ".join(said[-5:]))
        yield instance
    finally:
        _stop(folder, conf)
        shutil.rmtree(folder, ignore_errors=True)
