"""The camera's check of a receipt's proof, before it deletes anything (PyNaCl and tlog only:
the camera loads no ``cryptography``).

A receipt (dock/receipts.py) names its record's leaf (``leaf_index``, signed); its ``proof``
(outside the signature) is the leaf's inclusion proof in a checkpoint of the dock's log. The
camera deletes the segment only when all of these hold (``check_proof``):

1. the proof is for the leaf the signed receipt names (``leaf_index``), in a tree of
   ``tree_size`` leaves, ``leaf_index < tree_size``;
2. the checkpoint is a C2SP signed note whose origin is ``bwv-dock/<key id of the pinned dock
   key>``, signed by the pinned dock key under that name, and of ``tree_size`` leaves;
3. the inclusion proof takes the leaf the camera computes itself, ``b"bwv:log-record:v2\\0"``
   + the record's exact line (its own copy, never the dock's), to the checkpoint's root;
4. the checkpoint carries valid ``cosignature/v1`` cosignatures (over its body) from at least
   ``quorum`` distinct witnesses whose keys the camera pinned at provisioning.

A camera that pins no witness checks nothing of this (it keeps the behaviour of a receipt
alone) and says so: its status and selftest report it as "unwitnessed".
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dock.checkpoints import origin_for
from dock.leaves import leaf_hash, record_leaf
from dock.protocol import key_id

MAX_PROOF_HASHES = 64


class WitnessKeysError(ValueError):
    """A pinned witness key that cannot be used; the text says which."""


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a camera pins (their cosignature/v1 vkeys) and how many must cosign."""

    vkeys: tuple[str, ...] = ()
    quorum: int = 1

    @property
    def witnessed(self) -> bool:
        return bool(self.vkeys)

    def check(self) -> WitnessPolicy:
        from tlog.cosignature import CosignatureVerifier

        for v in self.vkeys:
            try:
                CosignatureVerifier.from_vkey(v)
            except ValueError as exc:
                raise WitnessKeysError(f"witness key {v[:40]!r}: {exc}") from None
        if self.vkeys and not 1 <= self.quorum <= len(self.vkeys):
            raise WitnessKeysError(
                f"quorum {self.quorum}: must be 1..{len(self.vkeys)} (the witnesses pinned)"
            )
        return self


def read_witness_keys(path: Path) -> tuple[str, ...]:
    """The vkeys in ``path``, one a line (``#`` comments); none if the file is missing."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessKeysError(f"{path}: cannot read the pinned witness keys ({exc})") from None
    return tuple(line for raw in text.splitlines() if (line := raw.split("#", 1)[0].strip()))


def load_policy(path: Path, quorum: int) -> WitnessPolicy:
    return WitnessPolicy(read_witness_keys(path), quorum).check()


def dock_note_vkey(dock_public_key: bytes) -> str:
    """The signed-note verifier key of the dock's checkpoints (Ed25519, alg 0x01)."""
    from tlog.note import NoteVerifier

    return NoteVerifier(origin_for(key_id(dock_public_key)), dock_public_key).vkey


def _hashes(values: Any) -> list[bytes] | None:
    if not isinstance(values, list) or len(values) > MAX_PROOF_HASHES:
        return None
    out = []
    for v in values:
        try:
            h = base64.b64decode(v, validate=True) if isinstance(v, str) else b""
        except (ValueError, binascii.Error):
            return None
        if len(h) != 32:
            return None
        out.append(h)
    return out


def check_proof(
    proof: Any,
    leaf_index: int,
    record_line: bytes,
    dock_public_key: bytes,
    policy: WitnessPolicy,
) -> str | None:
    """None when ``proof`` shows the record in a checkpoint signed by the dock and cosigned
    by the quorum of pinned witnesses; else why not, in words for the device's status."""
    from tlog.merkle import verify_inclusion
    from tlog.note import NoteError, NoteVerifier
    from tlog.witnessed import NotWitnessed, open_cosigned

    if not isinstance(proof, dict):
        return "the receipt carries no proof"
    size, index = proof.get("tree_size"), proof.get("leaf_index")
    inclusion = _hashes(proof.get("inclusion"))
    note = proof.get("checkpoint")
    if type(size) is not int or index != leaf_index or inclusion is None:
        return "the proof is not for the leaf the receipt names"
    if not isinstance(note, str) or not 0 <= leaf_index < size:
        return "the proof names no checkpoint that holds the leaf"
    origin = origin_for(key_id(dock_public_key))
    quorum = policy.quorum if policy.witnessed else 0
    try:
        cp = open_cosigned(
            note.encode(), NoteVerifier(origin, dock_public_key), policy.vkeys, quorum
        ).checkpoint
    except NotWitnessed as exc:
        return f"the checkpoint is {exc}"
    except (NoteError, ValueError) as exc:
        return f"the checkpoint is not signed by the pinned dock and witnesses ({exc})"
    if cp.origin != origin or cp.size != size:
        return "the checkpoint is not the dock's log at the proof's size"
    leaf = record_leaf("", "", record_line).data
    if not verify_inclusion(leaf_hash(leaf), leaf_index, size, inclusion, cp.root):
        return "the inclusion proof does not put this record in the checkpoint"
    return None
