"""What the dock's log lacks, as ``bwv dock status``, ``GET /v1/log/status`` and a device's
``GET /v1/status`` say it: its size, latest checkpoint, witnesses (and whether each cosigned
the latest), its TSA, and the notes "unwitnessed" and "untimestamped"."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dock.checkpoints import (
    LogConfig,
    LogConfigError,
    StoredCheckpoint,
    checkpoint_store,
    load_log_config,
    origin_for,
)


class _Sized(Protocol):
    dock_key_id: str

    def log_size(self) -> int: ...


@dataclass
class WitnessState:
    name: str
    url: str
    size: int = 0  # the tree size it last cosigned
    last_error: str | None = None


@dataclass
class LogHealth:
    tsa_error: str | None = None
    witnesses: dict[str, WitnessState] = field(default_factory=dict)


def log_status(
    origin: str,
    leaves: int,
    cp: StoredCheckpoint | None,
    config: LogConfig,
    cosigned: list[str],
    health: LogHealth | None = None,
) -> dict[str, Any]:
    witnesses = []
    for w in config.witnesses:
        st = health.witnesses.get(w.name) if health else None
        witnesses.append(
            {
                "name": w.name,
                "url": w.url,
                "cosigned_latest": w.name in cosigned,
                "last_error": st.last_error if st else None,
            }
        )
    notes = []
    if not config.witnesses:
        notes.append("no witness configured: checkpoints are signed by this dock alone")
    if not config.tsa_url:
        notes.append("no TSA configured: checkpoints carry no trusted time")
    return {
        "origin": origin,
        "leaves": leaves,
        "checkpoint_size": cp.size if cp else None,
        "checkpoint_timestamped": bool(cp and cp.token),
        "witnesses": witnesses,
        "tsa_url": config.tsa_url,
        "unwitnessed": not config.witnesses,
        "untimestamped": not config.tsa_url,
        "notes": notes,
    }


def stored_log_status(store_dir: Path, store: _Sized) -> dict[str, Any]:
    """The log's status read from the store directory (no server needed)."""
    try:
        config = load_log_config(store_dir)
    except LogConfigError as exc:
        status = stored_log_status_of(store_dir, store, LogConfig())
        status["notes"].insert(0, str(exc))
        return status
    return stored_log_status_of(store_dir, store, config)


def stored_log_status_of(store_dir: Path, store: _Sized, config: LogConfig) -> dict[str, Any]:
    cp = checkpoint_store(store_dir, store).latest()  # the shared index's, for a fleet
    cosigned: list[str] = []
    if cp is not None:
        with contextlib.suppress(Exception):
            from tlog.note import split_note

            names = {s.name for s in split_note(cp.note)[1]}
            cosigned = [w.name for w in config.witnesses if w.name in names]
    return log_status(origin_for(store.dock_key_id), store.log_size(), cp, config, cosigned)
