"""Which of the dock's kept checkpoints (``STORE/log/checkpoints/SIZE``, or the shared
index's) a witness cosigned: the newest (the store is checked against it while the latest
waits for its cosignature, or while the witness is away) and the first that holds a given
leaf (a recording stays witnessed once a witness cosigned a checkpoint holding its last
record, whatever happens to later checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cosigned:
    size: int
    note: bytes
    witnesses: tuple[str, ...]  # names of the witness keys that cosigned it


def _cosigned(cps: Any, size: int, vkeys: tuple[str, ...]) -> Cosigned | None:
    from crypto.verify.log import LogTrust, open_checkpoint

    kept = cps.at(size)
    if kept is None:
        return None
    w, _ = open_checkpoint(kept.note, LogTrust(vkeys), f"checkpoint {size}")
    return Cosigned(size, kept.note, w.witnesses) if w is not None and w.witnesses else None


def newest_cosigned(cps: Any, vkeys: tuple[str, ...]) -> Cosigned | None:
    """``cps``: the log's ``dock.checkpoints.CheckpointStore``."""
    for size in reversed(cps.sizes()):
        got = _cosigned(cps, size, vkeys)
        if got is not None:
            return got
    return None


def first_cosigned_holding(cps: Any, vkeys: tuple[str, ...], leaf: int) -> Cosigned | None:
    """The first kept checkpoint a witness cosigned that holds leaf ``leaf`` (0-based)."""
    for size in cps.sizes():
        if size > leaf:
            got = _cosigned(cps, size, vkeys)
            if got is not None:
                return got
    return None
