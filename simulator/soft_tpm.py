"""A software TPM for the simulated camera: Debian's swtpm, started by the project's own
``simulator/swtpm-temp.sh`` (``scripts/swtpm-temp.sh`` runs it) in a folder of the raid's,
with a local CA that certified its endorsement key (the simulated "TPM maker", which the
raid's dock is told to trust).

``bwv sim raid --key-store tpm`` runs the whole raid with its device key in it: the key is
made inside the TPM, every record is signed there, every chain record numbered by its NV
counter, and the dock enrols the camera only on the TPM's attestation.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulator.fleet_services import free_port, read_env_file

SCRIPT = Path(__file__).resolve().parent / "swtpm-temp.sh"  # package data (scripts/ runs it)


# manufacturing a TPM (swtpm_setup makes RSA and ECC endorsement keys and their certificates)
# takes about a second here, over a minute under qemu's arm64 emulation
START_TIMEOUT_S = 600


class SoftTpmUnavailable(Exception):
    """swtpm could not be started; the message says why and what to install."""


@dataclass(frozen=True)
class SoftTpm:
    folder: Path
    tcti: str  # e.g. swtpm:host=127.0.0.1,port=40321
    ca_certs: tuple[Path, ...]  # the local CA's root and intermediate (PEM): the "TPM maker"


def _free_port_pair() -> int:
    """A port whose next one is free too (swtpm's command and control ports)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return int(port)
    raise SoftTpmUnavailable("no two free ports on 127.0.0.1 for swtpm")


def _script(command: str, folder: Path, port: int | None = None) -> None:
    if not SCRIPT.exists():
        raise SoftTpmUnavailable(
            f"{SCRIPT} is missing: reinstall bwv (it ships with the simulator)"
        )
    env = dict(os.environ)
    if port is not None:
        env["BWV_SWTPM_PORT"] = str(port)
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), command, str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SoftTpmUnavailable(
            f"the software TPM did not {command} within {START_TIMEOUT_S} s ({SCRIPT})"
        ) from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SoftTpmUnavailable(f"the software TPM did not {command}: {why}")


@contextmanager
def soft_tpm(folder: Path) -> Iterator[SoftTpm]:
    """A swtpm with its state in ``folder`` (made the first time), stopped on the way out
    (its state stays: the same TPM, counter and keys, if started again)."""
    folder = Path(folder).resolve()
    _script("start", folder, _free_port_pair())
    env = read_env_file(folder / "swtpm.env")  # as the script wrote it
    try:
        yield SoftTpm(
            folder,
            env["BWV_TPM_TCTI"],
            (Path(env["BWV_TPM_CA_ROOT"]), Path(env["BWV_TPM_CA_ISSUER"])),
        )
    finally:
        _script("stop", folder)
