"""Opening the TPM: a missing TPM is one plain sentence saying what to check, never a TSS
traceback or its log lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.swtpm import SwTpm, swtpm_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


def test_the_tcti_comes_from_the_environment() -> None:
    from tpm.connect import default_tcti

    assert default_tcti({}) == "device:/dev/tpmrm0"
    assert default_tcti({"TPM2TOOLS_TCTI": "swtpm:port=1"}) == "swtpm:port=1"
    assert (
        default_tcti({"TPM2TOOLS_TCTI": "swtpm:port=1", "BWV_TPM_TCTI": "swtpm:port=2"})
        == "swtpm:port=2"
    )


def open_in_child(tcti: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from tpm.connect import open_tpm, TpmUnavailable\n"
        "try:\n"
        f"    open_tpm({tcti!r})\n"
        "except TpmUnavailable as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.skipif(Path("/dev/tpmrm0").exists(), reason="this machine has a TPM")
def test_no_tpm_device_names_the_overlay() -> None:
    pytest.importorskip("tpm2_pytss")
    r = open_in_child("device:/dev/tpmrm0")
    assert r.returncode == 2
    assert r.stdout.startswith("no TPM at /dev/tpmrm0: is the tpm-slb9670 overlay enabled?")
    assert r.stderr == ""  # neither a traceback nor the TSS's own ERROR lines


def test_no_swtpm_on_the_port_is_said_plainly(swtpm_server: SwTpm) -> None:  # noqa: F811
    port = int(swtpm_server.tcti.rsplit("=", 1)[1])
    closed = f"swtpm:host=127.0.0.1,port={port + 7}"
    r = open_in_child(closed)
    assert r.returncode == 2
    assert r.stdout.startswith(f"no TPM answers at {closed}")
    assert r.stderr == ""


def test_a_running_tpm_opens(swtpm_server: SwTpm) -> None:  # noqa: F811
    with swtpm_server.open() as esapi:
        assert len(bytes(esapi.get_random(8))) == 8


def test_a_tpm_gone_midway_is_a_tpm_error(swtpm_server: SwTpm) -> None:  # noqa: F811
    """The signer and the counter say so in a sentence (TpmError), not with the TSS's
    exception, when the TPM stops answering."""
    from tpm.connect import TpmError
    from tpm.counter import TpmCounter, define_counter
    from tpm.signer import create_device_key, load_signer

    with swtpm_server.open() as esapi:
        create_device_key(esapi)
        define_counter(esapi)
    signer = load_signer("bwv-test-0001", swtpm_server.tcti)
    counter = TpmCounter(signer.esapi)
    counter.next()
    swtpm_server.stop()
    try:
        with pytest.raises(TpmError, match="did not sign"):
            signer.sign(b"x")
        with pytest.raises(TpmError, match="did not count"):
            counter.next()
    finally:
        signer.close()
        swtpm_server.start()
