"""A camera whose key is held in a TPM, end to end, on a real software TPM (Debian's swtpm):
the technician provisions it (``--key-store tpm``) and self-tests it, the officer records,
the auditor finds a restored SD-card snapshot out by the TPM's counter, and ``bwv sim raid
--key-store tpm`` runs the whole journey (attested enrolment included) and verifies."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from nacl.public import PrivateKey

from bwv.cli import main
from bwv.provision_cmd import provision
from capture.config import load
from capture.device_key import open_configured_key
from tests.swtpm import swtpm_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)


class TpmCamera:
    """A camera's configuration under one temporary directory, its TPM the module's swtpm."""

    def __init__(self, root: Path, tcti: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.storage = root / "var"
        self.key = self.storage / "keys" / "device.key"
        self.config = root / "bwv.toml"
        self.config.write_text(
            'device_id = "cam-tpm-001"\n'
            f'[storage]\ndir = "{self.storage}"\n'
            f'[keys]\ndevice_key = "{self.key}"\n'
            f'agency_public_key = "{self.storage / "keys" / "agency.pub"}"\n'
            f'dock_public_key = "{self.storage / "keys" / "dock.pub"}"\n'
            f'tpm_tcti = "{tcti}"\n'
        )
        self.agency_file = root / "agency.pub"
        self.agency_file.write_text(bytes(PrivateKey.generate().public_key).hex() + "\n")

    def provision(self, *args: str) -> Result:
        return CliRunner().invoke(
            provision,
            ["--config", str(self.config), "--agency-pub", str(self.agency_file), *args],
        )

    def cfg(self):
        return load(self.config)


def test_the_tpm_key_never_touches_the_card_and_signs_what_verifies(tmp_path, swtpm_server):  # noqa: F811
    from crypto.suites import ECDSA_P256, verify_signature

    cam = TpmCamera(tmp_path, swtpm_server.tcti)
    r = cam.provision("--key-store", "tpm")
    assert r.exit_code == 0, r.output
    assert "held in the TPM" in r.output
    # on the card: where the key is, never the key (an image of the card signs nothing)
    ref = cam.key.read_bytes()
    assert ref.startswith(b"bwv-tpm-key handle=0x") and len(ref) < 80
    assert stat.S_IMODE(cam.key.stat().st_mode) == 0o600
    pub = bytes.fromhex(cam.key.with_name("device.key.pub").read_text().strip())
    assert len(pub) == 65 and pub[0] == 4
    with open_configured_key(cam.cfg()) as key:
        assert key.store == "tpm" and key.signer.suite == ECDSA_P256
        assert key.public_key == pub
        sig = key.signer.sign(b"a record")
        assert verify_signature(pub, b"a record", sig)
        assert not verify_signature(pub, b"another record", sig)


def test_selftest_checks_the_tpm_and_never_spends_a_count(tmp_path, swtpm_server):  # noqa: F811
    from bwv.selftest.setup_checks import check_keys

    cam = TpmCamera(tmp_path, swtpm_server.tcti)
    assert cam.provision("--key-store", "tpm").exit_code == 0
    with open_configured_key(cam.cfg()) as key:
        before = key.counter.value()
    checks = {c.name: c for c in check_keys(cam.cfg())}
    assert checks["device key"].status == "PASS"
    assert "held in the TPM" in checks["device key"].detail
    assert checks["TPM"].status == "PASS", checks["TPM"].detail
    with open_configured_key(cam.cfg()) as key:
        assert key.counter.value() == before  # every count belongs to a chain record


def test_force_replaces_the_tpm_key_and_the_counter_goes_on(tmp_path, swtpm_server):  # noqa: F811
    cam = TpmCamera(tmp_path, swtpm_server.tcti)
    assert cam.provision("--key-store", "tpm").exit_code == 0
    with open_configured_key(cam.cfg()) as key:
        old_id, counted = key.key_id, key.counter.next()
    r = cam.provision("--key-store", "tpm", "--force")
    assert r.exit_code == 0, r.output
    assert "moved aside" in r.output
    with open_configured_key(cam.cfg()) as key:
        assert key.key_id != old_id
        assert key.counter.value() >= counted  # never set back
    aside = [p for p in cam.key.parent.iterdir() if ".replaced-" in p.name]
    assert any(p.name.endswith(".pub") for p in aside)


def test_a_card_whose_reference_names_no_key_in_the_tpm_is_refused(tmp_path, swtpm_server):  # noqa: F811
    from crypto.identity import IdentityError

    cam = TpmCamera(tmp_path, swtpm_server.tcti)
    assert cam.provision("--key-store", "tpm").exit_code == 0
    cam.key.write_bytes(b"bwv-tpm-key handle=0x81010077 counter=0x01500042\n")
    with pytest.raises(IdentityError, match="TPM"):
        open_configured_key(cam.cfg())


def _record_once(dev, seconds: float = 2.5) -> None:
    start = dev.now_us
    dev.button(down=True)
    dev.run_until(start + 150_000)
    dev.button(down=False)
    dev.run_until(start + int(seconds * 1e6))
    dev.button(down=True)  # hold to stop
    dev.run_until(dev.now_us + int(dev.cfg.controls.hold_to_stop_s * 1e6) + 200_000)
    dev.button(down=False)
    dev.run_until(dev.now_us + 1_000_000)


def _sim_config():
    from capture.config import Config, VideoConfig, validate

    return validate(
        Config(
            device_id="sim-tpm-rollback", video=VideoConfig(width=320, height=240, fps=15, gop=15)
        )
    )


def test_a_restored_sd_card_snapshot_is_found_out_by_the_counter(tmp_path, swtpm_server):  # noqa: F811
    """The officer records twice; someone puts back a copy of the card taken between the
    two recordings (the second is gone, the chain looks whole) and the camera records on.
    The TPM's counter was not put back: the verifier reports the gap."""
    from crypto.verify import verify_outbox
    from simulator.device import make_device

    state, agency = tmp_path / "device", tmp_path / "agency"
    dev = make_device(_sim_config(), state, agency_dir=agency, tpm_tcti=swtpm_server.tcti)
    dev.run_until(3_000_000)
    _record_once(dev)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(state, snapshot, ignore=shutil.ignore_patterns("keys"))
    _record_once(dev)
    dev.shutdown()
    dev.keys.close()
    for name in ("outbox", "chain_state.json"):  # the card put back
        target = state / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        src = snapshot / name
        shutil.copytree(src, target) if src.is_dir() else shutil.copy2(src, target)
    dev = make_device(_sim_config(), state, agency_dir=agency, tpm_tcti=swtpm_server.tcti)
    dev.run_until(3_000_000)
    _record_once(dev)
    dev.shutdown()
    report = verify_outbox(
        dev.storage.root,
        dev.keys.identity.public_key,
        dev.keys.agency_private(),
        device_id="sim-tpm-rollback",
    )
    dev.keys.close()
    assert not report.ok
    text = json.dumps(report.to_json())
    assert "counter_gap" in text


def test_sim_raid_with_the_key_in_a_tpm_runs_end_to_end_and_verifies(tmp_path):
    out = tmp_path / "raid"
    r = CliRunner().invoke(
        main,
        [
            "sim",
            "raid",
            "--out",
            str(out),
            "--key-store",
            "tpm",
            "--pre-record",
            "2",
            "--record",
            "3",
            "--size",
            "320x240",
            "--fps",
            "15",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] is True
    exhibits = list((out / "exhibits").glob("*/EXHIBIT.md"))
    assert exhibits and all("held in a TPM" in p.read_text() for p in exhibits)
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 0, r.output


def _dock_trusting(root: Path, cas: tuple[Path, ...]):
    from dock.testing import DockHarness
    from dock.tpm_trust import save_tpm_cas

    root.mkdir(parents=True, exist_ok=True)
    if cas:
        save_tpm_cas(root, cas)
    return DockHarness(root)


def _enrol_args(harness, device_id: str) -> tuple[str, ...]:
    return (
        "--key-store", "tpm", "--dock-url", harness.url,
        "--token", harness.token(device_id), "--trust-first-dock",
    )  # fmt: skip


def test_provision_enrols_the_tpm_key_on_its_attestation(tmp_path, swtpm_server):  # noqa: F811
    cam = TpmCamera(tmp_path / "cam", swtpm_server.tcti)
    harness = _dock_trusting(tmp_path / "dock", (swtpm_server.ca_root, swtpm_server.ca_issuer))
    try:
        r = cam.provision(*_enrol_args(harness, "cam-tpm-001"))
        assert r.exit_code == 0, r.output
        assert "key held in a TPM, attested by CN=swtpm-localca-rootca" in r.output
        rec = harness.dock.store.get_device("cam-tpm-001")
        assert rec is not None and rec.key_store == "tpm"
        with open_configured_key(cam.cfg()) as key:
            assert rec.key_id == key.key_id
    finally:
        harness.close()


def test_a_dock_that_trusts_no_tpm_maker_refuses_and_the_key_stays(tmp_path, swtpm_server):  # noqa: F811
    cam = TpmCamera(tmp_path / "cam", swtpm_server.tcti)
    harness = _dock_trusting(tmp_path / "dock", ())
    try:
        r = cam.provision(*_enrol_args(harness, "cam-tpm-001"))
        assert r.exit_code == 2, r.output
        assert "--tpm-ca" in r.output and "NOT enrolled" in r.output
        assert "Traceback" not in r.output
        assert harness.dock.store.get_device("cam-tpm-001") is None
        assert cam.key.exists()  # kept: run again once the dock trusts the maker
    finally:
        harness.close()


def test_a_tpm_that_fails_during_enrolment_is_one_line_saying_so():
    from bwv.provision_enrol import enroll_error
    from tpm.connect import TpmUnavailable

    msg = enroll_error(TpmUnavailable("no TPM at /dev/tpmrm0"), "https://dock", True).message
    assert msg == "cannot enrol at https://dock: the TPM failed: no TPM at /dev/tpmrm0"
