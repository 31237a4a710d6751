"""A real software TPM for the TPM tests: Debian's swtpm, started by scripts/swtpm-temp.sh in
a fresh directory on a free port, with its own local CA (the endorsement key's certificate
chains to it). One per test module (``swtpm_server``; swtpm_setup takes about a second),
stopped and removed at the module's end, or by a watcher should the session die first.

Missing swtpm or tpm2-pytss skips the test, saying so; with ``CI`` set it fails it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    ScriptServer,
    missing_modules,
    run_script,
    start_script_server,
    unavailable,
)

ROOT = Path(__file__).resolve().parent.parent
SWTPM_SCRIPT = ROOT / "scripts" / "swtpm-temp.sh"
SWTPM_BINARIES = ("swtpm", "swtpm_setup", "swtpm_localca")


@dataclass
class SwTpm:
    server: ScriptServer
    tcti: str
    ca_root: Path
    ca_issuer: Path

    def open(self) -> Any:
        """An ESAPI context on this TPM (``with``)."""
        from tpm.connect import open_tpm

        return open_tpm(self.tcti)

    def stop(self) -> None:
        """Stop swtpm, keeping its state."""
        run_script(SWTPM_SCRIPT, "stop", self.server.directory, self.server.env)

    def start(self) -> None:
        """Start it again on the same state."""
        run_script(SWTPM_SCRIPT, "start", self.server.directory, self.server.env)

    def restart(self) -> None:
        """A power cycle."""
        self.stop()
        self.start()

    def cas(self) -> tuple[Any, Any]:
        """(root, intermediate) of the local CA, as cryptography certificates."""
        from cryptography import x509

        root, issuer = (
            x509.load_pem_x509_certificate(p.read_bytes()) for p in (self.ca_root, self.ca_issuer)
        )
        return root, issuer


def require_swtpm() -> None:
    missing = [b for b in SWTPM_BINARIES if shutil.which(b) is None]
    if missing:
        unavailable(
            f"swtpm is not installed (missing {', '.join(missing)}: "
            "apt-get install swtpm swtpm-tools)"
        )
    if missing_modules("tpm2_pytss"):
        unavailable("tpm2-pytss is not installed (pip install 'bwv[tpm]'; needs libtss2-dev)")


@contextlib.contextmanager
def running_swtpm() -> Iterator[SwTpm]:
    require_swtpm()
    server, env = start_script_server(SWTPM_SCRIPT, "bwv-swtpm-", "BWV_SWTPM_PORT", "swtpm.env")
    try:
        yield SwTpm(
            server,
            env["BWV_TPM_TCTI"],
            Path(env["BWV_TPM_CA_ROOT"]),
            Path(env["BWV_TPM_CA_ISSUER"]),
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def swtpm_server() -> Iterator[SwTpm]:
    with running_swtpm() as tpm:
        yield tpm
