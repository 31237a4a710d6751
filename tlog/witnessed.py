"""A checkpoint signed by its log and cosigned by a quorum of pinned witnesses.

``open_cosigned(note, log_vkey, witness_vkeys, quorum)`` is the one check that a camera (its
receipts' proofs), the dock and the verifier make of a cosigned checkpoint: the log's
signature verifies, and at least ``quorum`` of the pinned witnesses' cosignatures verify.
It raises ``NotWitnessed`` (a ``NoteError``) when the witnesses are too few, ``NoteError``
for anything else (not a checkpoint, no valid log signature, a bad signature from a
pinned key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tlog.checkpoint import Checkpoint
from tlog.cosignature import CosignatureVerifier
from tlog.note import NoteError, NoteVerifier, Verifier, open_note, split_note


class NotWitnessed(NoteError):
    """The log signed the checkpoint, but fewer than the quorum of witnesses cosigned it."""


@dataclass(frozen=True)
class Witnessed:
    checkpoint: Checkpoint
    text: str  # the checkpoint's note text (what was signed)
    cosigned: dict[str, int]  # witness name -> cosignature time (POSIX seconds)


def _as_log(v: NoteVerifier | str) -> NoteVerifier:
    return v if isinstance(v, NoteVerifier) else NoteVerifier.from_vkey(v)


def _as_witness(v: CosignatureVerifier | str) -> CosignatureVerifier:
    return v if isinstance(v, CosignatureVerifier) else CosignatureVerifier.from_vkey(v)


def open_cosigned(
    note: bytes,
    log: NoteVerifier | str,
    witnesses: Sequence[CosignatureVerifier | str],
    quorum: int = 1,
) -> Witnessed:
    """The checkpoint of ``note``, signed by ``log`` and cosigned by ``quorum`` or more of
    ``witnesses`` (vkeys or verifiers); ``quorum`` 0 asks for the log's signature alone."""
    log_v = _as_log(log)
    wits = [_as_witness(w) for w in witnesses]
    if not 0 <= quorum <= len(wits):
        raise ValueError(f"a quorum of {quorum} out of {len(wits)} witnesses")
    verifiers: list[Verifier] = [log_v, *wits]
    text, names = open_note(note, verifiers)  # a bad signature from a pinned key raises
    if log_v.name not in names:
        raise NoteError(f"the checkpoint is not signed by the log's key {log_v.vkey}")
    checkpoint = Checkpoint.parse(text)
    _, sigs = split_note(note)
    cosigned: dict[str, int] = {}
    for w in wits:
        for s in sigs:
            if (s.name, s.key_id) == (w.name, w.key_id):
                time_s = w.verify(text, s.line)
                if time_s is not None:
                    cosigned[w.name] = time_s
    if len(cosigned) < quorum:
        raise NotWitnessed(
            f"cosigned by {len(cosigned)} of the pinned witnesses, {quorum} required"
        )
    return Witnessed(checkpoint, text, cosigned)
