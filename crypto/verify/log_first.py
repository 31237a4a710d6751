"""Tight T1: the RFC 3161 time of the FIRST checkpoint the dock issued that includes a record
(docs/evidence-format.md, "The log check of an exhibit", T1).

Each line of an exhibit's ``log/proofs.jsonl`` carries, besides the record's inclusion proof
in the bundle's (latest) checkpoint, a required member ``"first": {"tree_size": m,
"inclusion": [base64 hashes]}``: the size ``m > leaf_index`` of the first checkpoint the dock
issued that includes the record's leaf, and the leaf's inclusion proof in that tree. The
bundle holds that checkpoint as ``log/checkpoints/<m>`` (the note as the dock kept it) and its
RFC 3161 token as ``log/checkpoints/<m>.tsr`` (absent when the dock had no TSA then).

The record's T1 is the token's genTime when the token verifies under the TSA CA given, over
SHA-256 of that note's body, and the proof leads from the record's leaf to that body's root:
the token proves the root, hence the record, existed at genTime. No dock signature nor
witness cosignature is needed for this bound. A proof that does not lead to the root, a
missing checkpoint, or a token that does not verify is ``altered`` (naming the file).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.verify.report import ALTERED, Finding

CHECKPOINTS_DIR = "log/checkpoints"
_PAPER = re.compile(r"log/checkpoints/[1-9][0-9]{0,19}(\.tsr)?")


def checkpoint_paper(size: int) -> str:
    """The bundle's name of the checkpoint of ``size`` leaves."""
    return f"{CHECKPOINTS_DIR}/{size}"


def token_paper(size: int) -> str:
    """The bundle's name of that checkpoint's RFC 3161 token."""
    return f"{CHECKPOINTS_DIR}/{size}.tsr"


def is_first_paper(name: str) -> bool:
    """``log/checkpoints/<m>`` or ``log/checkpoints/<m>.tsr``: a paper, never evidence."""
    return _PAPER.fullmatch(name) is not None


def first_size(sizes: Sequence[int], leaf_index: int) -> int | None:
    """The smallest of the (sorted) checkpoint ``sizes`` that includes leaf ``leaf_index``
    (``size > leaf_index``), or None."""
    i = bisect.bisect_right(sizes, leaf_index)
    return sizes[i] if i < len(sizes) else None


@dataclass(frozen=True)
class First:
    """A proof line's ``first`` member."""

    tree_size: int
    inclusion: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "inclusion": [base64.b64encode(h).decode() for h in self.inclusion],
        }


def parse_first(obj: Any) -> First:
    """The ``first`` member of a proof line (ValueError, KeyError or TypeError if it is not
    ``{"tree_size": int >= 1, "inclusion": [base64]}``)."""
    if not isinstance(obj, dict):
        raise TypeError("`first` is not an object")
    size = obj["tree_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError("`first.tree_size` is not a positive integer")
    hashes = [base64.b64decode(h, validate=True) for h in obj["inclusion"]]
    if any(len(h) != 32 for h in hashes):
        raise ValueError("`first.inclusion` holds a hash that is not 32 bytes")
    return First(size, hashes)


@dataclass(frozen=True)
class FirstTime:
    """What the first checkpoint says of one record: its T1 (µs) or None, and a finding
    (``altered``) when its papers are broken, or a note saying why there is no T1."""

    t1_us: int | None
    finding: Finding | None = None
    note: str = ""


TokenTime = Callable[[bytes, bytes, bytes], int]


@dataclass
class FirstChecker:
    """Checks records against the first checkpoints' papers (``papers``: name -> bytes),
    each checkpoint's token verified once."""

    papers: dict[str, bytes]
    tsa_ca: bytes | None
    token_time: TokenTime | None

    def __post_init__(self) -> None:
        self._times: dict[int, tuple[int | None, Finding | None, str]] = {}

    def check(self, leaf: bytes, leaf_index: int, first: First, seq: int | None) -> FirstTime:
        """``leaf``: the record's leaf hash (RFC 9162), at ``leaf_index``."""
        from tlog.checkpoint import Checkpoint
        from tlog.merkle import verify_inclusion

        m = first.tree_size
        name = checkpoint_paper(m)
        note = self.papers.get(name)
        if m <= leaf_index:
            return _altered(f"its `first` tree size {m} does not include leaf {leaf_index}", seq)
        if note is None:
            return _altered(f"the first checkpoint including it ({name}) is not here", seq, name)
        try:
            body = note.decode("utf-8").partition("\n\n")[0] + "\n"
            cp = Checkpoint.parse(body)
        except Exception as exc:  # noqa: BLE001 - UnicodeDecodeError or the parser's error
            return _altered(f"{name} is not a checkpoint note ({exc})", seq, name)
        if cp.size != m:
            return _altered(f"{name} names {cp.size} leaves, not {m}", seq, name)
        if not verify_inclusion(leaf, leaf_index, m, first.inclusion, bytes(cp.root)):
            return _altered(
                f"its `first` inclusion proof (leaf {leaf_index}) does not lead to the root of "
                f"{name}",
                seq,
                name,
            )
        if m not in self._times:
            self._times[m] = self._token_time(m, body)
        t1, finding, note_text = self._times[m]  # a bad token: one finding, for its file
        return FirstTime(t1, finding, note_text)

    def _token_time(self, m: int, body: str) -> tuple[int | None, Finding | None, str]:
        name = token_paper(m)
        token = self.papers.get(name)
        if token is None:
            return None, None, f"{checkpoint_paper(m)} carries no RFC 3161 timestamp"
        if self.tsa_ca is None or self.token_time is None:
            return None, None, "no --tsa-ca given: the RFC 3161 timestamps are not checked"
        digest = hashlib.sha256(body.encode()).digest()
        try:
            return int(self.token_time(token, digest, self.tsa_ca)), None, ""
        except Exception as exc:  # noqa: BLE001 - TokenError or a malformed token
            detail = f"{name}: the RFC 3161 timestamp does not verify ({exc})"
            return None, Finding(ALTERED, detail, file=name), ""


def _altered(detail: str, seq: int | None, file: str | None = None) -> FirstTime:
    what = f"chain record {seq}: " if seq is not None else ""
    return FirstTime(None, Finding(ALTERED, what + detail, file=file, seq=seq))


def recording_t1(seqs: Sequence[int], t1: dict[int, int | None]) -> int | None:
    """A recording's T1 from its records' (seq -> T1): its last record's (the end record:
    the recording is over by then), else the largest of its records'."""
    if not seqs:
        return None
    last = t1.get(max(seqs))
    if last is not None:
        return last
    known = [t for s in seqs if (t := t1.get(s)) is not None]
    return max(known, default=None)
