"""``bwv dock``: a camera's real recording shipped to a dock over loopback, then the
technician's and the investigator's commands on the dock's store: status, export (playable
MP4, verified), tokens, revocation, serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from base.formats import VideoFormat
from bwv.dock_cmd import dock
from capture.clock import OffsetWallClock, VirtualClock
from capture.segment_writer import SegmentWriter
from crypto import testing as ct
from crypto.digests import stored_digest_of
from crypto.identity import DeviceIdentity, write_secret_key
from dock.client import DeviceCredentials, DockClient, DockRefused, enroll
from dock.export import ExportError, export_recording
from dock.shipper import ChainOutbox, Shipper
from dock.testing import DockHarness
from dock.tls import pinned_to
from simulator.encoder import H264Encoder
from tests.conftest import ffprobe_streams

DEVICE = "cam-cli-01"
FPS = 10
FRAMES = 25  # 2.5 s at 10 fps, a keyframe every second: segments of 10, 10 and 5 frames


def _wall() -> int:
    return time.time_ns() // 1000


def _record_real(sink, recording_id: str) -> None:
    """A tiny real recording: libx264 packets through the segment writer into the sink."""
    fmt = VideoFormat(128, 96, FPS)
    enc = H264Encoder(fmt, 200_000, gop=FPS)
    writer = SegmentWriter(
        sink=sink,
        recording_id=recording_id,
        video=fmt,
        audio=None,
        segment_us=1_000_000,
        wall=OffsetWallClock(ct.WALL0),
        trigger={"press_us": 0, "pre_record_start_us": 0, "press_frame": 0},
    )
    for i in range(FRAMES):
        y = np.full((96 * 3 // 2, 128), 16 + 8 * i, dtype=np.uint8)
        for p in enc.encode(y, i * 1_000_000 // FPS, i):
            writer.write(p)
    for p in enc.flush():
        writer.write(p)
    writer.finish("stopped")


@pytest.fixture(scope="module")
def docked(tmp_path_factory):
    """A dock (real server on loopback) holding three recordings of one camera: ``real``
    (H.264, 3 segments, stopped), ``synth`` (synthetic blobs, 2 segments, stopped) and
    ``cut`` (one segment, no end record: still recording)."""
    root = tmp_path_factory.mktemp("dockcli")
    store = root / "store"
    harness = DockHarness(store)
    ident, agency = ct.device_identity(DEVICE), ct.agency_key()
    sink = ct.make_sink(root / "dev", ident, agency)
    _record_real(sink, "real")
    synth = ct.write_recording(sink, "synth", 2, 2)
    cut = ct.Written("cut")
    ct.write_segment(sink, cut, 0, 1)
    sink.trail.close()
    got = enroll(
        harness.url,
        DEVICE,
        ident,
        ident.public_key,
        harness.token(DEVICE),
        wall_clock=_wall,
        expected_dock_key=harness.public_key,
    )
    creds = DeviceCredentials(DEVICE, ident, got.dock_public_key)
    with DockClient(harness.url, creds, wall_clock=_wall) as client:
        reports = Shipper(ChainOutbox(root / "dev" / "outbox"), client, VirtualClock()).drain()
    assert [r.action for r in reports].count("shipped") == 3 + 1 + 2 + 1 + 1, reports
    agency_file = root / "agency.key"
    write_secret_key(agency_file, bytes(agency))
    yield {
        "root": root,
        "store": store,
        "harness": harness,
        "agency": agency,
        "agency_file": agency_file,
        "synth": synth,
        "ident": ident,
    }
    harness.close()


def run(*args: str | Path):
    return CliRunner().invoke(dock, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------- status


def test_status_lists_the_camera_and_its_recordings(docked):
    res = run("status", "--store", docked["store"])
    assert res.exit_code == 0, res.output
    out = res.output
    dev_line = next(line for line in out.splitlines() if line.strip().startswith(DEVICE))
    assert docked["ident"].key_id in dev_line and "enrolled" in dev_line
    assert "whole (0..7)" in dev_line  # 8 chain records, no gap
    rows = {
        line.split()[0]: line
        for line in out.splitlines()[1:]
        if line.strip() and line.split()[0] in ("real", "synth", "cut")
    }
    assert " verified" in rows["real"] and " verified" in rows["synth"]
    assert "incomplete" in rows["cut"]

    data = json.loads(run("status", "--store", docked["store"], "--json").output)
    (d,) = data["devices"]
    assert d["device_id"] == DEVICE and d["state"] == "enrolled"
    assert d["segments_held"] == 6 and d["records_held"] == 8
    assert d["chain"]["gaps"] == [] and d["chain"]["breaks"] == []
    assert d["time_offset_us"] is not None  # the shipper synced time first
    recs = {r["recording_id"]: r for r in data["recordings"]}
    assert {k: (v["state"], v["segments"]) for k, v in recs.items()} == {
        "real": ("verified", 3),
        "synth": ("verified", 2),
        "cut": ("incomplete", 1),
    }
    assert all(r["device_id"] == DEVICE for r in recs.values())


def test_status_verify_rechecks_the_stored_bytes(docked):
    data = json.loads(run("status", "--store", docked["store"], "--json", "--verify").output)
    states = {r["recording_id"]: (r["state"], r["reverified"]) for r in data["recordings"]}
    assert states == {
        "real": ("verified", True),
        "synth": ("verified", True),
        "cut": ("incomplete", True),
    }


def test_status_of_a_missing_store_fails_without_making_one(tmp_path):
    res = run("status", "--store", tmp_path / "nowhere")
    assert res.exit_code == 2
    assert "not a dock store" in res.output
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- export


def test_export_with_the_agency_key_gives_playable_verified_mp4(docked, tmp_path):
    out = tmp_path / "handover"
    res = run(
        "export",
        "--store",
        docked["store"],
        "real",
        "--out",
        out,
        "--agency-key",
        docked["agency_file"],
    )
    assert res.exit_code == 0, res.output
    assert "VERIFIED" in res.output
    mp4s = sorted(out.glob("*.mp4"))
    assert [p.name for p in mp4s] == ["real_0000.mp4", "real_0001.mp4", "real_0002.mp4"]
    frames = 0
    for p in mp4s:
        assert [s["codec_name"] for s in ffprobe_streams(p)] == ["h264"]
        with av.open(str(p)) as c:
            frames += sum(1 for _ in c.decode(video=0))
    assert frames == FRAMES
    assert sorted(p.name for p in (out / "manifests").iterdir()) == [
        f"{s:012d}.{t}.json"
        for s, t in [(0, "manifest"), (1, "manifest"), (2, "manifest"), (3, "end")]
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["findings"] == []
    assert [s["decrypted"] for s in report["segments"]] == [True] * 3
    assert [r["status"] for r in report["recordings"]] == ["complete"]
    assert "[3/3]" in res.output  # per-segment progress
    secret = bytes(docked["agency"]).hex()
    assert secret not in res.output
    assert oct(os.stat(mp4s[0]).st_mode & 0o777) == "0o600"


def test_export_recording_api_gives_the_plaintext_the_camera_wrote(docked, tmp_path):
    lines: list[str] = []
    res = export_recording(docked["store"], "synth", tmp_path / "o", docked["agency"], lines.append)
    assert res.ok and res.recording_id == "synth" and res.device_id == DEVICE
    written = docked["synth"]
    assert [p.read_bytes() for p in res.segments] == [b"".join(written.blobs[i]) for i in range(2)]
    # the dock's own stored copies, inside its store, as the manifests sign them
    assert all(p.is_relative_to(docked["store"]) for p in res.stored)
    signed = [json.loads(p.read_bytes())["record"] for p in res.manifests]
    assert [stored_digest_of(p.read_bytes()) for p in res.stored] == [
        r["stored_digest"] for r in signed if r["type"] == "manifest"
    ]
    assert res.report["ok"] is True and res.report_path == tmp_path / "o" / "report.json"
    assert sum("read segment" in m for m in lines) == 2
    assert sum("decrypted to" in m for m in lines) == 2


def test_export_without_the_agency_key_gives_the_encrypted_segments(docked, tmp_path):
    out = tmp_path / "enc"
    res = run("export", "--store", docked["store"], "synth", "--out", out, "-q")
    assert res.exit_code == 0, res.output
    assert "NOT decrypted" in res.output
    assert not list(out.glob("*.mp4"))
    segs = sorted((out / "segments").iterdir())
    assert [p.name for p in segs] == ["synth_0000.bwvseg", "synth_0001.bwvseg"]
    assert all(p.read_bytes().startswith(b"BWVSEG") for p in segs)
    assert json.loads((out / "report.json").read_text())["ok"] is True
    api = export_recording(docked["store"], "synth", tmp_path / "api", None)
    assert api.ok and api.segments == [] and len(api.stored) == 2 and len(api.encrypted) == 2


def test_export_of_a_recording_without_its_end_exits_1(docked, tmp_path):
    res = run(
        "export",
        "--store",
        docked["store"],
        "cut",
        "--out",
        tmp_path / "cut",
        "--agency-key",
        docked["agency_file"],
    )
    assert res.exit_code == 1
    assert "NOT VERIFIED" in res.output and "cut_short" in res.output
    assert (tmp_path / "cut" / "cut_0000.mp4").exists()  # what there is, is still handed over


def test_export_with_the_wrong_agency_key_exits_1(docked, tmp_path):
    wrong = tmp_path / "wrong.key"
    write_secret_key(wrong, bytes(ct.agency_key("another agency")))
    res = run(
        "export",
        "--store",
        docked["store"],
        "synth",
        "--out",
        tmp_path / "w",
        "--agency-key",
        wrong,
    )
    assert res.exit_code == 1
    assert "does not open with this key" in res.output
    assert not list((tmp_path / "w").glob("*.mp4"))


@pytest.mark.parametrize(
    "rec_id", ["../store", "..", "a/b", "/etc/passwd", "real.mp4", "real ", "", "x" * 65, "réal"]
)
def test_export_refuses_what_is_not_a_recording_id(docked, tmp_path, rec_id):
    res = run("export", "--store", docked["store"], rec_id, "--out", tmp_path / "x")
    assert res.exit_code == 2
    assert "not a recording id" in res.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="not a recording id"):
        export_recording(docked["store"], rec_id, tmp_path / "x", None)


def test_export_errors_are_clear(docked, tmp_path):
    res = run("export", "--store", docked["store"], "nosuchrec", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "holds no recording 'nosuchrec'" in res.output
    res = run("export", "--store", tmp_path / "nostore", "real", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "not a dock store" in res.output
    res = run(
        "export", "--store", docked["store"], "real", "--out", docked["store"] / "objects" / "x"
    )
    assert res.exit_code == 2 and "inside the dock store" in res.output
    loose = tmp_path / "loose.key"
    loose.write_text(bytes(docked["agency"]).hex() + "\n")
    loose.chmod(0o644)
    res = run(
        "export", "--store", docked["store"], "real", "--out", tmp_path / "x", "--agency-key", loose
    )
    assert res.exit_code == 2 and "agency key" in res.output and "chmod 600" in res.output
    assert bytes(docked["agency"]).hex() not in res.output
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- token, revoke


def _enroll(harness: DockHarness, device_id: str, token: str) -> None:
    ident = DeviceIdentity.from_seed(device_id, ct.seed(device_id + token[-4:]))
    enroll(
        harness.url,
        device_id,
        ident,
        ident.public_key,
        token,
        wall_clock=_wall,
        expected_dock_key=harness.public_key,
    )


def test_token_is_shown_once_and_enrols_once(docked):
    res = run("token", "--store", docked["store"], "--device", "cam-new-02", "--ttl", "600")
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert token.startswith("bwv-enroll-") and "\n" not in token
    assert res.output.count(token) == 1
    assert "cam-new-02" in res.stderr and "shown only now" in res.stderr
    # the dock keeps its hash only
    for p in docked["store"].rglob("*"):
        if p.is_file():
            assert token.encode() not in p.read_bytes(), p
    with pytest.raises(DockRefused) as other:
        _enroll(docked["harness"], "cam-other-03", token)
    assert other.value.status == 403  # issued for another device
    _enroll(docked["harness"], "cam-new-02", token)
    with pytest.raises(DockRefused) as again:
        _enroll(docked["harness"], "cam-new-02", token)
    assert again.value.status == 401 and "used" in again.value.detail
    res = run("token", "--store", docked["store"], "--device", "cam-new-02")
    assert res.exit_code == 2 and "already enrolled" in res.output


def test_token_refuses_bad_arguments(docked, tmp_path):
    assert run("token", "--store", docked["store"], "--device", "../x").exit_code == 2
    assert (
        run("token", "--store", docked["store"], "--device", "cam-x", "--ttl", "0").exit_code == 2
    )
    # a token is always bound to one device id (issue 12)
    res = run("token", "--store", docked["store"])
    assert res.exit_code == 2 and "--device" in res.output
    res = run("token", "--store", tmp_path / "none", "--device", "cam-x")
    assert res.exit_code == 2 and "not a dock store" in res.output


def test_revoke_then_status_shows_it_and_the_dock_refuses_the_camera(docked):
    token = run("token", "--store", docked["store"], "--device", "cam-lost-04").stdout.strip()
    ident = DeviceIdentity.from_seed("cam-lost-04", ct.seed("cam-lost-04"))
    got = enroll(
        docked["harness"].url,
        "cam-lost-04",
        ident,
        ident.public_key,
        token,
        wall_clock=_wall,
        expected_dock_key=docked["harness"].public_key,
    )
    res = run("revoke", "--store", docked["store"], "cam-lost-04", "--reason", "reported lost")
    assert res.exit_code == 0 and "revoked" in res.output
    line = next(
        x
        for x in run("status", "--store", docked["store"]).output.splitlines()
        if "cam-lost-04" in x
    )
    assert "REVOKED" in line and "reported lost" in line
    data = json.loads(run("status", "--store", docked["store"], "--json").output)
    lost = next(d for d in data["devices"] if d["device_id"] == "cam-lost-04")
    assert lost["state"] == "revoked" and lost["revoke_reason"] == "reported lost"
    creds = DeviceCredentials("cam-lost-04", ident, got.dock_public_key)
    with (
        DockClient(docked["harness"].url, creds, wall_clock=_wall) as client,
        pytest.raises(DockRefused) as refused,
    ):
        client.status()
    assert refused.value.status == 403
    again = run("revoke", "--store", docked["store"], "cam-lost-04", "--reason", "x")
    assert again.exit_code == 0 and "already revoked" in again.output
    unknown = run("revoke", "--store", docked["store"], "cam-nobody", "--reason", "x")
    assert unknown.exit_code == 2 and "no device 'cam-nobody'" in unknown.output
    assert run("revoke", "--store", docked["store"], "cam-lost-04").exit_code == 2  # no reason


# --------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_says_where_the_keys_are_and_never_shows_them(tmp_path):
    store = tmp_path / "store"
    port = _free_port()
    code = "import sys; from bwv.dock_cmd import dock; sys.exit(dock())"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--store",
            str(store),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        lines = []
        while not any(x.startswith("listening on") for x in lines):
            line = proc.stdout.readline()
            assert line, "serve exited: " + "".join(lines)
            lines.append(line)
        deadline = time.monotonic() + 15
        while True:
            try:
                pinned = pinned_to(bytes.fromhex((store / "dock.pub").read_text().strip()))
                url = f"https://127.0.0.1:{port}/v1/dock"
                info = httpx.get(url, timeout=2, verify=pinned).json()
                break
            except (httpx.TransportError, OSError, ValueError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
    out = "".join(lines) + rest
    assert info["dock_key_id"] in out
    assert str((store / "dock.pub").resolve()) in out
    assert str((store / "admin.token").resolve()) in out
    assert (store / "dock.pub").read_text().strip() == info["dock_public_key"]
    assert info["dock_public_key"] not in out
    assert (store / "admin.token").read_text().strip() not in out
    assert (store / "dock.key").read_text().strip() not in out
    assert oct(store.stat().st_mode & 0o777) == "0o700"


def test_serve_refuses_a_bad_listen_address(tmp_path):
    res = run("serve", "--store", tmp_path / "s", "--listen", "localhost")
    assert res.exit_code == 2 and "HOST:PORT" in res.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = run(
            "serve", "--store", tmp_path / "s", "--listen", f"127.0.0.1:{busy.getsockname()[1]}"
        )
    assert res.exit_code == 2 and "cannot listen" in res.output


def test_help_tells_a_technician_what_to_do():
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("serve", "token", "status", "export", "revoke"):
        assert f"bwv dock {cmd}" in res.output
    assert "verified" in run("status", "--help").output


# --------------------------------------------------------------------------- gaps, tampering


def test_a_gap_and_a_tampered_object_are_reported_not_hidden(tmp_path):
    harness = DockHarness(tmp_path / "store")
    try:
        ident, agency = ct.device_identity("cam-gap-05"), ct.agency_key()
        sink = ct.make_sink(tmp_path / "dev", ident, agency)
        ct.write_recording(sink, "whole", 1, 1)  # chain records 0, 1
        ct.write_recording(sink, "holed", 3, 1)  # chain records 2, 3, 4 and the end, 5
        sink.trail.close()
        outbox = tmp_path / "dev" / "outbox"
        (outbox / "chain" / "000000000003.manifest.json").unlink()  # lost on the camera
        (outbox / "segments" / "holed_0001.bwvseg").unlink()
        got = enroll(
            harness.url,
            ident.device_id,
            ident,
            ident.public_key,
            harness.token(ident.device_id),
            wall_clock=_wall,
            expected_dock_key=harness.public_key,
        )
        creds = DeviceCredentials(ident.device_id, ident, got.dock_public_key)
        with DockClient(harness.url, creds, wall_clock=_wall) as client:
            Shipper(ChainOutbox(outbox), client, VirtualClock()).drain()
    finally:
        harness.close()
    store = tmp_path / "store"
    data = json.loads(run("status", "--store", store, "--json").output)
    assert data["devices"][0]["chain"]["gaps"] == [{"from_seq": 3, "to_seq": 3}]
    states = {r["recording_id"]: r for r in data["recordings"]}
    assert states["whole"]["state"] == "verified"
    assert states["holed"]["state"] == "gap"
    assert "segment 1 not at the dock" in states["holed"]["detail"]
    text = run("status", "--store", store).output
    assert "missing 3" in text and "gap" in text

    res = run("export", "--store", store, "holed", "--out", tmp_path / "h", "-q")
    assert res.exit_code == 1 and "missing" in res.output and "NOT VERIFIED" in res.output

    # a stored object altered after the dock's receipt: only a re-check of the bytes sees it
    (blob,) = [
        p
        for p in (store / "objects" / "cam-gap-05").glob("*.blob")
        if p.stat().st_size
        and json.loads(p.with_suffix(".manifest").read_bytes())["record"]["recording_id"] == "whole"
    ]
    blob.chmod(0o640)
    raw = bytearray(blob.read_bytes())
    raw[-1] ^= 1
    blob.write_bytes(bytes(raw))
    assert {
        r["recording_id"]: r["state"]
        for r in json.loads(run("status", "--store", store, "--json").output)["recordings"]
    }["whole"] == "verified"
    again = json.loads(run("status", "--store", store, "--json", "--verify").output)
    whole = next(r for r in again["recordings"] if r["recording_id"] == "whole")
    assert whole["state"] == "failed" and "altered" in whole["detail"]
    agency_file = tmp_path / "agency.key"
    write_secret_key(agency_file, bytes(agency))
    res = run(
        "export",
        "--store",
        store,
        "whole",
        "--out",
        tmp_path / "w",
        "-q",
        "--agency-key",
        agency_file,
    )
    assert res.exit_code == 1 and "altered" in res.output
