"""The core imports nothing heavy: each module, imported alone in a fresh interpreter, pulls in
exactly the third-party modules it is meant to (README, "Architecture").

PyAV, numpy and OpenCV belong to the media adapters (encoders, muxer, overlay); the pre-record
buffer, the gpio controls, the evidence code (PyNaCl only) and the device's shipper (PyNaCl
and httpx) load none of them, so a shipper or a verifier starts fast and a test of the ring
buffer needs no codec library.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {
    "base",
    "bwv",
    "bench",
    "capture",
    "crypto",
    "device_app",
    "dock",
    "gpio",
    "pre_record",
    "simulator",
    "tests",
    "tlog",
    "witness",
    "tsa",
}
HEAVY = {"av", "numpy", "cv2"}

# What a fresh ``python -c`` already holds is left out; so are private helper modules
# (``_cffi_backend``, PyNaCl's C binding) and ``cython_runtime`` (made by any Cython module).
_PROBE = """
import json, sys
before = set(sys.modules)
import {module}
names = {{n.split(".")[0] for n in set(sys.modules) - before}}
print(json.dumps(sorted(names)))
"""


def third_party_pulled_in(module: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names = set(json.loads(out.stdout))
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names
        and n not in FIRST_PARTY
        and not n.startswith("_")
        and n != "cython_runtime"
    }


def modules_of(package: str) -> list[str]:
    """The package's modules, subpackages' included; not ``__main__`` (a program, run by
    ``python -m``, not imported)."""
    return sorted(
        m.name
        for m in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}.")
        if not m.name.endswith(".__main__")
    )


# module -> exactly the third-party top-level modules it may pull in
NOTHING: set[str] = set()
EXPECTED: dict[str, set[str]] = {
    **{m: NOTHING for m in ["base", *modules_of("base")]},
    "pre_record.ring": NOTHING,
    # gpio.rpi imports RPi.GPIO only when a backend is made (on the Pi)
    **{m: NOTHING for m in ["gpio", *modules_of("gpio")]},
    # the capture core: the configuration, storage, faults, the recorder and its writer;
    # the writer muxes with PyAV (capture.fmp4), and nothing needs numpy or OpenCV
    "capture.config": NOTHING,
    "capture.storage": NOTHING,
    "capture.faults": NOTHING,
    "capture.notify": NOTHING,
    "capture.h264": NOTHING,
    "capture.packets": NOTHING,
    "capture.clock": NOTHING,
    "capture.fmp4": {"av"},
    "capture.sink": {"av"},
    "capture.segment_writer": {"av"},
    "capture.recorder": {"av"},
    "capture.device": {"av"},
    "capture.evidence_setup": {"nacl"},
}
CRYPTO = modules_of("crypto")
DEVICE_DOCK = ["dock.client", "dock.outbox", "dock.shipper", "witness.client"]


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_core_module_pulls_in_only_its_own(module: str) -> None:
    assert third_party_pulled_in(module) == EXPECTED[module]


@pytest.mark.parametrize("module", CRYPTO)
def test_crypto_needs_pynacl_alone(module: str) -> None:
    """Signing, sealing and verifying evidence: PyNaCl and nothing else (no codec library)."""
    assert third_party_pulled_in(module) <= {"nacl"}


@pytest.mark.parametrize("module", modules_of("tlog"))
def test_the_log_primitives_need_pynacl_alone(module: str) -> None:
    """The Merkle tree, notes, checkpoints, cosignatures (the camera checks its receipts'
    proofs with them): PyNaCl and nothing else."""
    assert third_party_pulled_in(module) <= {"nacl"}


@pytest.fixture(scope="module")
def httpx_and_its_own() -> set[str]:
    return third_party_pulled_in("httpx")


@pytest.mark.parametrize("module", DEVICE_DOCK)
def test_the_shipper_needs_no_media_library(module: str, httpx_and_its_own: set[str]) -> None:
    """The device's side of the dock: PyNaCl and httpx (with what httpx itself loads)."""
    pulled = third_party_pulled_in(module)
    assert not pulled & HEAVY
    assert pulled <= {"nacl"} | httpx_and_its_own
    assert "nacl" in pulled


@pytest.mark.parametrize("module", ["tsa", *modules_of("tsa")])
def test_trusted_time_loads_its_libraries_only_when_used(module: str) -> None:
    """tsa/ (the RFC 3161 client, the token check, the TSA itself) imports the standard
    library alone: ``cryptography``, ``rfc3161-client`` and ``httpx`` load when a token is
    asked for or checked, so a camera that imports the check does not pay for them at start."""
    assert third_party_pulled_in(module) == NOTHING


def test_the_probe_sees_a_heavy_import() -> None:
    """The check itself: a module that loads PyAV and numpy is seen to."""
    assert {"av", "numpy"} <= third_party_pulled_in("capture.audio_encoder")
    assert {"cv2", "numpy"} <= third_party_pulled_in("capture.overlay")
