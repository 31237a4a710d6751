"""What the device's last time sync did, kept for ``bwv status`` and the selftest.

``<storage.dir>/clock-sync.json`` (device bookkeeping, not evidence: the evidence is the
signed ``time_sync`` record in the chain): ``{"time_sync_seq", "applied", "offset_us",
"dock_time_us", "refused"}``, written atomically after each sync. Standard library only: the
status command reads it without loading the shipper.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic

CLOCK_STATE = "clock-sync.json"


def write_clock_state(path: Path, state: dict[str, Any]) -> None:
    write_atomic(Path(path), json.dumps(state, sort_keys=True).encode() + b"\n", mode=0o640)


def read_clock_state(path: Path) -> dict[str, Any] | None:
    """The last sync's state, or None (never synced, or unreadable)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clock_warning(state: dict[str, Any] | None) -> str | None:
    """The warning an officer or technician sees when the last sync was refused."""
    if not state or state.get("applied") is not False:
        return None
    return f"clock: {state.get('refused') or 'the last correction from the dock was refused'}"
