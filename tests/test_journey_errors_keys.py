"""Issue 8, point 9: an unusable public key (low-order, all zeros, wrong length) is refused
in one place, crypto.identity.check_public_key, by everything that takes one: provisioning,
the daemon's key loader, selftest and the simulator. Before, only provisioning refused a
low-order agency key; the daemon took it and the first press raised a RuntimeError."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from bwv.selftest.setup_checks import check_keys
from capture.config import from_dict
from capture.evidence_setup import open_evidence
from crypto.identity import (
    ED25519,
    X25519,
    DeviceIdentity,
    IdentityError,
    check_public_key,
    load_agency_public_key,
    load_dock_public_key,
)
from simulator.keys import sim_keys

# the points of order 1, 2, 4 and 8 of Curve25519 (u-coordinates, little-endian), and the
# same ones plus p (non-canonical): everything sealed to them is readable by anyone
X25519_LOW_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]
# Ed25519 points of small order (the identity, order 2, 4, 8)
ED25519_LOW_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
]


@pytest.mark.parametrize("hex_key", X25519_LOW_ORDER)
def test_low_order_x25519_keys_are_refused(hex_key):
    with pytest.raises(IdentityError, match="agency.pub: .*(low-order|all zeros)"):
        check_public_key(bytes.fromhex(hex_key), X25519, "agency.pub")


@pytest.mark.parametrize("hex_key", ED25519_LOW_ORDER)
def test_low_order_ed25519_keys_are_refused(hex_key):
    with pytest.raises(IdentityError, match="dock.pub: not a usable Ed25519"):
        check_public_key(bytes.fromhex(hex_key), ED25519, "dock.pub")


def test_real_keys_pass_and_wrong_lengths_do_not():
    for _ in range(20):
        check_public_key(bytes(PrivateKey.generate().public_key), X25519, "a")
        check_public_key(bytes(SigningKey.generate().verify_key), ED25519, "d")
    for kind in (X25519, ED25519):
        with pytest.raises(IdentityError, match="32 bytes, not 31"):
            check_public_key(bytes(31), kind, "k")


def _camera(tmp_path: Path, agency_hex: str, dock_hex: str | None = None):
    keys = tmp_path / "keys"
    DeviceIdentity.generate(keys / "device.key", "cam-keys-1")
    (keys / "agency.pub").write_text(agency_hex + "\n")
    if dock_hex is not None:
        (keys / "dock.pub").write_text(dock_hex + "\n")
    return from_dict(
        {
            "device_id": "cam-keys-1",
            "storage": {"dir": str(tmp_path / "var")},
            "keys": {
                "device_key": str(keys / "device.key"),
                "agency_public_key": str(keys / "agency.pub"),
                "dock_public_key": str(keys / "dock.pub"),
            },
        }
    )


def test_the_daemon_refuses_to_record_with_a_low_order_agency_key(tmp_path):
    cfg = _camera(tmp_path, X25519_LOW_ORDER[1])
    setup = open_evidence(cfg, "test")
    assert setup.sink is None
    assert "agency.pub: not a usable X25519 public key" in setup.refusal


def test_the_daemon_refuses_a_low_order_dock_key(tmp_path):
    cfg = _camera(tmp_path, bytes(PrivateKey.generate().public_key).hex(), ED25519_LOW_ORDER[0])
    setup = open_evidence(cfg, "test")
    assert setup.sink is None and "dock.pub: not a usable Ed25519" in setup.refusal
    with pytest.raises(IdentityError):
        load_dock_public_key(Path(cfg.keys.dock_public_key))


def test_selftest_fails_the_low_order_agency_key(tmp_path):
    cfg = _camera(tmp_path, X25519_LOW_ORDER[1])
    checks = {c.name: c for c in check_keys(cfg)}
    assert checks["agency key"].status == "FAIL"
    assert "not a usable X25519 public key" in checks["agency key"].detail


def test_provision_refuses_it_with_exit_2(tmp_path):
    from bwv.cli import main

    cfg = tmp_path / "bwv.toml"
    var = tmp_path / "var"
    cfg.write_text(
        f'device_id = "cam-keys-2"\n[storage]\ndir = "{var}"\n[keys]\n'
        f'device_key = "{var}/device.key"\nagency_public_key = "{var}/agency.pub"\n'
        f'dock_public_key = "{var}/dock.pub"\n'
    )
    bad = tmp_path / "small.pub"
    bad.write_text(X25519_LOW_ORDER[1] + "\n")
    r = CliRunner().invoke(main, ["provision", "--config", str(cfg), "--agency-pub", str(bad)])
    assert r.exit_code == 2
    assert "not a usable X25519 public key" in r.output
    assert not (var / "device.key").exists()


def test_the_simulator_refuses_its_own_bad_agency_key_in_one_line(tmp_path):
    keys = tmp_path / "state" / "agency"  # the stand-in agency's, beside the device's keys
    sim_keys(tmp_path / "state", "sim-0001")  # made the first time
    (keys / "agency.pub").write_text(X25519_LOW_ORDER[1] + "\n")
    with pytest.raises(IdentityError) as exc:
        sim_keys(tmp_path / "state", "sim-0001")
    msg = str(exc.value)
    assert "agency.pub: not a usable X25519" in msg and "\n" not in msg
    assert str(keys) in msg  # says where the simulator's keys are
    with pytest.raises(IdentityError):
        load_agency_public_key(keys / "agency.pub")
