"""Which folder ``bwv dock serve --store`` may use: a new or empty one (it becomes a store),
or a dock store already. Anything else is refused before a file is written there, so that a
mistyped path never turns someone's folder into a dock."""

from __future__ import annotations

import os
from pathlib import Path

from dock.backends import BACKENDS_FILE
from dock.keys import DOCK_KEY_FILE
from dock.store_sqlite import INDEX_FILE

STORE_MARKERS = (INDEX_FILE, DOCK_KEY_FILE, BACKENDS_FILE)
IGNORED = frozenset({"lost+found"})  # what a freshly made filesystem holds


class StoreDirError(Exception):
    """The folder cannot be a dock store; the text says why, in one line."""


def check_store_dir(path: Path) -> bool:
    """True if ``path`` is a dock store already, False if it is missing or empty (a new
    store); :class:`StoreDirError` if it is anything else."""
    path = Path(path)
    if not os.path.lexists(path):
        return False
    if not path.is_dir():
        raise StoreDirError(f"{path} is not a directory: give a folder for the dock's store")
    try:
        entries = sorted(set(os.listdir(path)) - IGNORED)
    except OSError as exc:
        raise StoreDirError(f"{path}: cannot read the folder ({exc.strerror})") from None
    if any(name in entries for name in STORE_MARKERS):
        return True
    if not entries:
        return False
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise StoreDirError(
        f"{path} is not empty and is not a dock store (it has no {INDEX_FILE} or "
        f"{DOCK_KEY_FILE}; it holds {shown}): give an empty or new folder, or an existing store"
    )
