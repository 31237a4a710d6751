"""``bwv status``: the daemon's status file and the facts on the disk, as a technician reads
them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bwv.status_cmd import collect_status, status
from capture.config import load
from crypto.durable import write_atomic
from crypto.identity import DeviceIdentity


def write_config(tmp: Path, storage_extra: str = "", **extra: str) -> Path:
    storage = tmp / "var"
    storage.mkdir(exist_ok=True)
    lines = [
        'device_id = "cam-status-01"',
        "[storage]",
        f'dir = "{storage}"',
        storage_extra,
        "[keys]",
        f'device_key = "{tmp / "keys" / "device.key"}"',
        f'agency_public_key = "{tmp / "agency.pub"}"',
        f'dock_public_key = "{tmp / "dock.pub"}"',
    ]
    for section, body in extra.items():
        lines += [f"[{section}]", body]
    path = tmp / "bwv.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def provision_keys(tmp: Path) -> None:
    DeviceIdentity.generate(tmp / "keys" / "device.key", "cam-status-01")
    (tmp / "agency.pub").write_text("11" * 32 + "\n")


def write_status(storage: Path, *, age_s: float = 0.5, pid: int | None = None, **fields) -> None:
    st = {
        "updated_wall_us": time.time_ns() // 1000 - int(age_s * 1e6),
        "pid": os.getpid() if pid is None else pid,
        "state": "buffering",
        "recording": None,
        "faults": [],
        "warnings": [],
        "stealth": False,
        "indicator": "LED red: off, green: blink-slow, haptic: idle",
        "frames_delivered": 1234,
        "camera_dropped_frames": 2,
        "shipper": {"docked": True, "shipped": 7, "last_error": None},
    }
    st.update(fields)
    write_atomic(storage / "status.json", json.dumps(st).encode(), mode=0o640)


def add_outbox(storage: Path) -> None:
    seg = storage / "outbox" / "segments"
    seg.mkdir(parents=True)
    (seg / "rec-a_0000.bwvseg").write_bytes(b"x" * 1000)
    (seg / "rec-a_0001.bwvseg").write_bytes(b"x" * 2000)
    (seg / "rec-b_0000.bwvseg").write_bytes(b"x" * 500)
    (seg / "rec-c_0000.bwvseg.partial").write_bytes(b"x" * 300)
    (seg / "rec-a_0000.bwvseg.unsigned").write_bytes(b"x" * 10)  # set aside: not counted
    receipts = storage / "receipts"
    receipts.mkdir()
    for i, mtime in enumerate((1_700_000_000, 1_750_000_000, 1_720_000_000)):
        r = receipts / f"{i:064x}.json"
        r.write_text("{}")
        os.utime(r, (mtime, mtime))


def run(cfg_path: Path, *args: str):
    return CliRunner().invoke(status, ["--config", str(cfg_path), *args])


def test_running_daemon_with_footage_waiting(tmp_path):
    cfg_path = write_config(tmp_path, dock='url = "https://dock.local:8443"')
    provision_keys(tmp_path)
    (tmp_path / "dock.pub").write_text("22" * 32 + "\n")
    storage = tmp_path / "var"
    add_outbox(storage)
    write_status(storage, state="recording", recording="rec-c", warnings=["dock: not shipping yet"])
    r = run(cfg_path)
    assert r.exit_code == 0, r.output
    out = r.output
    assert "daemon:       running" in out and "state recording" in out
    assert "rec-c IN PROGRESS" in out
    assert "3 segments (3.5 kB) of 3 recordings; 1 being written (300 B)" in out
    assert "docked, 7 shipped" in out
    assert "2025-06-15" in out  # the newest receipt: 1_750_000_000
    assert "dock: not shipping yet" in out
    assert "faults:       none" in out

    rj = run(cfg_path, "--json")
    assert rj.exit_code == 0
    rep = json.loads(rj.output)
    assert rep["ok"] is True
    assert rep["outbox"] == {
        "segments": 3,
        "bytes": 3500,
        "recordings": 3,
        "partial": 1,
        "partial_bytes": 300,
        "error": None,
    }
    assert rep["last_upload"]["at_wall_us"] == 1_750_000_000 * 1_000_000
    assert rep["last_upload"]["receipts"] == 3
    assert rep["daemon"]["state"] == "recording" and rep["daemon"]["recording"] == "rec-c"
    assert rep["storage"]["free_bytes"] > 0
    assert rep["keys"]["device"]["key_id"] and rep["keys"]["dock"]["present"]


def test_faults_from_the_daemon_exit_1(tmp_path):
    cfg_path = write_config(tmp_path)
    provision_keys(tmp_path)
    write_status(tmp_path / "var", state="fault", faults=["camera: no frames for 5 s"])
    r = run(cfg_path)
    assert r.exit_code == 1
    assert "  - camera: no frames for 5 s" in r.output


@pytest.mark.parametrize("case", ["missing", "stale", "dead-pid", "garbage"])
def test_daemon_not_running_still_reports_the_disk(tmp_path, case):
    cfg_path = write_config(tmp_path)
    provision_keys(tmp_path)
    storage = tmp_path / "var"
    add_outbox(storage)
    if case == "stale":
        write_status(storage, age_s=42, faults=["camera: gone"])
    elif case == "dead-pid":
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        write_status(storage, pid=p.pid)
    elif case == "garbage":
        (storage / "status.json").write_text("{not json")
    r = run(cfg_path)
    assert r.exit_code == 1, r.output
    assert "daemon:       NOT RUNNING" in r.output
    assert "3 segments (3.5 kB) of 3 recordings" in r.output  # the disk still speaks
    assert "last upload:  2025-06-15" in r.output
    if case == "stale":
        assert "last status 42" in r.output
        assert "camera: gone" in r.output and "(stale)" in r.output
    if case == "missing":
        assert "no status file" in r.output
    rep = json.loads(run(cfg_path, "--json").output)
    assert rep["daemon"]["running"] is False and rep["ok"] is False
    assert rep["daemon"]["state"] is None and rep["daemon"]["recording"] is None


def test_nothing_provisioned_nothing_shipped(tmp_path):
    cfg_path = write_config(tmp_path)
    r = run(cfg_path)
    assert r.exit_code == 1
    assert "last upload:  never" in r.output
    assert "0 segments (0 B) of 0 recordings" in r.output
    assert "no device key at" in r.output and "bwv provision" in r.output
    assert "device MISSING" in r.output


def test_low_space_is_a_warning(tmp_path):
    # a threshold no disk meets: 10 000 minutes at the maximum bitrate
    cfg_path = write_config(tmp_path, "low_space_minutes = 100000.0", video="bitrate = 50000000")
    provision_keys(tmp_path)
    write_status(tmp_path / "var")
    rep = json.loads(run(cfg_path, "--json").output)
    assert rep["storage"]["low"] is True
    assert any(w.startswith("storage low") for w in rep["warnings"])
    assert rep["ok"] is True  # a warning, not a fault


def test_bad_config_names_the_key(tmp_path):
    p = tmp_path / "bwv.toml"
    p.write_text("[pre_record]\nseconds = -5\n")
    r = run(p)
    assert r.exit_code != 0
    assert "pre_record.seconds" in r.output


def test_collect_status_treats_a_status_from_the_future_as_stale(tmp_path):
    cfg_path = write_config(tmp_path)
    write_status(tmp_path / "var", age_s=-60)
    rep = collect_status(load(cfg_path))
    assert rep["daemon"]["running"] is False
    assert "in the future" in rep["daemon"]["detail"]
