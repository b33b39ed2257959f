"""The DKIM signing key: read from the file `[smtp] dkim_key_file` names, checked, and described
as the DNS record receivers look up to verify the signatures made with it.

Rules:
- The file is a regular one (or a link to one): a named pipe, a folder or a device is refused
  without being opened or waited for (`scheduler.config.secret_file`).
- The file is PEM, unencrypted: PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what `appreciate config
  dkim-key` and `openssl genpkey` write) or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`); LF or
  CRLF line ends.
- Only RSA keys sign (rsa-sha256, which every receiver verifies). Ed25519 (RFC 8463) is refused
  with the reason: dkimpy signs with it only through PyNaCl, and many receivers do not verify it
  yet. EC, DSA and other keys have no DKIM algorithm.
- Size (RFC 8301): under 1024 bits is refused (receivers must not accept such signatures);
  1024 works but is warned about; 2048 (what `dkim-key` makes) to 4096 is right; over 4096 is
  warned about (receivers need verify no more than 4096).
- A problem is said without quoting the file: no message holds a byte of it, whether it is a
  public key or certificate given by mistake, an encrypted key or no key at all.
- `DkimKey` keeps the private key in the form dkimpy's `sign` takes (PKCS#1 PEM, LF line ends),
  out of its repr.

cryptography is imported here at the top: import this module only where a key is read or made
(loading cryptography takes tens of milliseconds that other commands should not pay).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from scheduler.config.secret_file import NotARegularFile, read_regular_file
from scheduler.errors import AppreciateError

SMALLEST_BITS = 1024
"""Smaller RSA keys are refused (RFC 8301: verifiers must not accept them)."""
ADVISED_BITS = 2048
"""`appreciate config dkim-key` makes keys this size; smaller ones are warned about."""
LARGEST_VERIFIED_BITS = 4096
"""Receivers need verify keys no larger than this (RFC 8301); larger ones are warned about."""
TXT_STRING = 255
"""The longest string one TXT record holds; a longer value is written as several."""
_LARGEST_FILE = 64 * 1024
_MAKE_ONE = "make one with `appreciate config dkim-key`"


class DkimKeyProblem(AppreciateError, ValueError):
    """A key file that cannot be used to sign; the message names the file, never its content."""

    exit_code = 2


class DkimKeyUnreadable(DkimKeyProblem):
    """A key file that cannot be read at all (missing, not allowed): it may exist only where
    the service runs (a systemd credential)."""


@dataclass(frozen=True)
class DkimKey:
    """An RSA private key read for DKIM, and its public half as DNS publishes it."""

    path: Path
    bits: int
    public_key: str
    """The public key (SubjectPublicKeyInfo, DER, base64): the `p=` of the DNS record."""
    pem: bytes = field(repr=False, compare=False)
    """The private key as dkimpy's `sign` takes it (PKCS#1 PEM). Never shown."""

    @property
    def txt_value(self) -> str:
        """The DNS record's value, `v=DKIM1; k=rsa; p=...`."""
        return f"v=DKIM1; k=rsa; p={self.public_key}"

    def dns_record(self, selector: str, domain: str) -> str:
        """`{selector}._domainkey.{domain} TXT "..."`: the record to publish, its value split
        into strings of at most 255 characters as DNS requires (receivers join them)."""
        value = self.txt_value
        strings = " ".join(
            f'"{value[start : start + TXT_STRING]}"' for start in range(0, len(value), TXT_STRING)
        )
        return f"{selector}._domainkey.{domain} TXT {strings}"

    def size_warning(self) -> str | None:
        """Why this key's size deserves a change (see the module's rules), or None."""
        if self.bits < ADVISED_BITS:
            return (
                f"{self.path} is a {self.bits}-bit RSA key: receivers still accept it, but "
                f"{ADVISED_BITS} bits is the norm; {_MAKE_ONE} and publish its record"
            )
        if self.bits > LARGEST_VERIFIED_BITS:
            return (
                f"{self.path} is a {self.bits}-bit RSA key: receivers need verify keys of at most "
                f"{LARGEST_VERIFIED_BITS} bits, so some may ignore its signatures; use "
                f"{ADVISED_BITS} bits"
            )
        return None


def load_dkim_key(path: Path) -> DkimKey:
    """The key in the PEM file at `path`, checked (see the module's rules); raises
    DkimKeyProblem naming the file and what is wrong, never quoting it."""
    try:
        data = read_regular_file(path, _LARGEST_FILE)
    except NotARegularFile as error:
        raise DkimKeyProblem(str(error)) from None
    except OSError as error:
        raise DkimKeyUnreadable(f"cannot read {path}: {error.strerror}") from None
    if len(data) > _LARGEST_FILE:
        raise DkimKeyProblem(f"{path} is far too large to be a key file")
    if b"PRIVATE KEY-----" not in data and (
        b"PUBLIC KEY-----" in data or b"CERTIFICATE-----" in data
    ):
        raise DkimKeyProblem(
            f"{path} holds a public key or a certificate, not the private key: the private key "
            "goes in this file, its public half in DNS"
        )
    if b"-----BEGIN" not in data:
        raise DkimKeyProblem(
            f"{path} is not a PEM private key (a text file that begins -----BEGIN PRIVATE "
            f"KEY-----); {_MAKE_ONE}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying a passphrase is needed
        raise DkimKeyProblem(
            f"{path} is encrypted with a passphrase: the service cannot type one; store the key "
            "unencrypted (`openssl pkey -in OLD -out NEW`) in a file only its user can read"
        ) from None
    except (ValueError, UnsupportedAlgorithm):  # never quoted: the error may hold key bytes
        raise DkimKeyProblem(
            f"{path} holds no private key appreciate can read (PEM, PKCS#8 or PKCS#1); {_MAKE_ONE}"
        ) from None
    return _checked(path, key)


def make_dkim_key(path: Path, bits: int = ADVISED_BITS) -> DkimKey:
    """A new RSA key of `bits` written to `path` (PKCS#8 PEM, readable by its owner only),
    never over an existing file (its record may be published already)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DkimKeyProblem(
            f"{path} exists already: a key is never written over (its DNS record may be "
            "published); choose another file, or remove that one first"
        ) from None
    except OSError as error:
        raise DkimKeyProblem(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return _checked(path, key)


def _checked(path: Path, key: object) -> DkimKey:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimKeyProblem(
            f"{path} is an Ed25519 key: appreciate signs with RSA keys (rsa-sha256), which every "
            f"receiver verifies, and many do not verify Ed25519 yet; {_MAKE_ONE}"
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "") or "other"
        raise DkimKeyProblem(
            f"{path} holds a key of type {kind}: DKIM signs with RSA keys (rsa-sha256); {_MAKE_ONE}"
        )
    if key.key_size < SMALLEST_BITS:
        raise DkimKeyProblem(
            f"{path} is a {key.key_size}-bit RSA key: receivers ignore signatures from keys "
            f"under {SMALLEST_BITS} bits (RFC 8301); {_MAKE_ONE}"
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return DkimKey(path, key.key_size, base64.b64encode(public).decode("ascii"), pem)
