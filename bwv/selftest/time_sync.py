"""The selftest's look at the camera's last time sync with its dock (dock/clocksync.py): a
correction the camera refused (the dock's time too far off, without an RFC 3161 token the
camera can check) is a warning the technician sees."""

from __future__ import annotations

from pathlib import Path

from bwv.selftest.model import Check
from capture.config import Config


def check_time_sync(cfg: Config) -> Check:
    from dock.clockstate import CLOCK_STATE, clock_warning, read_clock_state

    state = read_clock_state(Path(cfg.storage.dir) / CLOCK_STATE)
    ca = Path(cfg.keys.tsa_ca)
    pinned = f"TSA CA pinned ({ca})" if ca.is_file() else f"no TSA CA pinned at {ca}"
    limit = f"corrections over {cfg.clock.max_step_s:g} s need the dock's RFC 3161 token"
    warning = clock_warning(state)
    if warning is not None:
        return Check("time sync", "WARN", f"{warning} ({pinned})", {"last_sync": state})
    if state is None:
        return Check("time sync", "PASS", f"not synced with a dock yet; {limit}; {pinned}")
    return Check(
        "time sync",
        "PASS",
        f"last sync applied (time_sync record {state.get('time_sync_seq')}); {pinned}",
        {"last_sync": state},
    )
