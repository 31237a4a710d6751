"""The log room: what the dock's transparency log, countersigned by a witness, says about
the evidence (docs/evidence-format.md, "The log check of an exhibit").

Given the witness's public key(s) (``LogTrust.witness_keys``, C2SP vkeys) and, maybe, the
latest checkpoint fetched from the witness (``LogTrust.checkpoint``):

- a checkpoint is trusted only when a witness key given cosigned it (else ``unwitnessed``)
  and, when the dock's key is given, the dock signed it (else ``altered``);
- every chain record of an exhibit must be shown included in a trusted checkpoint by its
  inclusion proof (``log/proofs.jsonl``): none is ``withheld``, a broken one ``altered``;
- two trusted checkpoints of one log and one size with different roots are ``equivocation``;
- ``audit_leaves`` checks a dock's whole log (its leaves up to the witnessed size) against
  what the store holds: a record or custody entry the log has but the store does not, with
  no custody event explaining it, is ``withheld``; two different records for one device
  sequence number are ``equivocation`` (two histories: a camera rolled back);
- T1 of a record is the RFC 3161 time of the first checkpoint that includes it
  (crypto/verify/log_first.py: ``log/checkpoints/<m>`` and the ``first`` member of its proof
  line), else of the bundle's checkpoint: the record existed before it; a segment or a
  recording claiming a wall time after its T1 is ``time_inconsistent``.

The log's primitives (``tlog``) and RFC 3161 (``tsa``) are imported lazily: the camera does
not load them, and a verifier given no witness key never needs them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.verify.log_first import FirstChecker, is_first_paper, parse_first, recording_t1
from crypto.verify.report import ALTERED, EQUIVOCATION, Finding
from crypto.verify.timecheck import SegmentBound, apply_upper_bounds

WITHHELD = "withheld"  # the log shows it exists; it is not here, nor explained
UNWITNESSED = "unwitnessed"  # no valid cosignature by a witness key given
TIME_INCONSISTENT = "time_inconsistent"  # a claimed wall time outside its bounds

RECORD_LEAF = b"bwv:log-record:v2\0"
CUSTODY_LEAF = b"bwv:log-custody:v2\0"
CHECKPOINT = "log/checkpoint"
CHECKPOINT_TSR = "log/checkpoint.tsr"
PROOFS = "log/proofs.jsonl"
LOG_PAPERS = (CHECKPOINT, CHECKPOINT_TSR, PROOFS)  # and log/checkpoints/<m>[.tsr]: log_first


def is_log_paper(name: str) -> bool:
    """One of an exhibit's log papers (``LOG_PAPERS``, or a first checkpoint and its token)."""
    return name in LOG_PAPERS or is_first_paper(name)


# custody actions that explain a record the log has and the store no longer holds
EXPLAINING_ACTIONS = frozenset({"retention_deleted", "retention-deleted", "deleted", "purged"})


class LogTrustError(Exception):
    """A witness key or checkpoint given cannot be read (exit 2)."""


@dataclass(frozen=True)
class LogTrust:
    """What the verifier trusts about the log: the witness keys, the checkpoint fetched from
    the witness (optional), the dock's Ed25519 public key (optional) and the TSA's CA
    certificate(s) in PEM (optional: without it no trusted time is read)."""

    witness_keys: tuple[str, ...] = ()
    checkpoint: bytes | None = None
    dock_key: bytes | None = None
    tsa_ca: bytes | None = None
    # tsa.verify.verify_token (token, digest, CA PEM) -> genTime µs: given by the front end
    # (crypto does not import tsa, which builds on crypto)
    token_time: Callable[[bytes, bytes, bytes], int] | None = None

    @property
    def given(self) -> bool:
        return bool(self.witness_keys)


def read_witness_keys(values: Iterable[str]) -> tuple[str, ...]:
    """Witness vkeys from ``--witness-key`` values: a vkey itself, or a file of vkey lines
    (blank lines and ``#`` comments skipped)."""
    from tlog.cosignature import CosignatureVerifier

    keys: list[str] = []
    for v in values:
        p = Path(v)
        try:
            lines = p.read_text().splitlines() if "+" not in v and p.is_file() else [v]
        except (OSError, UnicodeDecodeError) as exc:
            raise LogTrustError(f"{v}: cannot read the witness key file: {exc}") from None
        for line in (s.strip() for s in lines):
            if not line or line.startswith("#"):
                continue
            try:
                CosignatureVerifier.from_vkey(line)
            except Exception:  # noqa: BLE001 - any malformed vkey: one clear line
                raise LogTrustError(f"{v}: not a witness public key (a C2SP vkey)") from None
            keys.append(line)
    if not keys:
        raise LogTrustError("no witness public key in " + ", ".join(values))
    return tuple(keys)


def dock_vkey(name: str, public_key: bytes) -> str:
    """The C2SP signed-note vkey of the dock's Ed25519 key under the log's origin."""
    from tlog.note import format_vkey

    return format_vkey(name, 0x01, bytes(public_key))


# -- checkpoints -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Witnessed:
    """A checkpoint note, checked: cosigned by ``witnesses`` (names of the keys given)."""

    origin: str
    size: int
    root: bytes
    body: str
    note: bytes
    witnesses: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "witnesses": list(self.witnesses),
        }


def _split_note(note: bytes) -> tuple[str, list[str]]:
    text = note.decode("utf-8")
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise ValueError("no signature block")
    return body + "\n", [s for s in sigs.split("\n") if s]


def _cosigners(body: str, sig_lines: list[str], keys: tuple[str, ...]) -> tuple[str, ...]:
    from tlog.cosignature import CosignatureVerifier

    names = []
    for vkey in keys:
        v = CosignatureVerifier.from_vkey(vkey)
        for line in sig_lines:
            try:
                ok = v.verify(body, line) is not None or v.verify(body, line + "\n") is not None
            except Exception:  # noqa: BLE001 - another key's line, or a malformed one
                ok = False
            if ok:
                names.append(vkey.split("+", 1)[0])
                break
    return tuple(names)


def open_checkpoint(
    note: bytes | None, trust: LogTrust, what: str
) -> tuple[Witnessed | None, list[Finding]]:
    """Check a checkpoint note: readable, signed by the dock (when its key is given),
    cosigned by a witness key given. Returns it (None if unreadable or not cosigned) and the
    findings, naming the note as ``what``."""
    from tlog.checkpoint import Checkpoint

    if note is None:
        return None, [Finding(UNWITNESSED, f"{what}: no checkpoint of the dock's log")]
    try:
        body, sigs = _split_note(note)
        cp = Checkpoint.parse(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [Finding(ALTERED, f"{what}: not a checkpoint note ({exc})", file=what)]
    except Exception as exc:  # noqa: BLE001 - the parser's own error class
        return None, [Finding(ALTERED, f"{what}: not a checkpoint note ({exc})", file=what)]
    findings: list[Finding] = []
    if trust.dock_key is not None and not _dock_signed(note, cp.origin, trust.dock_key):
        findings.append(
            Finding(ALTERED, f"{what}: not signed by the dock key given ({cp.origin})", file=what)
        )
    names = _cosigners(body, sigs, trust.witness_keys)
    w = Witnessed(cp.origin, cp.size, bytes(cp.root), body, note, names)
    if not names:
        findings.append(
            Finding(
                UNWITNESSED,
                f"{what}: checkpoint {cp.origin} size {cp.size} carries no valid cosignature "
                "by the witness key(s) given",
                file=what,
            )
        )
        return None, findings
    return (None if findings else w), findings


def _dock_signed(note: bytes, origin: str, public_key: bytes) -> bool:
    from tlog.note import NoteVerifier, open_note

    try:
        _, names = open_note(note, [NoteVerifier.from_vkey(dock_vkey(origin, public_key))])
    except Exception:  # noqa: BLE001 - NoteError or a malformed note: not signed
        return False
    return origin in names


def compare_checkpoints(bundle: Witnessed, given: Witnessed, what: str) -> list[Finding]:
    """Two trusted checkpoints of one log: one size, one root (else two histories)."""
    if bundle.origin != given.origin:
        return [
            Finding(
                "substituted",
                f"{what}: checkpoint of log {bundle.origin}, the witness's is {given.origin}",
                file=what,
            )
        ]
    if bundle.size == given.size and bundle.root != given.root:
        return [
            Finding(
                EQUIVOCATION,
                f"{what}: the dock's log {bundle.origin} has two trees of size {bundle.size} "
                "(the exhibit's root is not the witness's): the log forked",
                file=what,
            )
        ]
    return []


# -- an exhibit's records in the log -----------------------------------------------------------
@dataclass
class LogCheck:
    """What the log says about a set of records: findings, the trusted checkpoint(s), and
    per included record (by seq) its leaf index and the checkpoint size proving it."""

    checked: bool
    findings: list[Finding] = field(default_factory=list)
    checkpoints: list[Witnessed] = field(default_factory=list)
    included: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (leaf, size)
    tsa_time_us: int | None = None  # RFC 3161 time of the exhibit's latest checkpoint
    time_note: str = ""
    # per included record (by seq): [size of the first checkpoint including it, its T1 or None]
    first: dict[int, list[int | None]] = field(default_factory=dict)

    def t1_of(self, seq: int) -> int | None:
        """A record's T1: its first checkpoint's RFC 3161 time, else the latest's."""
        if seq not in self.included:
            return None
        got = self.first.get(seq)
        if got is not None and got[1] is not None:
            return got[1]
        return self.tsa_time_us

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "included": {str(k): list(v) for k, v in sorted(self.included.items())},
            "first": {str(k): list(v) for k, v in sorted(self.first.items())},
            "tsa_time_us": self.tsa_time_us,
            "time_note": self.time_note,
        }


def record_leaf(line: bytes) -> bytes:
    from tlog.merkle import leaf_hash

    return bytes(leaf_hash(RECORD_LEAF + bytes(line)))


def read_proofs(data: bytes | None) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    out: dict[str, dict[str, Any]] = {}
    bad: list[Finding] = []
    for n, line in enumerate((data or b"").splitlines(), 1):
        if not line.strip():
            continue
        try:
            p = json.loads(line)
            entry = {
                "leaf_index": int(p["leaf_index"]),
                "tree_size": int(p["tree_size"]),
                "inclusion": [base64.b64decode(h, validate=True) for h in p["inclusion"]],
                "first": None,
            }
            out[str(p["record_sha256"])] = entry
        except (ValueError, KeyError, TypeError) as exc:
            bad.append(Finding(ALTERED, f"line {n}: not an inclusion proof ({exc})", file=PROOFS))
            continue
        try:
            entry["first"] = parse_first(p["first"])
        except KeyError:
            bad.append(Finding(ALTERED, f"line {n}: no `first` member (required)", file=PROOFS))
        except (ValueError, TypeError) as exc:
            bad.append(Finding(ALTERED, f"line {n}: a malformed `first` ({exc})", file=PROOFS))
    return out, bad


def check_records_logged(
    files: Mapping[str, bytes], records: Mapping[int, str], trust: LogTrust
) -> LogCheck:
    """Every chain record (``records``: seq -> its name in ``files``) must be included in a
    trusted checkpoint: the bundle's ``log/checkpoint`` or the witness's given."""
    if not trust.given:
        return LogCheck(False)
    res = LogCheck(True)
    bundle, f1 = open_checkpoint(files.get(CHECKPOINT), trust, CHECKPOINT)
    given: Witnessed | None = None
    f2: list[Finding] = []
    if trust.checkpoint is not None:
        given, f2 = open_checkpoint(trust.checkpoint, trust, "the witness's checkpoint")
    res.findings += f1 + f2
    if bundle and given:
        res.findings += compare_checkpoints(bundle, given, CHECKPOINT)
    res.checkpoints = [c for c in (bundle, given) if c is not None]
    if bundle is None and files.get(CHECKPOINT) is not None and given is None:
        return res  # the one cause is said: no trusted checkpoint
    by_size = {c.size: c for c in reversed(res.checkpoints)}
    proofs, bad = read_proofs(files.get(PROOFS))
    res.findings += bad
    for seq, name in sorted(records.items()):
        _check_one(res, seq, name, files[name], proofs, by_size)
    if bundle is not None:
        res.tsa_time_us, res.time_note = checkpoint_time(bundle, files.get(CHECKPOINT_TSR), trust)
    _check_firsts(res, files, records, proofs, trust)
    return res


def _check_firsts(
    res: LogCheck,
    files: Mapping[str, bytes],
    records: Mapping[int, str],
    proofs: dict[str, dict[str, Any]],
    trust: LogTrust,
) -> None:
    """Each included record's T1 from the first checkpoint that includes it (log_first)."""
    papers = {n: d for n, d in files.items() if is_first_paper(n)}
    checker = FirstChecker(papers, trust.tsa_ca, trust.token_time)
    notes: list[str] = []
    for seq in sorted(res.included):
        data = files[records[seq]]
        p = proofs.get(hashlib.sha256(data).hexdigest())
        if p is None or p["first"] is None:
            continue
        got = checker.check(record_leaf(data), p["leaf_index"], p["first"], seq)
        if got.finding is not None and got.finding not in res.findings:
            res.findings.append(got.finding)
        if got.note and got.note not in notes:
            notes.append(got.note)
        res.first[seq] = [p["first"].tree_size, got.t1_us]
    if notes and not res.time_note:
        res.time_note = "; ".join(notes)


def _check_one(
    res: LogCheck,
    seq: int,
    name: str,
    data: bytes,
    proofs: dict[str, dict[str, Any]],
    by_size: dict[int, Witnessed],
) -> None:
    from tlog.merkle import verify_inclusion

    sha = hashlib.sha256(data).hexdigest()
    p = proofs.get(sha)
    if p is None:
        res.findings.append(
            Finding(
                WITHHELD,
                f"chain record {seq} is not shown in the dock's witnessed log "
                "(no inclusion proof for it)",
                file=name,
                seq=seq,
            )
        )
        return
    cp = by_size.get(p["tree_size"])
    if cp is None:
        res.findings.append(
            Finding(
                WITHHELD,
                f"chain record {seq}: its inclusion proof is for a tree of size "
                f"{p['tree_size']}, not a witnessed checkpoint's",
                file=name,
                seq=seq,
            )
        )
        return
    ok = p["leaf_index"] < cp.size and verify_inclusion(
        record_leaf(data), p["leaf_index"], cp.size, p["inclusion"], cp.root
    )
    if not ok:
        res.findings.append(
            Finding(
                ALTERED,
                f"chain record {seq}: its inclusion proof (leaf {p['leaf_index']}) does not "
                f"lead to the witnessed root of size {cp.size}",
                file=name,
                seq=seq,
            )
        )
        return
    res.included[seq] = (p["leaf_index"], cp.size)


# -- trusted time -----------------------------------------------------------------------------
def checkpoint_time(cp: Witnessed, token: bytes | None, trust: LogTrust) -> tuple[int | None, str]:
    """(RFC 3161 genTime of the checkpoint in µs, or None; why not, when None)."""
    if token is None:
        return None, "the dock's checkpoint carries no RFC 3161 timestamp (no TSA configured)"
    if trust.tsa_ca is None or trust.token_time is None:
        return None, "no --tsa-ca given: the checkpoint's RFC 3161 timestamp is not checked"
    digest = hashlib.sha256(cp.body.encode()).digest()
    try:
        return int(trust.token_time(token, digest, trust.tsa_ca)), ""
    except Exception as exc:  # noqa: BLE001 - TokenError or a malformed token
        return None, f"the checkpoint's RFC 3161 timestamp does not verify: {exc}"


def upper_bounds(recordings: Mapping[str, list[int]], check: LogCheck) -> dict[str, int | None]:
    """T1 per recording (recording id -> its records' seqs): the T1 of its last record (the
    RFC 3161 time of the first checkpoint that includes it, else of the bundle's), else the
    largest T1 of its records; None when none has one."""
    t1 = {s: check.t1_of(s) for seqs in recordings.values() for s in seqs}
    return {rec: recording_t1(seqs, t1) for rec, seqs in recordings.items()}


# -- the hook the verifier calls ---------------------------------------------------------------
def chain_records(files: Mapping[str, bytes]) -> dict[int, str]:
    """seq -> name of every chain record file among ``files`` (by its name)."""
    from crypto.manifest import parse_chain_file_name

    out: dict[int, str] = {}
    for name in files:
        p = parse_chain_file_name(name.rsplit("/", 1)[-1])
        if p is not None:
            out.setdefault(p[0], name)
    return out


def _claims(
    files: Mapping[str, bytes], records: Mapping[int, str]
) -> tuple[dict[str, list[Any]], list[SegmentBound]]:
    """recording id -> [its records' seqs, its latest claimed wall time (µs) or None]; and
    each manifest's claimed wall end (its ``SegmentBound``, T1 still unknown: 0)."""
    from crypto.records import RecordError, parse_line

    out: dict[str, list[Any]] = {}
    segments: list[SegmentBound] = []
    for seq, name in records.items():
        try:
            r, _ = parse_line(files[name])
        except RecordError:
            continue
        entry = out.setdefault(str(r.get("recording_id")), [[], None])
        entry[0].append(seq)
        walls = [w for w in (r.get("wall_start_us"), r.get("wall_end_us")) if isinstance(w, int)]
        if walls:
            entry[1] = max([*walls, *([entry[1]] if entry[1] is not None else [])])
            segments.append(
                SegmentBound(
                    str(r.get("recording_id")), r.get("segment_index"), seq, name, max(walls), 0
                )
            )
    return out, segments


def apply_log(report: Any, files: Mapping[str, bytes], trust: LogTrust | None) -> LogCheck:
    """Check ``files``' chain records against the witnessed log; add the findings and the
    log's summary (``report.log``) to ``report``."""
    if trust is None or not trust.given:
        return LogCheck(False)
    records = chain_records(files)
    check = check_records_logged(files, records, trust)
    claims, segments = _claims(files, records)
    bounds = upper_bounds({k: v[0] for k, v in claims.items()}, check)
    report.findings += check.findings
    segment_bounds = [
        SegmentBound(s.recording_id, s.segment_index, s.seq, s.file, s.wall_end_us, t1)
        for s in segments
        if (t1 := check.t1_of(s.seq)) is not None
    ]
    _apply_time(report, bounds, segment_bounds)
    report.log = check.to_json() | {"upper_bounds_us": bounds}
    if check.findings:
        report.ok = False
    return check


def _apply_time(report: Any, bounds: dict[str, int | None], segments: list[SegmentBound]) -> None:
    """T1 per recording and per segment into the report (crypto/verify/timecheck.py: a
    claimed wall time after it is ``time_inconsistent``)."""
    before = len(report.findings)
    apply_upper_bounds(report, {k: v for k, v in bounds.items() if v is not None}, segments)
    if len(report.findings) > before:
        report.ok = False
