"""``bwv provision``: the device key, the pinned agency key, enrolment at a real dock on
loopback, and what is never done (replacing a key without --force, printing key bytes)."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from bwv import provision_cmd
from bwv.provision_cmd import provision
from crypto.identity import DeviceIdentity, key_id_of, load_public_key
from dock.testing import DockHarness


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


class Device:
    """A camera's files under one temporary directory."""

    _n = 0

    def __init__(self, root: Path, dock_url: str = "") -> None:
        Device._n += 1
        self.root = root
        self.device_id = f"cam-prov-{Device._n:03d}-{os.getpid()}"
        self.storage = root / "var"
        self.key = self.storage / "keys" / "device.key"
        self.agency_pub = root / "etc" / "agency.pub"
        self.dock_pub = root / "etc" / "dock.pub"
        self.config = root / "bwv.toml"
        self.config.write_text(
            "\n".join(
                [
                    f'device_id = "{self.device_id}"',
                    "[storage]",
                    f'dir = "{self.storage}"',
                    "[keys]",
                    f'device_key = "{self.key}"',
                    f'agency_public_key = "{self.agency_pub}"',
                    f'dock_public_key = "{self.dock_pub}"',
                    "[dock]",
                    f'url = "{dock_url}"',
                ]
            )
            + "\n"
        )
        self.agency_sk = PrivateKey.generate()
        self.agency_file = root / "from-agency.pub"
        self.agency_file.write_text(bytes(self.agency_sk.public_key).hex() + "\n")

    def provision(self, *args: str, env: dict | None = None, input: str | None = None):
        return CliRunner().invoke(
            provision,
            ["--config", str(self.config), "--agency-pub", str(self.agency_file), *args],
            env=env,
            input=input,
        )


def secrets_of(dev: Device) -> list[str]:
    """Every secret that must never appear in output (hex, as files hold them)."""
    out = [bytes(dev.agency_sk).hex()]
    if dev.key.exists():
        out.append(dev.key.read_text().strip())
    return out


def assert_no_secrets(output: str, dev: Device) -> None:
    for s in secrets_of(dev):
        assert s not in output
    # nor any public key as bytes: only 16-digit key ids
    assert not re.search(r"[0-9a-f]{64}", output), output


def keys_aside(dev: Device) -> list[Path]:
    return sorted(
        p
        for p in dev.key.parent.iterdir()
        if re.fullmatch(r"device\.key\.replaced-\d{8}T\d{6}Z(-\d+)?", p.name)
    )


def test_provision_makes_the_key_and_pins_the_agency_key(tmp_path):
    dev = Device(tmp_path)
    r = dev.provision()
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(dev.key.stat().st_mode) == 0o600
    ident = DeviceIdentity.load(dev.key, dev.device_id)
    assert load_public_key(dev.agency_pub) == bytes(dev.agency_sk.public_key)
    assert dev.agency_pub.read_text() == bytes(dev.agency_sk.public_key).hex() + "\n"
    assert dev.device_id in r.output
    assert ident.key_id in r.output
    assert key_id_of(bytes(dev.agency_sk.public_key)) in r.output
    assert "not enrolled" in r.output
    assert not dev.dock_pub.exists()
    assert_no_secrets(r.output, dev)
    assert not list(dev.agency_pub.parent.glob("*.tmp"))


def test_provisioning_twice_keeps_the_first_key(tmp_path):
    dev = Device(tmp_path)
    assert dev.provision().exit_code == 0
    first = dev.key.read_bytes()
    first_pub = (dev.key.parent / "device.key.pub").read_bytes()
    r = dev.provision()
    assert r.exit_code != 0
    assert "--force" in r.output
    assert "already has a device key" in r.output
    assert dev.key.read_bytes() == first
    assert (dev.key.parent / "device.key.pub").read_bytes() == first_pub
    assert sorted(p.name for p in dev.key.parent.iterdir()) == ["device.key", "device.key.pub"]
    assert_no_secrets(r.output, dev)


def test_force_moves_the_old_key_and_its_footage_aside(tmp_path):
    dev = Device(tmp_path)
    assert dev.provision().exit_code == 0
    old_key, old_pub = dev.key.read_bytes(), (dev.key.parent / "device.key.pub").read_bytes()
    old_id = DeviceIdentity.load(dev.key, dev.device_id).key_id
    seg = dev.storage / "outbox" / "segments"
    seg.mkdir(parents=True)
    (seg / "rec1_0000.bwvseg").write_bytes(b"evidence")
    (dev.storage / "chain_state.json").write_text("{}")

    r = dev.provision("--force")
    assert r.exit_code == 0, r.output
    aside = keys_aside(dev)
    assert len(aside) == 1, list(dev.key.parent.iterdir())
    assert aside[0].read_bytes() == old_key  # never deleted
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    assert Path(str(aside[0]) + ".pub").read_bytes() == old_pub
    new = DeviceIdentity.load(dev.key, dev.device_id)
    assert new.key_id != old_id and dev.key.read_bytes() != old_key
    # the old key's evidence store went aside with it: a new key starts a new chain
    moved = list(dev.storage.glob("outbox.replaced-*"))
    assert len(moved) == 1
    assert (moved[0] / "segments" / "rec1_0000.bwvseg").read_bytes() == b"evidence"
    assert list(dev.storage.glob("chain_state.json.replaced-*"))
    assert not (dev.storage / "outbox").exists()
    assert "1 segment(s) signed by the old key had not shipped" in r.output
    assert_no_secrets(r.output, dev)

    # and again, within the same second: a fresh name, nothing overwritten
    assert dev.provision("--force").exit_code == 0
    assert len(keys_aside(dev)) == 2


def test_force_is_refused_while_the_daemon_runs(tmp_path):
    dev = Device(tmp_path)
    assert dev.provision().exit_code == 0
    first = dev.key.read_bytes()
    (dev.storage / "status.json").write_text(
        json.dumps(
            {"updated_wall_us": time.time_ns() // 1000, "pid": os.getpid(), "state": "buffering"}
        )
    )
    r = dev.provision("--force")
    assert r.exit_code != 0
    assert "systemctl stop bwv" in r.output
    assert dev.key.read_bytes() == first


@pytest.mark.parametrize(
    "content, why",
    [
        ("not a key at all\n", "not a valid"),
        ("00" * 32 + "\n", "all zeros"),
        ("01" + "00" * 31 + "\n", "not a usable X25519"),  # a low-order point: seals nothing
        ("ab" * 31 + "\n", "not a valid"),
    ],
)
def test_an_invalid_agency_key_is_refused_and_nothing_is_made(tmp_path, content, why):
    dev = Device(tmp_path)
    dev.agency_file.write_text(content)
    r = dev.provision()
    assert r.exit_code != 0
    assert why in r.output
    assert not dev.key.exists() and not dev.agency_pub.exists()


def test_enrolment_at_a_real_dock_pins_its_key(tmp_path, harness):
    dev = Device(tmp_path, dock_url=harness.url)
    token = harness.token(dev.device_id)
    r = dev.provision("--token", token)  # --dock-url defaults to dock.url
    assert r.exit_code == 2 and "--trust-first-dock" in r.output  # say which dock to trust
    assert harness.dock.store.get_device(dev.device_id) is None
    r = dev.provision("--token", token, "--trust-first-dock")
    assert r.exit_code == 0, r.output
    assert load_public_key(dev.dock_pub) == harness.public_key
    ident = DeviceIdentity.load(dev.key, dev.device_id)
    rec = harness.dock.store.get_device(dev.device_id)
    assert rec is not None and rec.key_id == ident.key_id
    assert f"dock key id:    {harness.dock.key_id}" in r.output
    assert "TAKEN ON FIRST USE" in r.output
    assert (dev.dock_pub.parent / "dock.pub.first-use").exists()  # for selftest to flag
    assert token not in r.output
    assert_no_secrets(r.output, dev)


def test_enrolment_with_the_dock_key_given_out_of_band(tmp_path, harness):
    dev = Device(tmp_path)
    dock_key_file = tmp_path / "dock-from-technician.pub"
    dock_key_file.write_text(harness.public_key.hex() + "\n")
    r = dev.provision(
        "--dock-url",
        harness.url,
        "--dock-key",
        str(dock_key_file),
        env={"BWV_ENROLL_TOKEN": harness.token(dev.device_id)},
    )
    assert r.exit_code == 0, r.output
    assert "checked against --dock-key" in r.output
    assert load_public_key(dev.dock_pub) == harness.public_key
    assert "set dock.url" in r.output  # the config names no dock: say so


def test_enrolment_against_the_wrong_dock_key_pins_nothing(tmp_path, harness):
    dev = Device(tmp_path, dock_url=harness.url)
    wrong = tmp_path / "wrong.pub"
    wrong.write_text(bytes(SigningKey.generate().verify_key).hex())
    r = dev.provision("--token", harness.token(dev.device_id), "--dock-key", str(wrong))
    assert r.exit_code != 0
    assert "does not hold the key in --dock-key" in r.output
    assert not dev.dock_pub.exists()
    # nothing reached the dock: the TLS handshake was refused first
    assert harness.dock.store.get_device(dev.device_id) is None


def test_a_bad_token_says_what_to_do(tmp_path, harness):
    dev = Device(tmp_path, dock_url=harness.url)
    pin = ("--dock-key", harness.public_key.hex())
    r = dev.provision("--token", "-", *pin, input="bwv-enroll-not-a-real-token\n")
    assert r.exit_code != 0
    assert "refused the enrollment token" in r.output and "ask for a new one" in r.output
    assert "NOT enrolled" in r.output and "no --force needed" in r.output
    assert not dev.dock_pub.exists()
    assert harness.dock.store.get_device(dev.device_id) is None
    # and the advice works: the same command with a good token
    r = dev.provision("--token", harness.token(dev.device_id), *pin)
    assert r.exit_code == 0, r.output
    assert load_public_key(dev.dock_pub) == harness.public_key


def test_an_unreachable_dock(tmp_path):
    dev = Device(tmp_path, dock_url="https://127.0.0.1:9")
    r = dev.provision("--token", "bwv-enroll-x", "--trust-first-dock")
    assert r.exit_code != 0
    assert "cannot enrol at https://127.0.0.1:9" in r.output


def test_a_plain_http_dock_url_is_refused(tmp_path):
    dev = Device(tmp_path, dock_url="https://127.0.0.1:9")
    r = dev.provision("--token", "bwv-enroll-x", "--trust-first-dock")
    assert r.exit_code == 2 and "https://" in r.output


def test_option_mistakes_are_usage_errors(tmp_path):
    dev = Device(tmp_path)
    r = dev.provision("--dock-url", "https://127.0.0.1:9")
    assert r.exit_code == 2 and "--token" in r.output
    r = dev.provision("--token", "t")  # and no dock.url in the configuration
    assert r.exit_code == 2 and "--dock-url" in r.output
    assert not dev.key.exists()


def test_bad_config_names_the_key(tmp_path):
    dev = Device(tmp_path)
    dev.config.write_text('device_id = "bad id!"\n')
    r = dev.provision()
    assert r.exit_code != 0 and "device_id" in r.output


def test_nothing_changes_when_a_key_file_cannot_be_written(tmp_path, monkeypatch):
    dev = Device(tmp_path)
    etc = dev.agency_pub.parent
    etc.mkdir()
    real = os.access
    monkeypatch.setattr(
        provision_cmd.os, "access", lambda p, mode: False if Path(p) == etc else real(p, mode)
    )
    r = dev.provision()
    assert r.exit_code != 0
    assert "nothing was changed" in r.output and str(etc) in r.output
    assert not dev.key.exists()
