"""An investigator exports footage from the dock (issue 8): a segment the camera cut right
after it began is listed as empty, never handed over as an MP4 that will not play (point 7);
an export into a folder holding an earlier one is refused, or started clean when asked
(point 3, `bwv dock export`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from base.formats import VideoFormat
from bwv.dock_cmd import dock
from capture.clock import OffsetWallClock, VirtualClock
from capture.segment_writer import SegmentWriter
from crypto import testing as ct
from crypto.identity import write_secret_key
from dock.client import DeviceCredentials, DockClient, enroll
from dock.export import ExportError, export_recording
from dock.shipper import ChainOutbox, Shipper
from dock.testing import DockHarness
from simulator.encoder import H264Encoder

DEVICE = "cam-footage-01"
FPS = 10  # a keyframe every second, segments of one second


def _wall() -> int:
    return time.time_ns() // 1000


def _writer(sink, recording_id: str) -> tuple[SegmentWriter, H264Encoder]:
    fmt = VideoFormat(128, 96, FPS)
    writer = SegmentWriter(
        sink=sink,
        recording_id=recording_id,
        video=fmt,
        audio=None,
        segment_us=1_000_000,
        wall=OffsetWallClock(ct.WALL0),
        trigger={"press_us": 0, "pre_record_start_us": 0, "press_frame": 0},
        device_id=DEVICE,
    )
    return writer, H264Encoder(fmt, 200_000, gop=FPS)


def _feed(writer: SegmentWriter, enc: H264Encoder, frames: range) -> None:
    for i in frames:
        y = np.full((96 * 3 // 2, 128), 16 + 8 * (i % 25), dtype=np.uint8)
        for p in enc.encode(y, i * 1_000_000 // FPS, i):
            writer.write(p)


@pytest.fixture(scope="module")
def docked(tmp_path_factory):
    """A dock holding two recordings of one camera: ``crashed`` (segment 0 whole, then the
    camera died right after segment 1's first chunk, its MP4 header: recovered at the next
    start) and ``whole`` (two segments, stopped)."""
    root = tmp_path_factory.mktemp("footage")
    ident, agency = ct.device_identity(DEVICE), ct.agency_key()
    sink = ct.make_sink(root / "dev", ident, agency)
    writer, enc = _writer(sink, "crashed")
    _feed(writer, enc, range(FPS + 1))  # frame 10 (a keyframe) opens segment 1: its init
    assert [s.index for s in writer.stats.segments] == [0]
    del writer, enc, sink  # the battery is pulled: segment 1 holds its init chunk alone

    sink = ct.make_sink(root / "dev", ident, agency)
    assert [p.name for p in sink.recover()] == ["crashed_0001.bwvseg"]
    writer, enc = _writer(sink, "whole")
    _feed(writer, enc, range(2 * FPS))
    for p in enc.flush():
        writer.write(p)
    writer.finish("stopped")
    sink.trail.close()

    harness = DockHarness(root / "store")
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
        Shipper(ChainOutbox(root / "dev" / "outbox"), client, VirtualClock()).drain()
    agency_file = root / "agency.key"
    write_secret_key(agency_file, bytes(agency))
    yield {"store": root / "store", "agency": agency, "agency_file": agency_file}
    harness.close()


def run(*args: str | Path):
    return CliRunner().invoke(dock, [str(a) for a in args], catch_exceptions=False)


def _plays(path: Path) -> int:
    """Frames ffmpeg decodes from ``path`` (it must accept the file)."""
    probe = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- point 7


def test_a_segment_cut_right_after_it_began_is_listed_empty_not_handed_over(docked, tmp_path):
    out = tmp_path / "handover"
    res = run(
        "export",
        "--store",
        docked["store"],
        "crashed",
        "--out",
        out,
        "--agency-key",
        docked["agency_file"],
    )
    assert "Traceback" not in res.output
    # every MP4 handed over plays; the empty segment is not among them
    mp4s = sorted(out.glob("*.mp4"))
    assert [p.name for p in mp4s] == ["crashed_0000.mp4"]
    assert _plays(mp4s[0]) == FPS
    # the console says so, on a line of its own
    (line,) = [ln for ln in res.output.splitlines() if "segment 1:" in ln and "EMPTY" in ln]
    assert "no frame" in line and "no MP4 written" in line
    assert "[2/2] segment 1: empty:" in res.output  # the progress line too
    # and the report lists it
    listing = json.loads((out / "report.json").read_text())["export"]
    assert listing["empty_segments"] == [1]
    assert [(s["segment_index"], s["state"], s["file"]) for s in listing["segments"]] == [
        (0, "written", "crashed_0000.mp4"),
        (1, "empty", None),
    ]
    # a crash cut the recording short: exported, and said so (not a failure to export)
    assert res.exit_code == 1 and "NOT VERIFIED" in res.output


def test_the_empty_segment_is_still_exported_as_evidence_without_the_key(docked, tmp_path):
    out = tmp_path / "enc"
    res = run("export", "--store", docked["store"], "crashed", "--out", out, "-q")
    assert "Traceback" not in res.output
    assert sorted(p.name for p in (out / "segments").iterdir()) == [
        "crashed_0000.bwvseg",
        "crashed_0001.bwvseg",
    ]
    listing = json.loads((out / "report.json").read_text())["export"]
    assert listing["empty_segments"] == [1]
    assert listing["segments"][1]["file"] == "segments/crashed_0001.bwvseg"
    assert any("segment 1: EMPTY" in ln for ln in res.output.splitlines())
    api = export_recording(docked["store"], "crashed", tmp_path / "api", docked["agency"])
    assert api.empty == [1] and len(api.segments) == 1


def test_a_whole_recording_lists_no_empty_segment(docked, tmp_path):
    res = run(
        "export",
        "--store",
        docked["store"],
        "whole",
        "--out",
        tmp_path / "w",
        "--agency-key",
        docked["agency_file"],
    )
    assert res.exit_code == 0, res.output
    assert "EMPTY" not in res.output
    listing = json.loads((tmp_path / "w" / "report.json").read_text())["export"]
    assert listing["empty_segments"] == []
    assert [_plays(tmp_path / "w" / s["file"]) for s in listing["segments"]] == [FPS, FPS]


# --------------------------------------------------------------------------- point 3


def test_export_into_a_folder_holding_an_earlier_export_is_refused(docked, tmp_path):
    out = tmp_path / "case-17"
    first = run("export", "--store", docked["store"], "crashed", "--out", out, "-q")
    assert "Traceback" not in first.output
    before = _snapshot(out)
    again = run(
        "export",
        "--store",
        docked["store"],
        "whole",
        "--out",
        out,
        "--agency-key",
        docked["agency_file"],
    )
    assert again.exit_code == 2
    lines = again.output.strip().splitlines()
    assert len(lines) == 1, again.output  # one clear line
    assert "earlier export" in lines[0] and "--replace" in lines[0]
    assert "Traceback" not in again.output
    assert _snapshot(out) == before  # nothing of the earlier export touched, nothing mixed in
    with pytest.raises(ExportError, match="earlier export"):
        export_recording(docked["store"], "whole", out, None)


def test_export_with_replace_starts_clean_and_says_so(docked, tmp_path):
    out = tmp_path / "case-18"
    run("export", "--store", docked["store"], "crashed", "--out", out, "-q")
    assert (out / "segments" / "crashed_0001.bwvseg").exists()
    (out / "notes.txt").write_text("the investigator's own notes\n")
    res = run(
        "export",
        "--store",
        docked["store"],
        "whole",
        "--out",
        out,
        "--agency-key",
        docked["agency_file"],
        "--replace",
    )
    assert "started clean: removed the earlier export" in res.output
    # only the new export is there (the old segments/ gone), and what was not an export stays
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    firsts = [n for n in names if n.startswith("log/checkpoints/")]  # per record, the first
    assert firsts and all(n.split("/")[-1].isdigit() for n in firsts)  # checkpoint (no TSA)
    assert [n for n in names if n not in firsts] == [
        "EXHIBIT.md",
        "custody.jsonl",
        "device.pub",
        "enrollment.json",
        "log/checkpoint",  # the dock's log: its checkpoint, a proof per record
        "log/proofs.jsonl",
        "manifests/000000000003.manifest.json",
        "manifests/000000000004.manifest.json",
        "manifests/000000000005.end.json",
        "notes.txt",
        "receipts.jsonl",
        "report.json",
        "verify.html",  # the offline verifier page (issue 13)
        "whole_0000.mp4",
        "whole_0001.mp4",
    ]
    # the exhibit is the folder: a file that is not part of it is named, as `bwv verify` would
    assert res.exit_code == 1, res.output
    assert "extra: " in res.output and "notes.txt" in res.output
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is False and [f["kind"] for f in report["findings"]] == ["extra"]
    assert {s["status"] for s in report["segments"]} == {"authentic"}


def test_replace_removes_nothing_when_the_export_cannot_run(docked, tmp_path):
    out = tmp_path / "case-19"
    run("export", "--store", docked["store"], "whole", "--out", out, "-q")
    before = _snapshot(out)
    res = run("export", "--store", docked["store"], "no-such-recording", "--out", out, "--replace")
    assert res.exit_code == 2 and "no recording" in res.output
    assert _snapshot(out) == before


def test_export_never_writes_into_nor_clears_a_camera_outbox(docked, tmp_path):
    outbox = tmp_path / "outbox"
    (outbox / "segments").mkdir(parents=True)
    (outbox / "segments" / "r_0000.bwvseg").write_bytes(b"evidence")
    (outbox / "trail.jsonl").write_text("")
    res = run("export", "--store", docked["store"], "whole", "--out", outbox, "--replace")
    assert res.exit_code == 2 and "outbox" in res.output
    assert (outbox / "segments" / "r_0000.bwvseg").read_bytes() == b"evidence"


# --------------------------------------------------------------------------- issue 11


def test_every_export_is_a_custody_event_and_a_leaf_of_the_dock_log(docked, tmp_path):
    """Footage leaving the dock is on record (issue 11: every custody event, exported
    among them, is a leaf of the transparency log), with the clock the caller gives."""
    from dock.holdings import open_store
    from dock.leaves import custody_leaf
    from dock.store_sqlite import DirectoryStore

    def exported(store: DirectoryStore) -> list:
        return [e for e in store.custody_log(limit=10**6) if e.action == "exported"]

    store = open_store(Path(docked["store"]))
    try:
        before = len(exported(store))
    finally:
        store.close()
    export_recording(docked["store"], "whole", tmp_path / "a", docked["agency"], clock=lambda: 42)
    export_recording(docked["store"], "whole", tmp_path / "b", None, clock=lambda: 43)
    store = open_store(Path(docked["store"]))
    try:
        events = exported(store)[before:]
        leaves = {leaf.data for leaf in store.log_leaves(limit=10**6)}
    finally:
        store.close()
    assert [(e.at_us, e.detail["recording_id"], e.detail["decrypted"]) for e in events] == [
        (42, "whole", True),
        (43, "whole", False),
    ]
    assert all(custody_leaf(e).data in leaves for e in events)
