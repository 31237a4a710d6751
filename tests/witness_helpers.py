"""A test log (leaves in memory, a note key) and a witness state for the witness tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import SigningKey

from tlog.checkpoint import Checkpoint
from tlog.merkle import consistency_proof, leaf_hash, root_from_hashes
from tlog.note import NoteSigner, sign_note
from witness.state import add_log, keygen

ORIGIN = "example.com/test-log"


@dataclass
class FakeLog:
    origin: str = ORIGIN
    seed: bytes = b"\x05" * 32
    hashes: list[bytes] = field(default_factory=list)

    @property
    def signer(self) -> NoteSigner:
        return NoteSigner(self.origin, SigningKey(self.seed))

    def grow(self, n: int, tag: str = "") -> None:
        start = len(self.hashes)
        self.hashes += [leaf_hash(f"{tag}leaf {start + i}".encode()) for i in range(n)]

    def body(self, size: int | None = None) -> str:
        size = len(self.hashes) if size is None else size
        return Checkpoint(self.origin, size, root_from_hashes(self.hashes[:size])).body()

    def note(self, size: int | None = None) -> bytes:
        return sign_note(self.body(size), [self.signer])

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.hashes) if new is None else new
        return consistency_proof(old, new, self.hashes)


def make_state(tmp: Path, log: FakeLog | None = None) -> tuple[Path, str]:
    """A witness state witnessing ``log``; (state, the witness's vkey)."""
    state = tmp / "witness"
    signer = keygen(state, "witness.test/w1")
    add_log(state, (log or FakeLog()).origin, (log or FakeLog()).signer.vkey)
    return state, signer.vkey
