"""`bwv sim raid --dock-store s3`: the whole raid with its dock's store on S3 Object Lock
(Ceph's RADOS Gateway) and a PostgreSQL index, as README's "Many docks" runs it; then
`bwv verify` of the raid's folder reads the dock's copies back from those servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _bwv(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bwv.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_a_raid_whose_dock_keeps_its_store_on_s3_and_postgresql_verifies(
    s3_service: Any, pg_server_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, **s3_service.env(), "BWV_PG_URL": pg_server_url, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "raid"
    raid = _bwv(
        ["sim", "raid", "--dock-store", "s3", "--out", str(out), "--pre-record", "2",
         "--record", "4"],
        env,
    )  # fmt: skip
    assert raid.returncode == 0, raid.stdout + raid.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] is True
    bucket = summary["dock"]["objects"].removeprefix("s3://")
    assert summary["dock"]["index"].startswith(pg_server_url.rsplit("/", 1)[0])
    # the footage is in the bucket, locked; not in the dock's folder
    assert not (out / "dock" / "objects").exists()
    assert not (out / "dock" / "index.sqlite3").exists()
    s3 = s3_service.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    blobs = [k for k in keys if k.endswith(".blob")]
    assert blobs and all(k.startswith("sim-0001/") for k in keys)
    head = s3.head_object(Bucket=bucket, Key=blobs[0])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    # an investigator's check reads the dock's copies back through the store's dock.toml
    verified = _bwv(["verify", str(out)], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ALL VERIFIED" in verified.stdout
    status = _bwv(["dock", "status", "--store", str(out / "dock")], env)
    assert f"objects in s3://{bucket}" in status.stdout
    # without the S3 keys the dock's copies cannot be read: said in one line, exit 2
    keyless = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    unread = _bwv(["verify", str(out)], keyless)
    assert unread.returncode == 2, unread.stdout + unread.stderr
    assert "the dock's store cannot be read" in unread.stderr
    assert "a bug in bwv" not in unread.stderr and "Traceback" not in unread.stderr


def test_without_the_servers_the_raid_says_how_to_start_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BWV_", "AWS_", "PG"))} | {
        "PYTHONPATH": str(ROOT)
    }
    got = _bwv(["sim", "raid", "--dock-store", "s3", "--out", str(tmp_path / "r")], env)
    assert got.returncode == 2
    assert "scripts/fleet-services.sh up" in got.stderr
    assert "Traceback" not in got.stderr
