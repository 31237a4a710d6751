"""A camera pins its witnesses at provisioning (``bwv provision --witness-key``), and says
"unwitnessed" in ``bwv status`` and the selftest when it pins none."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from bwv.provision_cmd import provision
from bwv.selftest.setup_checks import check_witnesses
from bwv.status_cmd import status
from capture.config import load
from dock.log_proof import load_policy
from tlog.cosignature import CosignatureSigner


def camera(root: Path, quorum: int = 1) -> Path:
    storage = root / "var"
    cfg = root / "bwv.toml"
    cfg.write_text(
        "\n".join(
            [
                'device_id = "cam-pin-001"',
                "[storage]",
                f'dir = "{storage}"',
                "[keys]",
                f'device_key = "{storage / "keys" / "device.key"}"',
                f'agency_public_key = "{root / "agency.pub"}"',
                f'dock_public_key = "{root / "dock.pub"}"',
                f'witnesses = "{storage / "keys" / "witnesses"}"',
                f"witness_quorum = {quorum}",
                "[dock]",
                'url = "https://dock.invalid:8443"',
            ]
        )
        + "\n"
    )
    (root / "from-agency.pub").write_text(bytes(PrivateKey.generate().public_key).hex() + "\n")
    return cfg


def run_provision(root: Path, cfg: Path, *args: str):
    return CliRunner().invoke(
        provision,
        ["--config", str(cfg), "--agency-pub", str(root / "from-agency.pub"), *args],
    )


def vkey(name: str) -> str:
    while True:  # a vkey whose base64 holds a "+" too, now and then: both must work
        v = CosignatureSigner(name, SigningKey.generate()).vkey
        if "+" in v.split("+", 2)[2] or name.endswith("plain"):
            return v


def test_provision_pins_witness_keys_given_and_from_a_file(tmp_path):
    cfg = camera(tmp_path, quorum=2)
    a, b = vkey("watchdog.example/a"), vkey("court.example/plain")
    listed = tmp_path / "witnesses.txt"
    listed.write_text(f"# the court's witness\n{b}\n")
    r = run_provision(tmp_path, cfg, "--witness-key", a, "--witness-key", str(listed))
    assert r.exit_code == 0, r.output
    assert "watchdog.example/a, court.example/plain" in r.output
    c = load(cfg)
    policy = load_policy(Path(c.keys.witnesses), c.keys.witness_quorum)
    assert policy.vkeys == (a, b) and policy.quorum == 2
    assert "a delete waits for 2" in check_witnesses(c).detail


def test_provision_refuses_a_key_that_is_not_a_witness_key_and_changes_nothing(tmp_path):
    cfg = camera(tmp_path)
    note_key = vkey("x").replace("+", "-", 1)  # not a vkey at all
    r = run_provision(tmp_path, cfg, "--witness-key", note_key)
    assert r.exit_code == 2 and "--witness-key" in r.output
    assert not (tmp_path / "var" / "keys").exists()
    r = run_provision(tmp_path, camera(tmp_path, quorum=3), "--witness-key", vkey("one"))
    assert r.exit_code == 2 and "quorum" in r.output


def test_a_camera_pinning_no_witness_says_unwitnessed(tmp_path):
    cfg = camera(tmp_path)
    r = run_provision(tmp_path, cfg)
    assert r.exit_code == 0, r.output
    assert "unwitnessed" in r.output
    c = load(cfg)
    check = check_witnesses(c)
    assert check.status == "PASS" and "unwitnessed" in check.detail
    out = CliRunner().invoke(status, ["--config", str(cfg)])
    assert "witnesses:    none pinned: unwitnessed" in out.output
    data = json.loads(CliRunner().invoke(status, ["--config", str(cfg), "--json"]).output)
    assert data["witnesses"]["unwitnessed"] is True


def test_status_names_the_pinned_witnesses(tmp_path):
    cfg = camera(tmp_path)
    run_provision(tmp_path, cfg, "--witness-key", vkey("watchdog.example/a"))
    out = CliRunner().invoke(status, ["--config", str(cfg)]).output
    assert "witnesses:    watchdog.example/a (a delete waits for 1 cosignature(s))" in out
