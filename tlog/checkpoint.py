"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the note text of a log's tree head.

<origin>\\n<tree size in decimal>\\n<base64 root hash>\\n[<extension line>\\n ...]
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from tlog.merkle import EMPTY_ROOT, HASH_SIZE
from tlog.note import NoteError, check_text

MAX_SIZE = (1 << 63) - 1


class CheckpointError(NoteError):
    """A note text that is not a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("a checkpoint's origin is one non-empty line")
        if not (isinstance(self.size, int) and 0 <= self.size <= MAX_SIZE):
            raise CheckpointError(f"bad tree size {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError("a checkpoint's root hash is 32 bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError("an extension line is one non-empty line")

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        text = "\n".join([*lines, *self.extensions]) + "\n"
        check_text(text)
        return text

    @property
    def empty_root_ok(self) -> bool:
        """A checkpoint of size 0 must carry the empty tree's hash."""
        return self.size != 0 or self.root == EMPTY_ROOT

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint of a note text (as ``tlog.note.open_note`` returns it)."""
        if not text.endswith("\n"):
            raise CheckpointError("a checkpoint text ends in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has at least three lines")
        origin, size_s, root_s, *ext = lines
        if not size_s.isascii() or not size_s.isdigit() or (size_s[0] == "0" and size_s != "0"):
            raise CheckpointError(f"bad tree size line {size_s[:32]!r}")
        try:
            root = base64.b64decode(root_s, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError("the root hash line is not base64") from None
        if base64.b64encode(root).decode() != root_s:
            raise CheckpointError("the root hash line is not canonical base64")
        cp = cls(origin, int(size_s), root, tuple(ext))
        if cp.body() != text:  # pragma: no cover - a programming error
            raise CheckpointError("checkpoint text does not round-trip")
        return cp
