"""Benchmark: what signing each note with DKIM costs (dkimpy, rsa-sha256, relaxed/relaxed).

Generates `--distinct` varied notes (bench/message_build.py's: names and subjects in several
scripts, text and html, most with one-click unsubscribe headers) and a fresh RSA key of
`--bits` (2048), then times `--n` notes, `--repeat` runs each, and prints medians:

- build: `build_message` alone (what a note costs unsigned);
- build + sign: `build_message`, then `DkimSigner.sign`, what delivery does per note when
  `[smtp] dkim_key_file` is set;
- dkimpy's RSA step alone: `dkim.crypto.RSASSA_PKCS1_v1_5_sign` on a SHA-256 digest, the key
  parsed once (pure Python: the bulk of the signing cost);
- OpenSSL's RSA step (cryptography) for the same signature: what signing would cost if dkimpy
  let that step be handed over (it has no way to; see scheduler/notes/dkim_signing.py).

Then the event loop's share: while a worker thread builds (or builds and signs) notes, as
`Sender._prepare` does, a task on the loop sleeps 1 ms over and over and records how late each
wake-up is (median, 99th percentile and worst, in ms); first with the thread sleeping, to show
what the machine's own load does. Every signed note is verified once with
dkimpy against the key's DNS record. Exits 0 either way (a measurement, not a test).

    python bench/dkim_signing.py                      # 2,000 notes, 5 runs: about a minute
    python bench/dkim_signing.py --n 300 --repeat 3   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

sys.path.insert(0, str(Path(__file__).parent))

from message_build import notes

from scheduler.config.dkim_key import load_dkim_key, make_dkim_key
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.message import BuiltMessage, MessageParts, build_message

SELECTOR = "bench"
DOMAIN = "baeckerei-mueller.example"


def per_note_ms(
    work: Callable[[MessageParts], object], items: Sequence[MessageParts]
) -> tuple[float, float]:
    """Milliseconds per note for one pass over `items`: wall clock, and CPU (this process's,
    which other work on a shared machine inflates less)."""
    started, cpu = time.perf_counter(), time.process_time()
    for parts in items:
        work(parts)
    count = len(items)
    return (time.perf_counter() - started) * 1000 / count, (
        time.process_time() - cpu
    ) * 1000 / count


def step_ms(work: Callable[[], object], times: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(times):
        work()
    return (time.perf_counter() - started) * 1000 / times, (
        time.process_time() - cpu
    ) * 1000 / times


async def lateness(work: Callable[[], object]) -> list[float]:
    """How late (ms) each 1 ms sleep on the loop wakes while `work` runs in a worker thread."""
    loop = asyncio.get_running_loop()
    running = loop.run_in_executor(None, work)
    late = []
    while not running.done():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append((time.perf_counter() - before - 0.001) * 1000)
    await running
    return late


def describe(late: list[float]) -> str:
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):.2f}, p99 {p99:.2f}, worst {ordered[-1]:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="notes per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each")
    parser.add_argument("--distinct", type=int, default=500, help="different notes generated")
    parser.add_argument("--bits", type=int, default=2048, help="RSA key size")
    args = parser.parse_args()
    pool = notes(args.distinct)
    work = [pool[i % len(pool)] for i in range(args.n)]
    with tempfile.TemporaryDirectory() as folder:
        key = make_dkim_key(Path(folder) / "dkim.pem", args.bits)
        key = load_dkim_key(key.path)
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    record = key.txt_value.encode()
    for parts in pool:
        signed = signer.sign(build_message(parts)).data
        if not dkim.verify(signed, dnsfunc=lambda name, timeout=5: record):
            sys.exit(f"a signed note did not verify: {parts.subject!r}")

    def build_and_sign(parts: MessageParts) -> BuiltMessage:
        return signer.sign(build_message(parts))

    private = parse_pem_private_key(key.pem)
    openssl = serialization.load_pem_private_key(key.pem, password=None)
    if not isinstance(openssl, rsa.RSAPrivateKey):
        sys.exit("the key read back is not an RSA key")
    steps = max(50, args.n // 10)
    runs: dict[str, list[tuple[float, float]]] = {
        "build": [],
        "build + sign": [],
        "dkimpy's RSA step": [],
        "OpenSSL's RSA step": [],
    }
    for _ in range(args.repeat):
        runs["build"].append(per_note_ms(build_message, work))
        runs["build + sign"].append(per_note_ms(build_and_sign, work))
        runs["dkimpy's RSA step"].append(
            step_ms(lambda: RSASSA_PKCS1_v1_5_sign(hashlib.sha256(b"note"), private), steps)
        )
        runs["OpenSSL's RSA step"].append(
            step_ms(lambda: openssl.sign(b"note", padding.PKCS1v15(), hashes.SHA256()), steps)
        )
    print(
        f"{args.n:,} notes from {len(pool):,} (all verified), {key.bits}-bit RSA key, "
        f"{args.repeat} runs; medians in ms per note, wall clock (range) and CPU"
    )
    wall = {name: statistics.median(w for w, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in runs.items()}
    for name, values in runs.items():
        walls = [w for w, _ in values]
        print(
            f"  {name:20s} {wall[name]:8.3f} ms ({min(walls):.3f}-{max(walls):.3f}),"
            f" CPU {cpu[name]:.3f} ms"
        )
    print(
        f"  signing adds         {wall['build + sign'] - wall['build']:8.3f} ms,"
        f" CPU {cpu['build + sign'] - cpu['build']:.3f} ms"
    )

    sample = work[: min(len(work), 500)]
    idle = asyncio.run(lateness(lambda: time.sleep(2)))
    quiet = asyncio.run(lateness(lambda: [build_message(parts) for parts in sample * 20]))
    busy = asyncio.run(lateness(lambda: [build_and_sign(parts) for parts in sample]))
    print("event loop, 1 ms sleeps, how late each wakes while a worker thread:")
    rows = (
        ("sleeps 2 s", idle),
        (f"builds {len(sample) * 20} notes", quiet),
        (f"builds and signs {len(sample)}", busy),
    )
    for name, late in rows:
        print(f"  {name:24s} {describe(late)} ({len(late)} wake-ups)")


if __name__ == "__main__":
    main()
