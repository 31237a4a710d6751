"""The technician's enrolment journey (issue 8, points 14 and 16): a mistyped token does not
cost the camera its key, the agency makes its key pair with one command, and a token lives as
long whether the CLI or the API made it."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey, SealedBox

from bwv.cli import main
from crypto.identity import DeviceIdentity, load_agency_private_key, load_public_key
from dock.enroll import DEFAULT_TTL_S
from dock.testing import DockHarness


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


def camera(root: Path, device_id: str, dock_url: str) -> tuple[Path, Path]:
    """A camera's configuration and an agency public key file, under ``root``."""
    storage = root / "var"
    cfg = root / "bwv.toml"
    cfg.write_text(
        "\n".join(
            [
                f'device_id = "{device_id}"',
                "[storage]",
                f'dir = "{storage}"',
                "[keys]",
                f'device_key = "{storage / "keys" / "device.key"}"',
                f'agency_public_key = "{root / "etc" / "agency.pub"}"',
                f'dock_public_key = "{root / "etc" / "dock.pub"}"',
                "[dock]",
                f'url = "{dock_url}"',
            ]
        )
        + "\n"
    )
    agency = root / "from-agency.pub"
    agency.write_text(bytes(PrivateKey.generate().public_key).hex() + "\n")
    return cfg, agency


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


# -- point 14: a wrong token keeps the key ---------------------------------------------------


def test_a_mistyped_token_is_retried_with_the_same_key(tmp_path, harness):
    device_id = f"cam-journey-{os.getpid()}"
    cfg, agency = camera(tmp_path, device_id, harness.url)
    keys = tmp_path / "var" / "keys"
    good = harness.token(device_id)

    r = run(
        "provision",
        "--config",
        str(cfg),
        "--agency-pub",
        str(agency),
        "--token",
        good[:-3] + "xyz",
        "--dock-key",
        harness.public_key.hex(),
    )
    assert r.exit_code == 2, r.output  # could not enrol
    # the reason is said once, plainly
    assert "refused the enrollment token: unknown, already used or expired" in r.output
    assert r.output.count("expired") == 1, r.output
    assert "--force" not in r.output.replace("no --force needed", "")
    first = DeviceIdentity.load(keys / "device.key", device_id)

    # the retry with the right token needs no --force, and enrols the key made the first time
    pin = ("--dock-key", harness.public_key.hex())
    r = run("provision", "--config", str(cfg), "--agency-pub", str(agency), "--token", good, *pin)
    assert r.exit_code == 0, r.output
    assert f"keeping this camera's device key (key id {first.key_id})" in r.output
    assert harness.dock.store.get_device(device_id).key_id == first.key_id
    assert load_public_key(tmp_path / "etc" / "dock.pub") == harness.public_key
    # no key was moved aside: nothing but the key and its public key
    assert sorted(p.name for p in keys.iterdir()) == ["device.key", "device.key.pub"]
    assert not [p for p in tmp_path.rglob("*replaced*")]


def test_a_camera_provisioned_without_a_token_is_enrolled_later_with_its_key(tmp_path, harness):
    device_id = f"cam-later-{os.getpid()}"
    cfg, agency = camera(tmp_path, device_id, harness.url)
    r = run("provision", "--config", str(cfg), "--agency-pub", str(agency))
    assert r.exit_code == 0, r.output
    made = DeviceIdentity.load(tmp_path / "var" / "keys" / "device.key", device_id)
    # provisioning again without a token still refuses, and says how to enrol
    r = run("provision", "--config", str(cfg), "--agency-pub", str(agency))
    assert r.exit_code != 0 and "run again with --token (the key is kept)" in r.output
    r = run(
        "provision",
        "--config",
        str(cfg),
        "--agency-pub",
        str(agency),
        "--token",
        harness.token(device_id),
        "--dock-key",
        harness.public_key.hex(),
    )
    assert r.exit_code == 0, r.output
    assert harness.dock.store.get_device(device_id).key_id == made.key_id


def test_a_token_for_another_device_says_so(tmp_path, harness):
    device_id = f"cam-other-{os.getpid()}"
    cfg, agency = camera(tmp_path, device_id, harness.url)
    r = run(
        "provision",
        "--config",
        str(cfg),
        "--agency-pub",
        str(agency),
        "--token",
        harness.token("cam-someone-else"),
        "--dock-key",
        harness.public_key.hex(),
    )
    assert r.exit_code == 2
    assert "refused the enrollment token: it was issued for another device id" in r.output


# -- point 16: the agency's key pair ----------------------------------------------------------


def test_agency_keygen_makes_a_private_key_0600_and_warns_where_it_lives(tmp_path):
    out = tmp_path / "agency"
    r = run("agency", "keygen", "--out", str(out))
    assert r.exit_code == 0, r.output
    key, pub = out / "agency.key", out / "agency.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    sk = load_agency_private_key(key)
    assert load_public_key(pub) == bytes(sk.public_key)
    # the warning: secret, offline, never on a camera or a dock; the secret is not printed
    assert "SECRET AND OFFLINE" in r.output
    assert "never put it on a camera or a dock" in r.output.lower()
    assert bytes(sk).hex() not in r.output
    # what it made works: footage sealed to agency.pub opens with agency.key
    from nacl.public import PublicKey

    sealed = SealedBox(PublicKey(load_public_key(pub))).encrypt(b"footage")
    assert SealedBox(sk).decrypt(sealed) == b"footage"


def test_agency_keygen_never_replaces_a_key(tmp_path):
    out = tmp_path / "agency"
    assert run("agency", "keygen", "--out", str(out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = run("agency", "keygen", "--out", str(out))
    assert r.exit_code == 2
    assert "exists: not replacing an agency key" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a lone agency.pub is not overwritten either
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "agency.pub").write_text("x\n")
    assert run("agency", "keygen", "--out", str(lone)).exit_code == 2
    assert sorted(p.name for p in lone.iterdir()) == ["agency.pub"]


def test_the_agency_public_key_provisions_a_camera(tmp_path):
    out = tmp_path / "agency"
    assert run("agency", "keygen", "--out", str(out)).exit_code == 0
    cfg, _ = camera(tmp_path, "cam-agency-1", "")
    r = run("provision", "--config", str(cfg), "--agency-pub", str(out / "agency.pub"))
    assert r.exit_code == 0, r.output
    assert re.search(r"agency key id:\s+[0-9a-f]{16}", r.output)


# -- point 16: one token lifetime ---------------------------------------------------------------


def test_tokens_from_the_cli_and_the_api_live_equally_long(tmp_path):
    store = tmp_path / "store"
    now = 1_800_000_000_000_000
    h = DockHarness(store, clock=lambda: now)
    try:
        r = httpx.post(
            f"{h.admin_url}/v1/admin/tokens",
            json={"device_id": "cam-ttl-01"},
            headers={"Authorization": f"Bearer {h.dock.admin_token}"},
        )
    finally:
        h.close()
    assert r.status_code == 201, r.text
    api_ttl_us = r.json()["expires_at_us"] - now

    r = run("dock", "token", "--store", str(store), "--device", "cam-ttl-02")
    assert r.exit_code == 0, r.output
    db = sqlite3.connect(store / "index.sqlite3")
    try:
        rows = db.execute("SELECT issued_at_us, expires_at_us FROM tokens").fetchall()
    finally:
        db.close()
    cli_ttls = {exp - issued for issued, exp in rows if issued != now}
    assert cli_ttls == {api_ttl_us} == {DEFAULT_TTL_S * 1_000_000}
