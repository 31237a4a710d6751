"""A device that cannot make trustworthy evidence refuses to record, and says why, loudly;
no key material ever shows in what the device tells anyone."""

from __future__ import annotations

import json
import logging
import stat

import pytest
from nacl.public import PrivateKey

from capture.clock import VirtualClock
from capture.config import from_dict
from capture.device import DeviceCore, controls_config
from capture.evidence_setup import open_evidence
from crypto.identity import DeviceIdentity, write_secret_key
from gpio.controls import OfficerControls
from gpio.sim import SimPinBackend
from simulator.raid import RaidPlan, run_raid
from tests.conftest import SMALL


def _cfg(tmp_path, **keys):
    paths = {
        "device_key": str(tmp_path / "keys" / "device.key"),
        "agency_public_key": str(tmp_path / "agency.pub"),
        "dock_public_key": str(tmp_path / "dock.pub"),
    }
    paths.update(keys)
    return from_dict({**SMALL, "storage": {"dir": str(tmp_path / "state")}, "keys": paths})


def _refusing_device(cfg, refusal):
    clock = VirtualClock()
    pins = SimPinBackend(clock)
    controls = OfficerControls(pins, controls_config(cfg))
    return DeviceCore(None, controls, refusal=refusal), pins


def test_device_without_a_key_refuses_to_record_and_says_why(tmp_path, caplog):
    cfg = _cfg(tmp_path)
    setup = open_evidence(cfg, "test")
    assert setup.sink is None and "run `bwv provision`" in setup.refusal
    with caplog.at_level(logging.ERROR):
        core, pins = _refusing_device(cfg, setup.refusal)
    assert "no device key" in caplog.text  # the log says it
    status = core.status()
    assert status["state"] == "refusing" and any("no device key" in f for f in status["faults"])
    assert "fault" in core.controls.indicator().red  # the officer sees the fault pattern
    # a press is refused, not silently swallowed
    pins.drive(cfg.pins.button, False, 100_000)
    with caplog.at_level(logging.ERROR):
        core.tick(300_000)
    assert "refused" in caplog.text


@pytest.mark.parametrize("what", ["agency", "dock"])
def test_unreadable_pinned_keys_refuse_recording(tmp_path, what):
    cfg = _cfg(tmp_path)
    DeviceIdentity.generate(tmp_path / "keys" / "device.key", cfg.device_id)
    (tmp_path / "agency.pub").write_text(bytes(PrivateKey.generate().public_key).hex())
    (tmp_path / f"{what}.pub").write_text("not a key\n")
    setup = open_evidence(cfg, "test")
    assert setup.sink is None
    assert f"{what}.pub" in setup.refusal


def test_provisioned_device_opens_its_evidence_sink(tmp_path):
    cfg = _cfg(tmp_path)
    DeviceIdentity.generate(tmp_path / "keys" / "device.key", cfg.device_id)
    (tmp_path / "agency.pub").write_text(bytes(PrivateKey.generate().public_key).hex())
    setup = open_evidence(cfg, "test")
    assert setup.refusal is None and setup.sink is not None
    assert setup.warnings and "cannot ship" in setup.warnings[0]  # no dock pinned yet


def test_key_files_are_0600_and_key_material_never_shows(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = from_dict({**SMALL})
    result = run_raid(cfg, tmp_path, RaidPlan(record_s=1.0))
    assert result.ok, result.problems
    files = [tmp_path / "device" / "keys" / "device.key", tmp_path / "agency" / "agency.key"]
    for secret in files:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    secrets = [p.read_text().strip() for p in files]
    summary = (tmp_path / "summary.json").read_text()
    shown = summary + caplog.text + repr(json.loads(summary))
    for secret in secrets:
        assert secret not in shown and secret.upper() not in shown


def test_secret_keys_are_written_0600(tmp_path):
    write_secret_key(tmp_path / "k", b"\x01" * 32)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
