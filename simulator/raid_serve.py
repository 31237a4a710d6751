"""A finished raid's folder served again, for ``bwv sim console``: its witness
(``OUT/witness``) and TSA (``OUT/tsa``) back on loopback, the raid's dock store configured to
use them (new ports: the raid's are gone), so the checkpoints the console's custody entries
need are cosigned and time-stamped as they were during the raid.

Nothing the raid wrote is changed but the dock's log configuration (the authorities' URLs)
and what serving adds anyway (custody entries, checkpoints, the witness's latest)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.raid_log import TSA_DIR, WITNESS_DIR, _start_tsa

RAID_DOCK = "dock"


class NotARaidError(Exception):
    """The folder holds no raid to serve (one line, for the user)."""


@dataclass(frozen=True)
class Served:
    witness_url: str
    witness_name: str
    tsa_url: str | None
    notes: list[str]


def raid_dock(out: Path) -> Path:
    """OUT's dock store, or NotARaidError saying why not."""
    out = Path(out)
    dock_dir = out / RAID_DOCK
    if not (out / "summary.json").is_file() or not (dock_dir / "index.sqlite3").is_file():
        raise NotARaidError(
            f"{out} holds no raid (no summary.json and dock/ there): "
            f"make one with `bwv sim raid --out {out}`"
        )
    return dock_dir


@contextlib.contextmanager
def raid_authorities(out: Path) -> Iterator[Served]:
    """The raid's witness and TSA served while the block runs, the raid's dock set to use
    them. NotARaidError when OUT has no witness of its own."""
    from dock.checkpoints import LogConfig, WitnessConfig, save_log_config
    from witness.core import Witness
    from witness.server import WitnessServerThread
    from witness.state import StateError, load_signer

    out = Path(out)
    dock_dir = raid_dock(out)
    state = out / WITNESS_DIR
    try:
        signer = load_signer(state)
    except (StateError, OSError, ValueError) as exc:
        raise NotARaidError(f"{state}: not the raid's witness ({exc})") from None
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(WitnessServerThread(Witness(state)))
        tsa_url, ca, notes = _start_tsa(stack, out / TSA_DIR)
        save_log_config(dock_dir, LogConfig((WitnessConfig(w.url, signer.vkey),), tsa_url, ca))
        yield Served(w.url, signer.name, tsa_url, notes)
