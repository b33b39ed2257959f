"""DKIM signatures (RFC 6376) on the messages notes become, made with dkimpy.

Rules:
- rsa-sha256 with the key `[smtp] dkim_key_file` names (see `scheduler.config.dkim_key`), as
  `d=` dkim_domain and `s=` dkim_selector; relaxed/relaxed canonicalization (a relay that
  re-folds a header or trims trailing spaces does not break it); the whole body is signed (no
  `l=`: nothing can be appended to a signed note).
- Signed (`h=`): each header appreciate writes that the message has: From, Reply-To, To,
  Subject, Date, Message-ID, List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 asks that
  both be signed), MIME-Version, Content-Type, Content-Transfer-Encoding. Then OVERSIGNED are
  listed once more (RFC 6376 section 8.15): a copy of one of them added on the way (a second
  From, a Reply-To that diverts replies, another unsubscribe link, a new Subject) breaks the
  signature. From and Reply-To are listed so even when the message has none: no Reply-To can
  be added to a note sent without one. The other over-signed headers only when present.
- The DKIM-Signature header goes first; the message is otherwise unchanged (its stored header
  block keeps the signature too: `appreciate show` shows what was sent).
- The key is read once. `DkimSigner` signs a sample message at once and verifies it with the
  public key the DNS record carries: a key that cannot sign stops the start (a ConfigError
  naming the key setting and file), never a note. A note that fails to sign anyway raises
  `UnsendableMessage` (that note fails, with the reason): a note is never sent unsigned when
  signing is configured. No message holds a byte of the private key.
- Cost: dkimpy does RSA in pure Python, about 9-11 ms of CPU a note with a 2048-bit key on a
  2-core machine (`bench/dkim_signing.py`), nearly all of it the RSA step; it has no way to
  hand that step to OpenSSL. Delivery writes its notes in a worker thread (`Sender._prepare`),
  so signing happens there, beside building the message, and the event loop keeps serving the
  connections.

dkimpy (and dnspython, which it loads) is imported when a signer is made, not with this module:
only the commands that sign pay for it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from scheduler.errors import ConfigError, ConfigProblem
from scheduler.notes.header_safety import UnsendableMessage
from scheduler.notes.message import BuiltMessage

if TYPE_CHECKING:
    from scheduler.config.dkim_key import DkimKey
    from scheduler.config.file import Config

SIGNED = (
    b"from",
    b"reply-to",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
"""Every header appreciate writes, signed when the message has it."""
OVERSIGNED = (
    b"from",
    b"reply-to",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
"""Listed once more, so a copy added later breaks the signature."""
ALWAYS_OVERSIGNED = frozenset({b"from", b"reply-to"})
"""Over-signed even when the message has none (see the module's rules)."""
CANONICALIZATION = (b"relaxed", b"relaxed")
_SAMPLE = (
    b"From: appreciate <postmaster@{domain}>\r\nTo: postmaster@{domain}\r\n"
    b"Subject: DKIM self-check\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <dkim-self-check@{domain}>\r\n\r\nA signature made at start, never sent.\r\n"
)


class DkimSigner:
    """Signs built messages with one key, selector and domain (see the module's rules)."""

    def __init__(self, key: DkimKey, selector: str, domain: str) -> None:
        """Raises ValueError (without the key's content) when a sample message does not sign
        and verify with this key."""
        import dkim  # noqa: PLC0415 - dkimpy and dnspython load only when notes are signed

        self._dkim: Any = dkim
        self.key = key
        self.selector = selector
        self.domain = domain
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")
        self._check()

    @classmethod
    def configured(cls, config: Config, *, unreadable_ok: bool = False) -> DkimSigner | None:
        """The signer `[smtp]` asks for, its key read and checked; None when notes are not
        signed (or, with `unreadable_ok`, when the key's file cannot be read: see
        `Config.dkim_key`). Raises ConfigError naming smtp.dkim_key_file and the file."""
        key = config.dkim_key(unreadable_ok=unreadable_ok)
        if key is None:
            return None
        smtp = config.settings.smtp
        try:
            return cls(key, smtp.dkim_selector, smtp.dkim_domain)
        except ValueError as error:
            problem = ConfigProblem("smtp.dkim_key_file", f"{key.path}: {error}")
            raise ConfigError(config.path, [problem]) from None

    def sign(self, message: BuiltMessage) -> BuiltMessage:
        """`message` with its DKIM-Signature header first. Raises UnsendableMessage when it
        cannot be signed."""
        try:
            header = self._signature(message.data)
        except Exception as error:  # dkimpy's own, and the errors it lets through (binascii's)
            raise UnsendableMessage(f"it could not be signed with DKIM: {_reason(error)}") from None
        return replace(
            message, headers=header.decode("ascii") + message.headers, data=header + message.data
        )

    def _signature(self, data: bytes) -> bytes:
        """The DKIM-Signature header for the message `data`, CRLF at its end."""
        signer = self._dkim.DKIM(data, linesep=b"\r\n")
        present = {name.lower() for name, _ in signer.headers}
        include = [name for name in SIGNED if name in present]
        include += [name for name in OVERSIGNED if name in present or name in ALWAYS_OVERSIGNED]
        header: bytes = signer.sign(
            self._selector,
            self._domain,
            self.key.pem,
            canonicalize=CANONICALIZATION,
            include_headers=include,
        )
        return header

    def _check(self) -> None:
        """Sign a sample message and verify it as a receiver would, with the DNS record's
        public key (looked up here, not in DNS)."""
        sample = _SAMPLE.replace(b"{domain}", self._domain)
        try:
            signed = self._signature(sample) + sample
            verified = self._dkim.verify(signed, dnsfunc=self._record, minkey=1024)
        except Exception as error:  # as in `sign`
            raise ValueError(f"a sample message could not be signed: {_reason(error)}") from None
        if not verified:
            raise ValueError("a sample message signed with this key did not verify")

    def _record(self, name: bytes, timeout: float = 5) -> bytes:
        """The DNS record of this signer's key (dkimpy's `dnsfunc`)."""
        return self.key.txt_value.encode("ascii")


def _reason(error: Exception) -> str:
    """What went wrong: dkimpy's message for its own errors about the message, never the words
    of one about the key or of any other error (they may quote bytes of the key)."""
    kind = type(error)
    if kind.__name__ == "KeyFormatError":
        return "the key could not be used"
    if kind.__module__ == "dkim" and str(error):
        return str(error)
    return f"dkimpy failed ({kind.__module__}.{kind.__qualname__})"
