"""The verifier's inputs: which file is what (by name or first bytes), and an outbox read
into ``{name: bytes}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from crypto.digests import stored_digest_of
from crypto.manifest import parse_chain_file_name
from crypto.seal import ParsedSegment, SealFormatError, parse_segment

SEG_EXT = ".bwvseg"
PARTIAL_EXT = ".bwvseg.partial"
PLAIN_EXT = ".mp4"  # a decrypted segment (init + fragments): checked by its plaintext hashes
_UNSIGNED_NAME = re.compile(r"\.unsigned(\.\d+)?\Z")


@dataclass
class SegFile:
    name: str
    data: bytes
    digest: str | None  # its stored digest (None: not a header and whole chunks)
    parsed: ParsedSegment | None
    error: str | None
    partial: bool
    used: bool = False


def basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def canonical_segment_name(name: str) -> tuple[str, int] | None:
    base = basename(name)
    if not base.endswith(SEG_EXT):
        return None
    stem = base[: -len(SEG_EXT)]
    rec, _, idx = stem.rpartition("_")
    if not rec or not idx.isdigit() or len(idx) < 4:
        return None
    return rec, int(idx)


def classify(name: str, data: bytes) -> str:
    base = basename(name)
    if base.endswith(SEG_EXT):
        return "segment"
    if base.endswith(PARTIAL_EXT):
        return "partial"
    if base.endswith(PLAIN_EXT):
        return "plain"
    if _UNSIGNED_NAME.search(base):
        return "unsigned"
    if parse_chain_file_name(base) is not None:
        return "chain"
    if base.endswith(".jsonl"):
        return "trail"
    if data.startswith(b"BWVSEG"):
        return "segment"
    if b'"type":"trail"' in data[:4096]:
        return "trail"
    if b'"type":"manifest"' in data[:8192] or b'"type":"end"' in data[:4096]:
        return "chain"
    if b'"type":"time_sync"' in data[:40960] or b'"type":"clock_step"' in data[:4096]:
        return "chain"
    return "unknown"


def is_evidence(name: str, data: bytes) -> bool:
    """Whether a file is one the verifier can check (a stored segment, set-aside bytes, a
    chain record, the trail), by its name or its first bytes. An MP4 alone is not: it is
    checked only against the manifests that sign it."""
    return classify(name, data) not in ("unknown", "plain")


def load_segment(name: str, data: bytes, partial: bool) -> SegFile:
    try:
        parsed: ParsedSegment | None = parse_segment(data)
        error = None
    except SealFormatError as exc:
        parsed, error = None, str(exc)
    return SegFile(name, data, stored_digest_of(data), parsed, error, partial)


def read_outbox(outbox: Path) -> dict[str, bytes]:
    """The outbox's files by relative name (temp files left by an atomic write skipped)."""
    outbox = Path(outbox)
    return {
        p.relative_to(outbox).as_posix(): p.read_bytes()
        for p in sorted(outbox.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }
