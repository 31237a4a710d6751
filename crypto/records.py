"""Signed records: trail records, manifests, end-of-recording records, and the device's
time records (``time_sync``: a dock's signed time answer and what the device did with it;
``clock_step``: a correction over the step limit that was applied).

A signed record is one line (docs/evidence-format.md, "Signed records", "Version 4")::

    canonical({"record": R, "sig": hex(SIGN(b"bwv:" + R.type + b":v4\\0" + canonical(R)))})
    + b"\\n"

where SIGN is the suite ``R.suite`` names (crypto/suites.py): Ed25519, or ECDSA P-256 over
SHA-256 as 64 bytes ``r || s`` with a low ``s``. Chain records carry the device's hardware
``counter`` (null for an Ed25519 key, which has no counter).

The record's hash (what the next record names as ``prev_sha256``) is SHA-256 of the whole
line, newline included; for a manifest or end record that is the SHA-256 of its file.

Reading is strict: a line that is not exactly canonical, has a field missing, extra or of the
wrong type, or whose signature does not verify, is a ``RecordError`` with a ``reason``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from crypto import canonical
from crypto.digests import plain_digest_from, stored_digest_from
from crypto.suites import ECDSA_P256, ED25519, SUITES, suite_of, verify_signature

# v1 and v2 were never deployed; this reader knows v4 only (v3 had no suite and no
# counter): a record of another version is "schema"
VERSION = 4
TYPES = ("trail", "manifest", "end", "time_sync", "clock_step")
CHAIN_TYPES = ("manifest", "end", "time_sync", "clock_step")  # the chain's records
TIME_TYPES = ("time_sync", "clock_step")  # chain records of no recording
CHUNK_KINDS = ("init", "fragment", "final")
MAX_LINE = 1 << 20  # no record is anywhere near this; bounds what a reader takes in

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"[0-9a-f]{128}\Z")
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX_DER = re.compile(r"(?:[0-9a-f]{2}){1,16384}\Z")  # an RFC 3161 token, DER, as hex
_KEY_ID = re.compile(r"[0-9a-f]{16}\Z")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_FILE = re.compile(r"[A-Za-z0-9._-]{1,160}\Z")
_REC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


_HEAD = b'{"record":'
_TAIL = b',"sig":"' + b"0" * 128 + b'"}\n'


def domain(record_type: str) -> bytes:
    """The domain-separation prefix signed before the canonical record."""
    return b"bwv:" + record_type.encode("ascii") + b":v4\x00"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Signer(Protocol):
    """A device key: ``sign`` gives the 64-byte signature of ``message`` under ``suite``
    (an ECDSA signer gives ``r || s`` with a low ``s``)."""

    device_id: str
    key_id: str
    public_key: bytes
    suite: str

    def sign(self, message: bytes) -> bytes: ...


class Counter(Protocol):
    """The device's monotonic hardware counter (a TPM NV counter): ``next`` increments it
    and returns its new value. The chain writer calls it once per chain record signed by
    an ECDSA (TPM) key."""

    def next(self) -> int: ...


class RecordError(ValueError):
    """``reason``: "torn" (a line cut short), "malformed" (not a canonical signed line),
    "schema" (fields), "foreign" (signed by another device or key), "bad_signature"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignedRecord:
    record: dict[str, Any]
    line: bytes  # the exact bytes, final newline included
    sha256: str  # SHA-256 of ``line``

    @property
    def type(self) -> str:
        kind: str = self.record["type"]  # the schema checked it
        return kind

    @property
    def seq(self) -> int:
        seq: int = self.record["seq"]
        return seq


def sign_record(signer: Signer, record: dict[str, Any]) -> SignedRecord:
    """Check ``record`` against its schema, sign it, and give its line."""
    validate(record)
    if record["suite"] != signer.suite:  # a programming error, not a device's state
        raise ValueError(f"a {record['suite']} record cannot be signed by a {signer.suite} key")
    body = canonical.encode(record)
    sig = signer.sign(domain(record["type"]) + body)
    # canonical({"record": R, "sig": SIG}), put together from canonical(R) encoded once
    line = _HEAD + body + b',"sig":"' + sig.hex().encode("ascii") + b'"}\n'
    # the record as signed: a copy of its canonical form (json parses canonical JSON as is)
    return SignedRecord(json.loads(body), line, sha256_hex(line))


def parse_line(line: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a signed line into its record and signature, checking only the form."""
    if len(line) > MAX_LINE:
        raise RecordError("malformed", f"line longer than {MAX_LINE} bytes")
    if not line.endswith(b"\n"):
        raise RecordError("torn", "line does not end with a newline")
    try:
        env = canonical.decode(line[:-1])
    except canonical.CanonicalError as exc:
        if exc.incomplete:
            raise RecordError("torn", f"line cut short ({exc})") from None
        raise RecordError("malformed", str(exc)) from None
    if not (isinstance(env, dict) and set(env) == {"record", "sig"}):
        raise RecordError("malformed", 'expected {"record": {...}, "sig": "..."}')
    record, sig = env["record"], env["sig"]
    if not isinstance(record, dict):
        raise RecordError("malformed", "record is not an object")
    if not (isinstance(sig, str) and _HEX128.match(sig)):
        raise RecordError("malformed", "sig is not 128 lowercase hex digits")
    return record, bytes.fromhex(sig)


def verify_line(
    line: bytes,
    public_key: bytes,
    device_id: str | None = None,
    expect_type: str | tuple[str, ...] | None = None,
) -> SignedRecord:
    """Read and check one signed line: form, schema, signer, signature."""
    record, sig = parse_line(line)
    validate(record)
    if expect_type is not None:
        types = (expect_type,) if isinstance(expect_type, str) else expect_type
        if record["type"] not in types:
            raise RecordError("schema", f"a {record['type']} record where {types} was expected")
    kid = sha256_hex(bytes(public_key))[:16]
    if record["key_id"] != kid or (device_id is not None and record["device_id"] != device_id):
        raise RecordError(
            "foreign",
            f"signed by device {record['device_id']!r} key {record['key_id']}, "
            f"not by this device's key {kid}",
        )
    try:
        suite = suite_of(public_key)
    except ValueError as exc:
        raise RecordError("foreign", str(exc)) from None
    if record["suite"] != suite:
        raise RecordError(
            "foreign",
            f"claims suite {record['suite']}, but key {kid} signs with {suite}",
        )
    # the line is canonical, so it is b'{"record":' + canonical(record) + b',"sig":"..."}\n'
    body = bytes(line[len(_HEAD) : -len(_TAIL)])
    if not verify_signature(public_key, domain(record["type"]) + body, sig):
        raise RecordError("bad_signature", "the signature does not verify")
    return SignedRecord(record, bytes(line), sha256_hex(line))


# -- schemas -------------------------------------------------------------------------------
Check = Callable[[Any], bool]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _nat(v: Any) -> bool:
    return _int(v) and v >= 0


def _hex64(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.match(v))


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _str(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 256


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _obj(v: Any) -> bool:
    return isinstance(v, dict)


def _one_of(*values: str) -> Check:
    return lambda v: isinstance(v, str) and v in values


def _match(rx: re.Pattern[str]) -> Check:
    return lambda v: isinstance(v, str) and bool(rx.match(v))


def _fields(spec: dict[str, Check]) -> Check:
    return lambda v: isinstance(v, dict) and not _problems(v, spec)


def _list_of(check: Check) -> Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


COMMON: dict[str, Check] = {
    "type": _one_of(*TYPES),
    "v": lambda v: v == VERSION and _int(v),
    "suite": _one_of(*SUITES),
    "device_id": _match(_NAME),
    "key_id": _match(_KEY_ID),
    "seq": _nat,
    "prev_sha256": _opt(_hex64),
}
# a chain record's hardware counter: null for an Ed25519 key (checked in ``validate``)
CHAIN_COMMON: dict[str, Check] = {**COMMON, "counter": _opt(_nat)}

SEGMENT_START: dict[str, Check] = {
    "header_sha256": _hex64,
    "start_us": _int,
    "wall_start_us": _int,
    "wall_quality": _str,
    "trigger": _obj,
}

# what a chunk is, as the trail signs it and as a manifest lists it
_CHUNK_FIELDS: dict[str, Check] = {
    "chunk": _nat,
    "kind": _one_of(*CHUNK_KINDS),
    "first_us": _int,
    "end_us": _int,
    "plain_sha256": _hex64,
    "plain_size": _nat,
    "cipher_sha256": _hex64,
    "cipher_size": _nat,
}

TRAIL: dict[str, Check] = {
    **COMMON,
    "recording_id": _match(_REC_ID),
    "segment_index": _nat,
    **_CHUNK_FIELDS,
    "segment": _opt(_fields(SEGMENT_START)),
}

CHUNK: dict[str, Check] = {**_CHUNK_FIELDS, "trail_seq": _nat}

UNSIGNED_TAIL: dict[str, Check] = {"file": _match(_FILE), "size": _nat, "sha256": _hex64}

MANIFEST: dict[str, Check] = {
    **CHAIN_COMMON,
    "firmware_version": _str,
    "recording_id": _match(_REC_ID),
    "segment_index": _nat,
    "start_us": _int,
    "end_us": _int,
    "wall_start_us": _int,
    "wall_end_us": _int,
    "wall_quality": _str,
    "trigger": _obj,
    "file": _match(_FILE),
    "agency_key_id": _match(_KEY_ID),  # the agency X25519 key the segment key is sealed to
    "header_sha256": _hex64,
    "stored_digest": _hex64,
    "stored_size": _nat,
    "plain_digest": _hex64,
    "plain_size": _nat,
    "chunks": _list_of(_fields(CHUNK)),
    "truncated": _bool,
    "recovered": _bool,
    "unsigned_tail": _opt(_fields(UNSIGNED_TAIL)),
    "clock_sync_seq": _opt(_nat),
}

END: dict[str, Check] = {
    **CHAIN_COMMON,
    "firmware_version": _str,
    "recording_id": _match(_REC_ID),
    "reason": _str,
    "end_us": _int,
    "segment_count": _nat,
    "recovered": _bool,
}

TIME_SYNC: dict[str, Check] = {
    **CHAIN_COMMON,
    "capture_us": _int,
    "device_wall_us": _int,
    "nonce": _match(_HEX32),
    "dock_time_us": _int,
    "dock_key_id": _match(_KEY_ID),
    "dock_signature": _match(_HEX128),
    "offset_us": _int,
    "applied": _bool,
    "tsa_token": _opt(_match(_HEX_DER)),
}

CLOCK_STEP: dict[str, Check] = {
    **CHAIN_COMMON,
    "capture_us": _int,
    "from_wall_us": _int,
    "to_wall_us": _int,
    "time_sync_seq": _nat,
}

SCHEMAS: dict[str, dict[str, Check]] = {
    "trail": TRAIL,
    "manifest": MANIFEST,
    "end": END,
    "time_sync": TIME_SYNC,
    "clock_step": CLOCK_STEP,
}


# fields a reader takes as null when absent: the device always signs them, but records
# signed before they existed (the v1 vectors) lack them
MAY_BE_ABSENT = frozenset({"clock_sync_seq"})


def _problems(record: dict[str, Any], spec: dict[str, Check]) -> list[str]:
    problems = [f"missing field {k!r}" for k in spec if k not in record and k not in MAY_BE_ABSENT]
    problems += [f"unexpected field {k!r}" for k in record if k not in spec]
    problems += [
        f"bad value for {k!r}" for k, check in spec.items() if k in record and not check(record[k])
    ]
    return problems


def validate(record: Any) -> None:
    """``RecordError("schema", ...)`` unless ``record`` is a well-formed v4 record."""
    if not isinstance(record, dict):
        raise RecordError("schema", "record is not an object")
    spec = SCHEMAS.get(record.get("type"))  # type: ignore[arg-type]
    if spec is None:
        raise RecordError("schema", "unknown record type")
    if "v" in record and record["v"] != VERSION:
        raise RecordError(
            "schema", f"format version {record['v']!r}: this reader knows version {VERSION} only"
        )
    problems = _problems(record, spec)
    if problems:
        raise RecordError("schema", "; ".join(problems[:5]))
    if record["type"] in CHAIN_TYPES and (record["counter"] is None) != (
        record["suite"] == ED25519
    ):
        raise RecordError(
            "schema",
            f"counter must be null for an {ED25519} record and a number for an "
            f"{ECDSA_P256} one (suite {record['suite']}, counter {record['counter']!r})",
        )
    if record["type"] == "manifest":
        _check_manifest(record)


def _check_manifest(m: dict[str, Any]) -> None:
    for i, c in enumerate(m["chunks"]):
        if c["chunk"] != i:
            raise RecordError("schema", f"chunks[{i}] has chunk number {c['chunk']}")
        expected = "init" if i == 0 else "fragment"
        if c["kind"] != expected and not (c["kind"] == "final" and i == len(m["chunks"]) - 1):
            raise RecordError("schema", f"chunks[{i}] is a {c['kind']} chunk")
    final = bool(m["chunks"]) and m["chunks"][-1]["kind"] == "final"
    if final == m["truncated"]:
        raise RecordError("schema", "truncated must be true exactly when there is no final chunk")
    chunks = m["chunks"]
    if m["stored_digest"] != stored_digest_from(
        m["header_sha256"], (c["cipher_sha256"] for c in chunks)
    ):
        raise RecordError("schema", "stored_digest is not the one its header and chunks give")
    plain = [c for c in chunks if c["kind"] != "final"]
    if m["plain_digest"] != plain_digest_from(c["plain_sha256"] for c in plain):
        raise RecordError("schema", "plain_digest is not the one its chunks give")
    if m["plain_size"] != sum(c["plain_size"] for c in plain):
        raise RecordError("schema", "plain_size is not the sum of its chunks'")
