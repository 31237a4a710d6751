"""The raid's outside authorities: a witness (``OUT/witness``) and an RFC 3161 TSA
(``OUT/tsa``), served on loopback while the camera docks, as a watchdog and a time-stamping
service would run them (``bwv witness serve``, ``bwv tsa serve``).

The dock is configured with both (its log asks the TSA for each checkpoint's time and the
witness for its cosignature); the camera pins the witness's key (it deletes a segment only
once the witness has countersigned its record). After the visit the witness's latest
cosigned checkpoint of the dock's log is fetched from it (``OUT/witness/latest.checkpoint``):
``summary.json``'s ``witness`` object names it and the witness's public key, and
``bwv verify OUT`` checks the dock and every exhibit against them.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic

WITNESS_DIR = "witness"
TSA_DIR = "tsa"
WITNESS_NAME = "bwv-sim-witness"
LATEST = "latest.checkpoint"
PINNED_WITNESSES = "witnesses"  # beside the device's keys: one vkey a line


@dataclass
class Authorities:
    out: Path
    witness_url: str
    witness_vkey: str
    tsa_url: str | None
    tsa_ca_pem: bytes | None
    notes: list[str] = field(default_factory=list)

    def trust(self) -> Any:
        """The verifier's trust: the witness's key and the checkpoint fetched from it."""
        from crypto.verify.log import LogTrust

        latest = self.out / WITNESS_DIR / LATEST
        if not latest.is_file():
            return None
        from tsa.verify import verify_token

        token_time = verify_token if self.tsa_ca_pem is not None else None
        return LogTrust(
            (self.witness_vkey,), latest.read_bytes(), None, self.tsa_ca_pem, token_time
        )

    def summary(self, origin: str | None) -> dict[str, Any]:
        latest = self.out / WITNESS_DIR / LATEST
        return {
            "public_key": f"{WITNESS_DIR}/witness.vkey",
            "checkpoint": f"{WITNESS_DIR}/{LATEST}" if latest.is_file() else None,
            "origin": origin,
            "tsa_ca": f"{TSA_DIR}/ca.pem" if self.tsa_ca_pem else None,
            "notes": self.notes,
        }


@contextlib.contextmanager
def running_authorities(out: Path, dock_dir: Path) -> Iterator[Authorities]:
    """A witness (that witnesses the dock's log) and a TSA on loopback while the block
    runs; the dock in ``dock_dir`` configured to use both."""
    from dock.checkpoints import LogConfig, WitnessConfig, save_log_config
    from witness.core import Witness
    from witness.server import WitnessServerThread
    from witness.state import add_log, keygen

    state = out / WITNESS_DIR
    signer = keygen(state, WITNESS_NAME)
    origin, vkey = dock_log_identity(dock_dir)
    add_log(state, origin, vkey)
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(WitnessServerThread(Witness(state)))
        tsa_url, ca, notes = _start_tsa(stack, out / TSA_DIR)
        save_log_config(dock_dir, LogConfig((WitnessConfig(w.url, signer.vkey),), tsa_url, ca))
        yield Authorities(out, w.url, signer.vkey, tsa_url, ca, notes)


def _start_tsa(
    stack: contextlib.ExitStack, state: Path
) -> tuple[str | None, bytes | None, list[str]]:
    if shutil.which("openssl") is None:  # the TSA signs with `openssl ts -reply`
        return None, None, ["no TSA: openssl is not installed (no RFC 3161 time)"]
    from tsa.init import init_state
    from tsa.server import ServerThread

    result = init_state(state)
    served = stack.enter_context(ServerThread(result.state.dir))
    return served.url, result.state.ca_pem, []


def dock_log_identity(dock_dir: Path) -> tuple[str, str]:
    """(origin, signed-note vkey) of the dock's log; makes the dock's key if it is new."""
    from dock.checkpoints import origin_for
    from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
    from dock.log_proof import dock_note_vkey
    from dock.protocol import key_id

    dock_dir.mkdir(parents=True, exist_ok=True)
    pub = bytes(load_or_create_signing_key(dock_dir / DOCK_KEY_FILE).verify_key)
    return origin_for(key_id(pub)), dock_note_vkey(pub)


def pin_witness(keys_dir: Path, vkey: str) -> Path:
    """The camera pins the witness's key, as at provisioning."""
    path = keys_dir / PINNED_WITNESSES
    write_atomic(path, vkey.encode() + b"\n")
    return path


def fetch_latest(auth: Authorities, origin: str) -> bytes | None:
    """The latest cosigned checkpoint the witness holds for ``origin``, kept in OUT."""
    from witness.client import WitnessClient

    with WitnessClient(auth.witness_url) as client:
        note = client.latest(origin)
    if note is not None:
        write_atomic(auth.out / WITNESS_DIR / LATEST, note)
    return note
