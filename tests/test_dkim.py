"""DKIM: the key read from its file and checked, the settings that go with it, and notes signed
with dkimpy, each signature verified as a receiver would (dkimpy's `verify`, with the DNS
record the key's owner publishes standing in for the DNS lookup)."""

from __future__ import annotations

import base64
import logging
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from scheduler.config.dkim_key import (
    DkimKey,
    DkimKeyProblem,
    DkimKeyUnreadable,
    load_dkim_key,
    make_dkim_key,
)
from scheduler.config.file import load_config, parse_settings
from scheduler.errors import ConfigError
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.header_safety import UnsendableMessage
from scheduler.notes.message import BuiltMessage, MessageParts, build_message, make_message_id

SELECTOR = "mail2026"
DOMAIN = "example.com"
MINIMAL = (
    '[business]\nname = "Ada\'s Bakery"\nsender_name = "Ada"\nsender_email = "ada@example.com"\n'
)
SIGNED_ALWAYS = {"from", "to", "subject", "date", "message-id"}
ONE_CLICK = {"list-unsubscribe", "list-unsubscribe-post"}


# Keys, made here (never committed) -----------------------------------------------------------


@cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem(key: object, form: str = "pkcs8") -> bytes:
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, formats[form], serialization.NoEncryption()
    )


def small_rsa_key(bits: int = 768) -> rsa.RSAPrivateKey:
    """An RSA key smaller than cryptography will make (it refuses under 1024 bits), from
    primes found here (seeded: the same key every run)."""
    rng = random.Random(bits)

    def prime() -> int:
        while True:
            candidate = rng.getrandbits(bits // 2) | (3 << (bits // 2 - 2)) | 1
            if candidate % 65537 != 1 and all(
                pow(base, candidate - 1, candidate) == 1 for base in (2, 3, 5, 7, 11, 13, 17, 19)
            ):
                return candidate

    p, q = prime(), prime()
    d = pow(65537, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(65537, p * q),
    )
    return numbers.private_key()


def key_file(folder: Path, content: bytes, name: str = "dkim.pem") -> Path:
    path = folder / name
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def signer_for(tmp_path: Path, bits: int = 2048) -> DkimSigner:
    return DkimSigner(load_dkim_key(key_file(tmp_path, pem(rsa_key(bits)))), SELECTOR, DOMAIN)


# What a receiver does --------------------------------------------------------------------------


def published(record_line: str) -> bytes:
    """The TXT record's value as DNS hands it over, from the line `config check` prints: its
    quoted strings joined (RFC 6376 3.6.2.2)."""
    return "".join(re.findall(r'"([^"]*)"', record_line)).encode("ascii")


def dns(key: DkimKey, selector: str = SELECTOR, domain: str = DOMAIN) -> Callable[..., bytes]:
    """dkimpy's `dnsfunc`: the record published for `key`, and nothing at any other name."""
    name = f"{selector}._domainkey.{domain}.".encode()
    record = published(key.dns_record(selector, domain))

    def lookup(qname: bytes, timeout: float = 5) -> bytes:
        return record if qname == name else b""

    return lookup


def verifies(data: bytes, key: DkimKey) -> bool:
    return bool(dkim.verify(data, dnsfunc=dns(key)))


def signed_headers(data: bytes) -> list[str]:
    """The names in the DKIM-Signature's h= tag, in order, as written (lower case)."""
    header = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    signature = next(line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:"))
    match = re.search(r"\bh=([^;]+);", signature)
    assert match is not None
    return [name.strip() for name in match.group(1).split(":")]


def note(**changes: object) -> MessageParts:
    values: dict[str, object] = {
        "from_name": "Ada",
        "from_address": "ada@example.com",
        "to_name": "Ann Lee",
        "to_address": "ann@example.org",
        "reply_to": None,
        "subject": "Happy birthday, Ann",
        "text": "Dear Ann,\n\nHappy birthday from all of us.\n\nAda\n",
        "html": None,
        "message_id": make_message_id(DOMAIN),
        "date": datetime(2027, 6, 15, 9, 0, tzinfo=UTC),
        "unsubscribe_url": "https://thanks.example.com/u/abc123",
        "unsubscribe_mailto": "stop@example.com",
    }
    values.update(changes)
    return MessageParts(**values)  # type: ignore[arg-type]


def replace_header(data: bytes, name: bytes, value: bytes) -> bytes:
    head, body = data.split(b"\r\n\r\n", 1)
    lines = re.sub(rb"\r\n[ \t]", b"\x00", head).split(b"\r\n")  # keep folded lines whole
    replaced = [
        name + b": " + value if line.lower().startswith(name.lower() + b":") else line
        for line in lines
    ]
    assert replaced != lines, f"no {name!r} header"
    return b"\r\n".join(replaced).replace(b"\x00", b"\r\n ") + b"\r\n\r\n" + body


def add_header(data: bytes, line: bytes) -> bytes:
    head, body = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n" + line + b"\r\n\r\n" + body


# Signing ---------------------------------------------------------------------------------------


def test_a_signed_note_verifies_and_keeps_its_message(tmp_path: Path) -> None:
    signer = signer_for(tmp_path)
    built = build_message(note())
    signed = signer.sign(built)
    assert signed.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert signed.data.endswith(built.data)
    assert signed.headers.startswith("DKIM-Signature: ")
    assert signed.headers.endswith(built.headers)
    assert (signed.mail_from, signed.rcpt_to, signed.message_id, signed.smtputf8) == (
        built.mail_from,
        built.rcpt_to,
        built.message_id,
        built.smtputf8,
    )
    assert verifies(signed.data, signer.key)
    assert f"d={DOMAIN};" in signed.headers
    assert f"s={SELECTOR};" in signed.headers
    assert max(len(line) for line in signed.headers.split("\r\n")) <= 78


def test_the_headers_rfc_8058_asks_for_are_signed_and_the_sender_over_signed(
    tmp_path: Path,
) -> None:
    signed = signer_for(tmp_path).sign(build_message(note(reply_to="hello@example.com")))
    names = signed_headers(signed.data)
    assert SIGNED_ALWAYS | ONE_CLICK | {"reply-to", "mime-version", "content-type"} <= set(names)
    for name in (*SIGNED_ALWAYS, *ONE_CLICK, "reply-to"):
        assert names.count(name) == 2, f"{name} is not over-signed"
    assert names.count("content-type") == 1
    assert "dkim-signature" not in names


def test_only_headers_the_note_has_are_signed_but_reply_to_is_always_locked(
    tmp_path: Path,
) -> None:
    bare = note(unsubscribe_url=None, unsubscribe_mailto=None, reply_to=None)
    signed = signer_for(tmp_path).sign(build_message(bare))
    names = signed_headers(signed.data)
    assert not ONE_CLICK & set(names)
    assert names.count("reply-to") == 1  # none in the message: listed once, so none can be added
    assert names.count("content-transfer-encoding") == 1
    mailto_only = signer_for(tmp_path).sign(build_message(note(unsubscribe_url=None)))
    assert "list-unsubscribe" in signed_headers(mailto_only.data)
    assert "list-unsubscribe-post" not in signed_headers(mailto_only.data)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"Subject", b"You won a prize"),
        (b"To", b"mallory@example.net"),
        (b"List-Unsubscribe", b"<https://evil.example/u/abc123>"),
        (b"Date", b"Wed, 16 Jun 2027 09:00:00 +0000"),
    ],
)
def test_a_note_changed_after_signing_fails_to_verify(
    tmp_path: Path, name: bytes, value: bytes
) -> None:
    signer = signer_for(tmp_path)
    signed = signer.sign(build_message(note())).data
    assert verifies(signed, signer.key)
    assert not verifies(replace_header(signed, name, value), signer.key)


def test_a_changed_body_fails_to_verify(tmp_path: Path) -> None:
    signer = signer_for(tmp_path)
    signed = signer.sign(build_message(note())).data
    assert not verifies(
        signed.replace(b"Happy birthday from", b"Pay this invoice from"), signer.key
    )
    assert not verifies(signed + b"Appended by someone else.\r\n", signer.key)


@pytest.mark.parametrize(
    "added",
    [
        b"Reply-To: mallory@example.net",
        b"From: Bank <alerts@bank.example>",
        b"Subject: Urgent",
        b"List-Unsubscribe: <https://evil.example/u/1>",
    ],
)
def test_a_header_added_after_signing_fails_to_verify(tmp_path: Path, added: bytes) -> None:
    signer = signer_for(tmp_path)
    signed = signer.sign(build_message(note())).data
    assert not verifies(add_header(signed, added), signer.key)


def test_a_relay_refolding_headers_does_not_break_the_signature(tmp_path: Path) -> None:
    """relaxed/relaxed: white space changed in transit, and a header a relay adds, are fine."""
    signer = signer_for(tmp_path)
    signed = signer.sign(build_message(note())).data
    relayed = replace_header(signed, b"Subject", b"Happy   birthday,\r\n\tAnn  ")
    relayed = add_header(relayed, b"Received: from relay.example.com by mx.example.org")
    assert verifies(relayed, signer.key)


@pytest.mark.parametrize(
    "changes",
    [
        {"to_name": "Nguyễn Thị Minh Khai", "subject": "Chúc mừng sinh nhật, Minh Khai! 🎂"},
        {"to_name": "Владимир Петров", "subject": "Днём рождения!", "text": "Дорогой Владимир\n"},
        {"from_name": "Bäckerei Müller", "html": "<p>Liebe Zoë, <b>alles Gute</b>!</p>\n"},
        {"subject": "A " * 60 + "long subject", "html": "<p>" + "wide " * 300 + "</p>"},
        {"to_address": "josé@example.org", "to_name": "José"},  # SMTPUTF8: a UTF-8 header
        {"to_address": "ann@bücher.example", "reply_to": "hello@example.com"},
    ],
)
def test_notes_with_every_kind_of_text_verify(tmp_path: Path, changes: dict[str, str]) -> None:
    signer = signer_for(tmp_path)
    built = build_message(note(**changes))
    signed = signer.sign(built)
    assert verifies(signed.data, signer.key), changes
    if "html" in changes:
        assert b"multipart/alternative" in signed.data


def test_a_1024_bit_key_signs_too(tmp_path: Path) -> None:
    signer = signer_for(tmp_path, 1024)
    assert signer.key.bits == 1024
    assert verifies(signer.sign(build_message(note())).data, signer.key)


def test_a_pkcs1_key_with_crlf_line_ends_is_read(tmp_path: Path) -> None:
    """dkimpy's own reader wants LF line ends: the key is handed to it re-written."""
    content = pem(rsa_key(), "pkcs1").replace(b"\n", b"\r\n")
    key = load_dkim_key(key_file(tmp_path, content))
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    assert verifies(signer.sign(build_message(note())).data, key)


def test_a_signature_made_with_another_key_does_not_verify(tmp_path: Path) -> None:
    mine = signer_for(tmp_path)
    other = DkimSigner(
        load_dkim_key(key_file(tmp_path, pem(rsa_key(1024)), "other.pem")), SELECTOR, DOMAIN
    )
    assert not verifies(other.sign(build_message(note())).data, mine.key)


def test_the_dns_record_carries_the_public_key_in_strings_dns_can_hold(tmp_path: Path) -> None:
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key(4096))))
    line = key.dns_record(SELECTOR, DOMAIN)
    assert line.startswith(f'{SELECTOR}._domainkey.{DOMAIN} TXT "v=DKIM1; k=rsa; p=MII')
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) > 1
    assert all(len(string) <= 255 for string in strings)
    public = rsa_key(4096).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert published(line) == b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


# The key file ----------------------------------------------------------------------------------


def ed25519_pem() -> bytes:
    return pem(ed25519.Ed25519PrivateKey.generate())


def ec_pem() -> bytes:
    return pem(ec.generate_private_key(ec.SECP256R1()))


def public_pem() -> bytes:
    return (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def encrypted_pem() -> bytes:
    return rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )


MARKER = "SECRETMARKERx7Q"
"""Written into broken key files: no message may ever repeat it."""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            f"-----BEGIN PRIVATE KEY-----\n{MARKER}{MARKER}\n-----END PRIVATE KEY-----\n".encode(),
            "holds no private key appreciate can read",
        ),
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIB"
            + MARKER.encode()
            + b"==\n-----END RSA PRIVATE KEY-----\n",
            "holds no private key appreciate can read",
        ),
        (f"{MARKER} is my key\n".encode(), "is not a PEM private key"),
        (b"", "is not a PEM private key"),
        (bytes(range(256)) + MARKER.encode(), "is not a PEM private key"),
        (public_pem(), "holds a public key or a certificate, not the private key"),
        (encrypted_pem(), "is encrypted with a passphrase"),
        (ed25519_pem(), "is an Ed25519 key: appreciate signs with RSA keys"),
        (ec_pem(), "holds a key of type EC: DKIM signs with RSA keys"),
        (pem(small_rsa_key()), "is a 768-bit RSA key: receivers ignore signatures from keys"),
    ],
    ids=[
        "garbled-pkcs8",
        "garbled-pkcs1",
        "text",
        "empty",
        "binary",
        "public-key",
        "encrypted",
        "ed25519",
        "ec",
        "768-bit",
    ],
)
def test_a_key_that_cannot_sign_is_refused_saying_why_never_what_it_holds(
    tmp_path: Path, content: bytes, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = key_file(tmp_path, content)
    with pytest.raises(DkimKeyProblem) as raised:
        load_dkim_key(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert expected in message
    assert MARKER not in message
    assert MARKER not in caplog.text
    body_lines = [line for line in content.splitlines() if line and b"-----" not in line]
    for line in body_lines[:3]:
        assert line.decode("latin-1") not in message


def test_a_missing_or_unreadable_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DkimKeyUnreadable, match=r"cannot read .*nope\.pem: No such file"):
        load_dkim_key(tmp_path / "nope.pem")


def test_a_key_file_that_is_not_a_regular_file_is_refused_but_a_link_to_one_is_read(
    tmp_path: Path,
) -> None:
    """A folder or a device was opened and read (a named pipe with no writer: waited on for
    ever, see tests/test_cli.py); each is refused for what it is, and as a problem with the key
    rather than a file missing here. A link (systemd's credentials) is followed."""
    for path, kind in ((tmp_path, "a folder"), (Path("/dev/zero"), "a device")):
        with pytest.raises(DkimKeyProblem) as caught:
            load_dkim_key(path)
        assert str(caught.value) == f"{path} is not a regular file (it is {kind})"
        assert not isinstance(caught.value, DkimKeyUnreadable)
    (tmp_path / "link.pem").symlink_to(key_file(tmp_path, pem(rsa_key())))
    assert load_dkim_key(tmp_path / "link.pem").bits == 2048


def test_the_key_never_shows_in_its_repr(tmp_path: Path) -> None:
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key())))
    secret = key.pem.splitlines()[1].decode()
    assert secret not in repr(key)
    assert secret not in str(key)
    assert key.bits == 2048
    assert key.size_warning() is None


def test_key_sizes_are_advised_on(tmp_path: Path) -> None:
    small = load_dkim_key(key_file(tmp_path, pem(rsa_key(1024)), "small.pem"))
    assert small.size_warning() is not None
    assert "1024-bit RSA key" in (small.size_warning() or "")


def test_a_new_key_is_readable_by_its_owner_only_and_never_written_over(tmp_path: Path) -> None:
    path = tmp_path / "made.pem"
    key = make_dkim_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert key.bits == 2048
    assert load_dkim_key(path).public_key == key.public_key
    before = path.read_bytes()
    with pytest.raises(DkimKeyProblem, match="exists already"):
        make_dkim_key(path)
    assert path.read_bytes() == before
    assert verifies(DkimSigner(key, SELECTOR, DOMAIN).sign(build_message(note())).data, key)


# The settings ----------------------------------------------------------------------------------


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_settings(MINIMAL + text, tmp_path / "config.toml")
    return [f"{problem.key}: {problem.message}" for problem in raised.value.problems]


@pytest.mark.parametrize(
    ("written", "missing"),
    [
        ('dkim_selector = "mail2026"', ["dkim_key_file", "dkim_domain"]),
        ('dkim_domain = "example.com"', ["dkim_key_file", "dkim_selector"]),
        ('dkim_key_file = "dkim.pem"\ndkim_domain = "example.com"', ["dkim_selector"]),
    ],
)
def test_the_three_dkim_keys_go_together(tmp_path: Path, written: str, missing: list[str]) -> None:
    (problem,) = problems(f"[smtp]\n{written}\n", tmp_path)
    assert problem.startswith("smtp: ")
    assert f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not" in problem
    assert "DKIM signing needs dkim_key_file, dkim_selector and dkim_domain together" in problem


def test_the_dkim_settings_are_read_and_tidied(tmp_path: Path) -> None:
    settings = parse_settings(
        MINIMAL + '[smtp]\ndkim_key_file = "keys/dkim.pem"\ndkim_selector = "Mail2026.Jan"\n'
        'dkim_domain = "Mail.Example.COM."\n',
        tmp_path / "config.toml",
    )
    assert settings.smtp.signs
    assert settings.smtp.dkim_selector == "mail2026.jan"
    assert settings.smtp.dkim_domain == "mail.example.com"
    assert not parse_settings(MINIMAL, tmp_path / "c.toml").smtp.signs


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("dkim_selector", "mail 2026", "expected a DKIM selector"),
        ("dkim_selector", "-mail", "expected a DKIM selector"),
        ("dkim_selector", "a..b", "expected a DKIM selector"),
        ("dkim_selector", "s_1", "expected a DKIM selector"),
        ("dkim_domain", "localhost", "expected a domain name"),
        ("dkim_domain", "example..com", "expected a domain name"),
        ("dkim_domain", "bücher.example", "in its ASCII form (xn--...)"),
        ("dkim_domain", "x" * 64 + ".com", "expected a domain name"),
    ],
)
def test_selector_and_domain_must_be_dns_names(
    tmp_path: Path, key: str, value: str, expected: str
) -> None:
    others = {
        "dkim_key_file": "dkim.pem",
        "dkim_selector": "mail2026",
        "dkim_domain": "example.com",
    }
    others[key] = value
    table = "".join(f'{name} = "{text}"\n' for name, text in others.items())
    (problem,) = problems(f"[smtp]\n{table}", tmp_path)
    assert problem.startswith(f"smtp.{key}: ")
    assert expected in problem
    assert value not in problem


def test_a_key_pasted_into_the_config_is_refused_and_not_echoed(tmp_path: Path) -> None:
    secret = f"-----BEGIN PRIVATE KEY-----\\nMIIE{MARKER}\\n-----END PRIVATE KEY-----"
    found = problems(
        f'[smtp]\ndkim_key_file = "{secret}"\ndkim_selector = "s"\ndkim_domain = "example.com"\n',
        tmp_path,
    )
    assert found == [
        "smtp.dkim_key_file: this holds a key, not a file name: a private key never goes in the "
        "config; put it in a file of its own and name that file here"
    ]
    pasted = problems(
        f'[smtp]\ndkim_key_file = "k.pem"\ndkim_selector = "{MARKER}-----"\n'
        'dkim_domain = "example.com"\n',
        tmp_path,
    )
    assert MARKER not in "".join(pasted)


def test_the_key_file_is_relative_to_the_config_and_its_problems_name_the_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "keys").mkdir()
    key_file(tmp_path / "keys", pem(rsa_key()))
    config_path = tmp_path / "appreciate.toml"
    config_path.write_text(
        MINIMAL + '[smtp]\ndkim_key_file = "keys/dkim.pem"\ndkim_selector = "s"\n'
        'dkim_domain = "example.com"\n',
        encoding="utf-8",
    )
    config = load_config(config_path)
    key = config.dkim_key()
    assert key is not None
    assert key.path == tmp_path / "keys" / "dkim.pem"
    (tmp_path / "keys" / "dkim.pem").write_bytes(public_pem())
    with pytest.raises(ConfigError) as raised:
        config.dkim_key()
    line = config_path.read_text().splitlines().index('dkim_key_file = "keys/dkim.pem"') + 1
    assert str(raised.value).startswith(
        f"{config_path}:{line}: smtp.dkim_key_file: {key.path} holds"
    )
    (tmp_path / "keys" / "dkim.pem").unlink()
    assert config.dkim_key(unreadable_ok=True) is None
    with pytest.raises(ConfigError, match=r"smtp\.dkim_key_file: cannot read .*dkim\.pem"):
        DkimSigner.configured(config)
    assert any("smtp.dkim_key_file: cannot read" in p for p in config.environment_problems())


def test_a_signer_that_cannot_sign_stops_at_once_naming_the_key(tmp_path: Path) -> None:
    """The self-check at start: here a selector that is no DNS name (the settings would refuse
    it, so the signer is made by hand) makes dkimpy's signature unverifiable."""
    key = load_dkim_key(key_file(tmp_path, pem(rsa_key(1024))))
    with pytest.raises(ValueError, match="sample message"):
        DkimSigner(key, "bad;selector", DOMAIN)


def test_a_note_that_cannot_be_signed_fails_and_is_never_sent_unsigned(tmp_path: Path) -> None:
    signer = signer_for(tmp_path, 1024)
    broken = BuiltMessage("", b"no header block at all", False, "a@b.c", "d@e.f", "<x@y>")
    with pytest.raises(UnsendableMessage, match="could not be signed with DKIM"):
        signer.sign(broken)
