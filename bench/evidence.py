"""Evidence figures: what signing and encryption cost on the device, and how fast a
recording verifies.

- ``crypto_throughput``: MB/s of the device's per-fragment work (hash the plaintext and the
  ciphertext, encrypt with secretstream, sign and append the trail record, keep the running
  chunk hashes) through the real ``EvidenceSink`` into a temporary outbox, with the disk
  writes and fsync of the chunks and trail lines taken out (``append_durable`` drops the
  bytes), against libsodium's raw ``crypto_secretstream_xchacha20poly1305_push`` on the same
  bytes in the same run. Ratio = ours / raw (higher is better; goal >= 0.9).
- ``crypto_throughput_vs_limit``: the same figure against the least the format asks per
  fragment, measured in the same run: one secretstream push and two SHA-256 passes (the
  plaintext's and the ciphertext's) over the same bytes (goal >= 0.9).
- ``pipeline_core_fraction_with_crypto``: ``pipeline_core_fraction`` with the evidence
  sink in place of plain files (1080p30 10 Mbit/s + AAC; video encoder excluded).
- ``verify_throughput``: ``bwv verify``'s verifier over a recorded outbox, with the agency
  key (decrypting and checking every plaintext hash), in MB of stored footage per second.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from unittest import mock

import nacl.bindings as sodium
from nacl.public import PrivateKey

from bench import Context, Result, benchmark
from bench.pipeline import CORE_RUNS, _core_run, synthetic_h264
from crypto import evidence as evidence_mod
from crypto.evidence import EvidenceSink
from crypto.identity import DeviceIdentity
from crypto.testing import segment_info
from crypto.verify import verify_outbox

FRAGMENT = 1_250_000  # one GOP (1 s) at 10 Mbit/s


def _fragments(n: int) -> list[bytes]:
    import os

    pool = os.urandom(FRAGMENT + n)
    return [pool[i : i + FRAGMENT] for i in range(n)]


def _raw_secretstream(frags: list[bytes]) -> float:
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    st = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(st, key)
    t0 = time.perf_counter()
    for f in frags:
        sodium.crypto_secretstream_xchacha20poly1305_push(st, f, None, 0)
    return time.perf_counter() - t0


def _limit_seconds(frags: list[bytes]) -> float:
    """The least the format asks per fragment: one secretstream push and one SHA-256 of the
    plaintext and one of the ciphertext, over the same bytes."""
    import hashlib

    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    st = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(st, key)
    t0 = time.perf_counter()
    for f in frags:
        hashlib.sha256(f).digest()
        c = sodium.crypto_secretstream_xchacha20poly1305_push(st, f, None, 0)
        hashlib.sha256(c).digest()
    return time.perf_counter() - t0


def _sink_seconds(frags: list[bytes], tmp: Path) -> float:
    ident = DeviceIdentity.from_seed("bench-01", b"\x07" * 32)
    agency = PrivateKey(b"\x09" * 32).public_key

    def no_disk(f, *parts: bytes) -> None:  # the crypto, not the disk: bytes dropped
        pass

    with (
        mock.patch.object(evidence_mod, "append_durable", no_disk),
        mock.patch("crypto.trail.append_durable", no_disk),
    ):
        sink = EvidenceSink(tmp / "outbox", ident, agency, "bench", tmp / "chain.json")
        info = segment_info("r" * 32, 0)
        sink.open_segment(info)
        sink.write_init(b"\x00" * 1000)
        t0 = time.perf_counter()
        for i, f in enumerate(frags):
            sink.write_fragment(f, i * 1_000_000, (i + 1) * 1_000_000)
        dt = time.perf_counter() - t0
        sink.close_segment(len(frags) * 1_000_000, info.wall_start_us + len(frags) * 1_000_000)
        sink.close()
    return dt


@benchmark(
    "crypto_throughput",
    description="hash + sign + encrypt per fragment, vs raw secretstream and vs the limit",
    figures=("crypto_throughput", "crypto_throughput_vs_limit"),
)
def crypto_throughput(ctx: Context) -> list[Result]:
    n = 8 if ctx.quick else 40
    frags = _fragments(n)
    mb = n * FRAGMENT / 1e6
    ours, raw, limit = [], [], []
    for _ in range(2 if ctx.quick else 4):
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(_sink_seconds(frags, Path(tmp)))
        raw.append(_raw_secretstream(frags))
        limit.append(_limit_seconds(frags))
    detail = (
        f"{n} fragments of {FRAGMENT / 1e6:.2f} MB; per fragment: SHA-256 of plaintext and "
        "ciphertext, running file hashes, secretstream push, Ed25519-signed trail record"
    )
    r = Result("crypto_throughput", mb / min(ours), "MB/s", lower_is_better=False, detail=detail)
    r = r.against(mb / min(raw), "libsodium crypto_secretstream_xchacha20poly1305_push")
    v = Result(
        "crypto_throughput_vs_limit", mb / min(ours), "MB/s", lower_is_better=False, detail=detail
    ).against(mb / min(limit), "one secretstream push + two SHA-256 passes, same bytes")
    return [
        r.with_goal(">= 0.9x", (r.ratio or 0) >= 0.9),
        v.with_goal(">= 0.9x", (v.ratio or 0) >= 0.9),
    ]


@benchmark(
    "pipeline_core_fraction_with_crypto",
    description="CPU s per recorded s with signing and encryption, 1080p30 10 Mbit/s",
)
def core_with_crypto(ctx: Context) -> Result:
    pre, rec = (10.0, 20.0) if ctx.quick else (30.0, 60.0)
    video = synthetic_h264(1920, 1080, 30, 10_000_000, 30, pre + rec)
    ident = DeviceIdentity.from_seed("bench-01", b"\x07" * 32)
    agency = PrivateKey(b"\x09" * 32).public_key
    runs, plain_runs = [], []
    for _ in range(2 if ctx.quick else CORE_RUNS):  # alternately, the least of each
        with tempfile.TemporaryDirectory() as tmp:

            def make_sink(storage, tmp=Path(tmp)):
                return EvidenceSink(tmp / "outbox", ident, agency, "bench", tmp / "chain.json")

            runs.append(_core_run(video, pre, audio=True, make_sink=make_sink))
        plain_runs.append(_core_run(video, pre, audio=True))
    plain = min(plain_runs)
    total = pre + rec
    r = Result(
        "pipeline_core_fraction_with_crypto",
        min(runs) / total,
        "cpu_s/s",
        detail=f"the least of {len(runs)} runs; the plain-file sink run alternately with it, "
        f"the least of {len(plain_runs)}: {plain / total:.4f}",
    )
    return r.with_goal("<= 0.012", r.value <= 0.012)


@benchmark("verify_throughput", description="bwv verify over a recorded outbox, MB/s")
def verify_throughput(ctx: Context) -> Result:
    n = 8 if ctx.quick else 30
    frags = _fragments(n)
    ident = DeviceIdentity.from_seed("bench-01", b"\x07" * 32)
    agency_sk = PrivateKey(b"\x09" * 32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sink = EvidenceSink(
            tmp / "outbox", ident, agency_sk.public_key, "bench", tmp / "chain.json"
        )
        for s in range(3):
            info = segment_info("r" * 32, s)
            sink.open_segment(info)
            sink.write_init(b"\x00" * 1000)
            for i, f in enumerate(frags[s::3]):
                sink.write_fragment(f, i * 1_000_000, (i + 1) * 1_000_000)
            # a wall end after the start: the verifier checks the clock's claim too
            sink.close_segment(n * 1_000_000, info.wall_start_us + n * 1_000_000)
        sink.end_recording("r" * 32, "stopped", n * 1_000_000)
        sink.close()
        stored = sum(p.stat().st_size for p in (tmp / "outbox").rglob("*") if p.is_file())
        best = float("inf")
        for _ in range(2 if ctx.quick else 3):
            t0 = time.perf_counter()
            report = verify_outbox(tmp / "outbox", ident.public_key, agency_sk)
            best = min(best, time.perf_counter() - t0)
        assert report.ok, report.findings
    return Result(
        "verify_throughput",
        stored / 1e6 / best,
        "MB/s",
        lower_is_better=False,
        detail="signatures, chain, trail, hashes, and decryption with the agency key",
    )
