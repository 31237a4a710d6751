"""Make the recording vectors for time (issue 11; EXPECTED.md, "Time").

    .venv/bin/python tests/vectors/recording/make_time_vectors.py

Both outboxes are ``outbox/`` with chain records signed again by the same TEST device key
(``keys.json``; Ed25519 signatures are deterministic, so the same bytes every time): the
segments and the trail are copied as they are.

- ``outbox_wall_end_before_start/``: manifest 1 (segment 1) claims a wall end one second
  before its wall start; the end record (seq 2) is signed again to link to it.
- ``outbox_time_sync_after_start/``: a ``time_sync`` record (seq 0) first, holding the TEST
  dock's signed time answer (``dock_seed_hex`` in ``keys.json``: a TEST KEY from the label
  ``"vector dock"``): at capture time 8 s the device's wall clock said WALL0 + 8 s, the dock
  said WALL0 + 12 s; the correction (+4 s, within the 5 s step limit) applied. The recording's
  three records follow as seqs 1-3, their wall times unchanged: segment 0 claims to start at
  WALL0 + 10 s, before the dock time of the sync signed before it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from nacl.signing import SigningKey  # noqa: E402

from crypto.identity import DeviceIdentity, key_id_of  # noqa: E402
from crypto.manifest import time_sync_fields  # noqa: E402
from crypto.records import sign_record  # noqa: E402
from crypto.testing import WALL0, S  # noqa: E402
from crypto.time_answer import recorded_time_answer, time_answer_bytes  # noqa: E402

OUTBOX = HERE / "outbox"
WALL_END_BEFORE_START = "outbox_wall_end_before_start"
TIME_SYNC_AFTER_START = "outbox_time_sync_after_start"


def _keys() -> dict:
    return json.loads((HERE / "keys.json").read_text())


def _ident() -> DeviceIdentity:
    k = _keys()
    return DeviceIdentity.from_seed(k["device_id"], bytes.fromhex(k["device_seed_hex"]))


def _records() -> list[dict]:
    return [json.loads(p.read_bytes())["record"] for p in sorted((OUTBOX / "chain").iterdir())]


def _write_chain(dst: Path, records: list[dict]) -> None:
    """Sign ``records`` as seqs 0.. in order, each linking to the one before."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(OUTBOX / "segments", dst / "segments")
    shutil.copyfile(OUTBOX / "trail.jsonl", dst / "trail.jsonl")
    (dst / "chain").mkdir()
    prev = None
    for seq, r in enumerate(records):
        signed = sign_record(_ident(), {**r, "seq": seq, "prev_sha256": prev})
        (dst / "chain" / f"{seq:012d}.{r['type']}.json").write_bytes(signed.line)
        prev = signed.sha256


def time_sync(ident: DeviceIdentity) -> dict:
    dock = SigningKey(bytes.fromhex(_keys()["dock_seed_hex"]))
    fields = time_sync_fields(
        capture_us=8 * S,
        device_wall_us=WALL0 + 8 * S,
        nonce=hashlib.sha256(b"vector time sync nonce").hexdigest()[:32],
        dock_time_us=WALL0 + 12 * S,
        dock_key_id=key_id_of(bytes(dock.verify_key)),
        dock_signature="0" * 128,
        offset_us=4 * S,
        applied=True,
        tsa_token=None,
    )
    common = {
        k: v
        for k, v in _records()[0].items()
        if k in ("v", "suite", "device_id", "key_id", "counter")
    }
    r = {"type": "time_sync", **common, "seq": 0, "prev_sha256": None, **fields}
    r["dock_signature"] = dock.sign(time_answer_bytes(recorded_time_answer(r))).signature.hex()
    return r


def make() -> None:
    records = _records()
    seg1 = records[1]
    _write_chain(
        HERE / WALL_END_BEFORE_START,
        [records[0], {**seg1, "wall_end_us": seg1["wall_start_us"] - S}, records[2]],
    )
    _write_chain(HERE / TIME_SYNC_AFTER_START, [time_sync(_ident()), *records])


if __name__ == "__main__":
    make()
