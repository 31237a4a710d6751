"""Make the TPM-suite vectors' altered chain records (EXPECTED.md, "Changes").

    .venv/bin/python tests/vectors/tpm/make_tpm_vectors.py

Each file in ``changed/`` takes the place of ``outbox/chain/000000000002.end.json`` (the
recording's end record, seq 2, counter 44) in a copy of the outbox. They are made from that
record and the TEST device key in ``keys.json`` (ECDSA P-256 signing is deterministic here,
RFC 6979, so the same bytes every time):

- ``counter_gap.end.json``: the end record signed again with counter 46: the TPM counted two
  records (44 and 45) that are not in this chain; the chain itself links up (seq 2 still
  names record 1). What a device whose storage was rolled back to a copy taken after
  record 1 signs next.
- ``counter_reused.end.json``: signed again with counter 43, manifest 1's counter.
- ``high_s.end.json``: the end record as stored, its signature ``r || s`` replaced by
  ``r || n - s`` (the same signature's other, high-S, form: it verifies as plain ECDSA).
- ``suite_mismatch.end.json``: the end record claiming suite ``ed25519`` (counter null),
  signed by the device's P-256 key over the v4 message: the key id is the device's, the
  signature is its own, only the suite claimed is not the key's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from crypto import canonical  # noqa: E402
from crypto.records import domain, sign_record  # noqa: E402
from crypto.suites import P256_N  # noqa: E402
from crypto.testing import SoftP256Signer  # noqa: E402

END = HERE / "outbox" / "chain" / "000000000002.end.json"
CHANGED = HERE / "changed"


def signer() -> SoftP256Signer:
    k = json.loads((HERE / "keys.json").read_text())
    return SoftP256Signer(k["device_id"], bytes.fromhex(k["device_secret_hex"]))


def _line(record: dict, sig: bytes) -> bytes:
    return canonical.encode({"record": record, "sig": sig.hex()}) + b"\n"


def high_s(line: bytes) -> bytes:
    env = json.loads(line)
    sig = bytes.fromhex(env["sig"])
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    return _line(env["record"], r + (P256_N - s).to_bytes(32, "big"))


def make() -> None:
    CHANGED.mkdir(exist_ok=True)
    line = END.read_bytes()
    end = json.loads(line)["record"]
    dev = signer()
    out = {
        "counter_gap.end.json": sign_record(dev, {**end, "counter": 46}).line,
        "counter_reused.end.json": sign_record(dev, {**end, "counter": 43}).line,
        "high_s.end.json": high_s(line),
    }
    claimed = {**end, "suite": "ed25519", "counter": None}
    out["suite_mismatch.end.json"] = _line(
        claimed, dev.sign(domain("end") + canonical.encode(claimed))
    )
    for name, data in out.items():
        (CHANGED / name).write_bytes(data)


if __name__ == "__main__":
    make()
