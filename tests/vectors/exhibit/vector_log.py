"""The log papers of the witnessed exhibit vectors (``make_vectors.py``): a TEST dock's
transparency log of device A's records, its checkpoints signed by the TEST dock key and
cosigned by a TEST witness key, and the inclusion proofs (docs/evidence-format.md: the
leaves, the exhibit's log papers with each proof line's ``first`` member and
``log/checkpoints/<m>``).

The log (leaves as docs/evidence-format.md says, in the order a dock accepts them):

- leaf 0: the custody entry that enrolled device A (``enrollment.json``'s entry):
  ``"bwv:log-custody:v2" 0x00 || json(entry)``;
- leaves 1-4: recording ``vec-r1``'s chain records, seqs 0-3 (three manifests, the end);
- leaves 5-6: recording ``vec-r2``'s, seqs 4-5: ``"bwv:log-record:v2" 0x00 || line``.

The dock issues a checkpoint after each accepted record: sizes 2 to 7. The exhibit's
``log/checkpoint`` is the latest (size 7); the witness's latest checkpoint (what ``bwv witness
latest`` prints: ``witness.checkpoint``) is that same note. Nothing here is random: Ed25519
signatures are deterministic and the cosignature times are fixed. No RFC 3161 token (no TSA
key can be made deterministically here): the vectors' recordings have no upper time bound.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from nacl.signing import SigningKey

from crypto.identity import key_id_of
from crypto.testing import WALL0, S
from tlog.checkpoint import Checkpoint
from tlog.cosignature import CosignatureSigner
from tlog.merkle import inclusion_proof, leaf_hash, root_from_hashes
from tlog.note import NoteSigner, add_signatures, sign_note

RECORD = b"bwv:log-record:v2\0"
CUSTODY = b"bwv:log-custody:v2\0"
WITNESS_NAME = "bwv-test-witness"  # TEST KEY: seed("exhibit vector witness")
OTHER_WITNESS_NAME = "bwv-agency-own-witness"  # TEST KEY: seed("exhibit vector other witness")
COSIGN_TIME_S = WALL0 // S + 3600  # the witness cosigns size n at this time + n seconds


def origin(dock_seed: bytes) -> str:
    return "bwv-dock/" + key_id_of(bytes(SigningKey(dock_seed).verify_key))


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


class Log:
    """A list of leaf data, its checkpoints and proofs, signed with the TEST keys."""

    def __init__(self, leaves: list[bytes], dock_seed: bytes, witness: CosignatureSigner):
        self.leaves = leaves
        self.hashes = [leaf_hash(d) for d in leaves]
        self.dock = NoteSigner(origin(dock_seed), SigningKey(dock_seed))
        self.witness = witness

    def note(self, size: int) -> bytes:
        """The checkpoint of ``size`` leaves as the dock keeps it: its signature, then the
        witness's cosignature."""
        body = Checkpoint(self.dock.name, size, root_from_hashes(self.hashes[:size])).body()
        note = sign_note(body, [self.dock])
        return add_signatures(note, [self.witness.cosign(body, COSIGN_TIME_S + size)])

    def proof(self, index: int, size: int) -> list[str]:
        return [b64(h) for h in inclusion_proof(index, size, self.hashes)]

    def first_size(self, index: int) -> int:
        """The size of the first checkpoint including leaf ``index``: the dock issues one
        after each record it accepts (the enrollment leaf 0 comes before the first record)."""
        return max(index + 1, 2)


def witness_signer(seed32: bytes, name: str = WITNESS_NAME) -> CosignatureSigner:
    return CosignatureSigner(name, SigningKey(seed32))


def device_a_log(records: list[bytes], enrollment: dict, dock_seed: bytes, witness_seed: bytes):
    """The pristine log: enrollment, then ``records`` (device A's chain lines, seq order)."""
    entry = json.dumps(enrollment, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    leaves = [CUSTODY + entry.encode()] + [RECORD + r for r in records]
    return Log(leaves, dock_seed, witness_signer(witness_seed))


def write_papers(dst: Path, log: Log, size: int, lines: list[bytes]) -> None:
    """``dst``'s ``log/`` papers for the exhibit's chain ``lines`` (seq order): the
    checkpoint of ``size``, one proof line per record, and each record's first checkpoint."""
    (dst / "log" / "checkpoints").mkdir(parents=True)
    (dst / "log" / "checkpoint").write_bytes(log.note(size))
    out = []
    for line in lines:
        index = log.leaves.index(RECORD + line)
        m = log.first_size(index)
        (dst / "log" / "checkpoints" / str(m)).write_bytes(log.note(m))
        p = {
            "record_sha256": hashlib.sha256(line).hexdigest(),
            "leaf_index": index,
            "tree_size": size,
            "inclusion": log.proof(index, size),
            "first": {"tree_size": m, "inclusion": log.proof(index, m)},
        }
        out.append(json.dumps(p, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    (dst / "log" / "proofs.jsonl").write_bytes(b"".join(out))


def label_line(log: Log, size: int) -> str:
    return (
        f"- log: checkpoint {log.dock.name} size {size}, cosigned by {log.witness.name}; "
        "no RFC 3161 timestamp (no TSA configured)\n"
    )
