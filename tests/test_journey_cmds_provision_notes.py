"""``bwv provision``: the refusals and notes a technician meets off the main path.

Each refusal changes nothing and exits 2 with one line that says what to do; each note is on
stderr and the command still succeeds. (The main path, enrolment and --force's moving aside
are in tests/test_provision.py.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner, Result
from nacl.public import PrivateKey

from bwv.provision_cmd import provision
from crypto.identity import key_id_of


class Camera:
    """A camera's configuration and key files under one temporary directory."""

    def __init__(self, root: Path) -> None:
        self.device_id = "cam-notes-001"
        self.storage = root / "var"
        self.key = self.storage / "keys" / "device.key"
        self.agency_pub = root / "etc" / "agency.pub"
        self.dock_pub = root / "etc" / "dock.pub"
        self.config = root / "bwv.toml"
        self.config.write_text(
            f'device_id = "{self.device_id}"\n'
            f'[storage]\ndir = "{self.storage}"\n'
            f'[keys]\ndevice_key = "{self.key}"\n'
            f'agency_public_key = "{self.agency_pub}"\n'
            f'dock_public_key = "{self.dock_pub}"\n'
        )
        self.agency_file = root / "from-agency.pub"
        self.give_agency_key(PrivateKey.generate())

    def give_agency_key(self, sk: PrivateKey) -> str:
        self.agency_file.write_text(bytes(sk.public_key).hex() + "\n")
        return key_id_of(bytes(sk.public_key))

    def provision(self, *args: str) -> Result:
        return CliRunner().invoke(
            provision,
            ["--config", str(self.config), "--agency-pub", str(self.agency_file), *args],
        )

    def files(self) -> list[str]:
        return sorted(str(p) for p in self.storage.rglob("*")) if self.storage.exists() else []


def test_dock_key_without_a_token_is_a_usage_error_and_makes_nothing(tmp_path):
    cam = Camera(tmp_path)
    r = cam.provision("--dock-key", str(cam.agency_file))
    assert r.exit_code == 2
    assert "--dock-key is only used when enrolling (--token)" in r.output
    assert not cam.key.exists() and not cam.agency_pub.exists()


def test_a_dock_url_that_is_not_http_is_refused(tmp_path):
    cam = Camera(tmp_path)
    r = cam.provision("--dock-url", "ftp://dock.local", "--token", "t0k3n")
    assert r.exit_code == 2
    assert "must start with https://" in r.output
    assert "t0k3n" not in r.output
    assert not cam.key.exists()


def test_an_unusable_dock_key_file_is_refused_before_anything_is_made(tmp_path):
    cam = Camera(tmp_path)
    bad = tmp_path / "dock.pub.given"
    bad.write_text("not a key\n")
    r = cam.provision("--dock-url", "https://127.0.0.1:9", "--token", "t", "--dock-key", str(bad))
    assert r.exit_code == 2
    assert "refusing --dock-key" in r.output
    assert not cam.key.exists() and not cam.agency_pub.exists()


def test_an_unreadable_earlier_key_is_not_enrolled_and_not_replaced(tmp_path):
    cam = Camera(tmp_path)
    cam.key.parent.mkdir(parents=True)
    cam.key.write_text("garbage\n")
    r = cam.provision("--dock-url", "https://127.0.0.1:9", "--token", "t", "--trust-first-dock")
    assert r.exit_code == 2
    assert "cannot use the device key made before" in r.output
    assert "run again with --force" in r.output
    assert cam.key.read_text() == "garbage\n"


def test_an_existing_key_without_its_public_key_is_named_with_an_unknown_key_id(tmp_path):
    cam = Camera(tmp_path)
    assert cam.provision().exit_code == 0
    (cam.key.parent / "device.key.pub").unlink()
    before = cam.files()
    r = cam.provision()
    assert r.exit_code == 2
    assert "already has a device key" in r.output and "key id unknown" in r.output
    assert cam.files() == before


def test_an_agency_key_readable_only_by_its_owner_is_taken_with_a_note(tmp_path):
    cam = Camera(tmp_path)
    cam.agency_file.chmod(0o600)
    r = cam.provision()
    assert r.exit_code == 0, r.output
    assert "readable only by its owner" in r.output and "PUBLIC key" in r.output


def test_a_new_agency_key_says_which_one_it_replaced(tmp_path):
    cam = Camera(tmp_path)
    first = cam.give_agency_key(PrivateKey.generate())
    assert cam.provision().exit_code == 0
    second = cam.give_agency_key(PrivateKey.generate())
    r = cam.provision("--force")
    assert r.exit_code == 0, r.output
    assert f"replaced the agency key pinned before (key id {first})" in r.output
    assert f"agency key id:  {second}" in r.output


def test_force_without_a_token_says_the_pinned_dock_does_not_know_the_new_key(tmp_path):
    cam = Camera(tmp_path)
    assert cam.provision().exit_code == 0
    cam.dock_pub.write_text("11" * 32 + "\n")
    r = cam.provision("--force")
    assert r.exit_code == 0, r.output
    assert "not enrolled (no --token)" in r.output
    assert "still pins a dock, which does not know this new key" in r.output


def test_a_key_directory_under_a_file_is_refused_and_nothing_changes(tmp_path):
    cam = Camera(tmp_path)
    cam.storage.mkdir()
    (cam.storage / "keys").write_text("a file where the key directory should be\n")
    r = cam.provision()
    assert r.exit_code == 2
    assert "nothing was changed" in r.output and "is not a directory" in r.output
    assert not cam.agency_pub.exists()


def test_a_key_made_while_the_daemon_runs_says_to_restart_it(tmp_path):
    cam = Camera(tmp_path)
    cam.storage.mkdir()
    (cam.storage / "status.json").write_text(
        json.dumps({"updated_wall_us": time.time_ns() // 1000, "pid": os.getpid()})
    )
    r = cam.provision()
    assert r.exit_code == 0, r.output
    assert "restart it to use the new keys" in r.output
