"""What an officer and an investigator see in a recording made on the simulated device:
the pre-record, no frame lost or repeated, playable segments, sound in sync with picture."""

from __future__ import annotations

import json
import subprocess

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.config import from_dict
from capture.fmp4 import iter_boxes
from simulator.raid import RaidPlan, run_raid
from simulator.readback import read_segments
from tests.conftest import SMALL, ffprobe_streams


@pytest.fixture(scope="module")
def raid(tmp_path_factory):
    out = tmp_path_factory.mktemp("raid")
    cfg = from_dict(SMALL)
    result = run_raid(cfg, out, RaidPlan(record_s=5.0))
    rec = result.summary["recordings"][0]
    paths = [out / p for p in rec["segments"]]
    return cfg, out, result, rec, paths, read_segments(paths)


def test_raid_reports_success_and_summary_keys(raid):
    _, out, result, rec, paths, _ = raid
    assert result.ok, result.problems
    summary = json.loads((out / "summary.json").read_text())
    assert set(rec) >= {
        "id",
        "press_frame",
        "first_frame",
        "last_frame",
        "dropped_frames",
        "segments",
    }
    assert summary["recordings"][0]["id"] == rec["id"]
    assert len(paths) >= 3  # 2 s segments over ~10 s: the boundaries are exercised


def test_recording_starts_on_keyframe_and_covers_the_pre_record(raid):
    cfg, _, _, rec, paths, rb = raid
    fps, gop = cfg.video.fps, cfg.video.gop
    pre = int(cfg.pre_record.seconds * fps)
    first = rb.frames[0].index
    assert first == rec["first_frame"]
    assert first % gop == 0  # the simulated encoder's keyframes fall on multiples of the GOP
    assert rec["press_frame"] - pre - gop <= first <= rec["press_frame"] - pre
    with av.open(str(paths[0])) as c:
        first_packet = next(p for p in c.demux(c.streams.video[0]) if p.size)
        assert first_packet.is_keyframe


def test_frames_contiguous_across_press_seam_and_segment_boundaries(raid):
    _, _, _, rec, _, rb = raid
    idx = rb.indices
    assert idx == list(range(rec["first_frame"], rec["last_frame"] + 1))
    assert rec["dropped_frames"] == 0
    assert rec["press_frame"] in idx


def test_every_segment_plays_with_video_and_audio_and_durations_add_up(raid):
    cfg, _, _, rec, paths, rb = raid
    total = 0.0
    for p in paths:
        streams = ffprobe_streams(p)
        kinds = sorted(s["codec_type"] for s in streams)
        assert kinds == ["audio", "video"], p
        video = next(s for s in streams if s["codec_type"] == "video")
        assert video["codec_name"] == "h264"
        assert next(s for s in streams if s["codec_type"] == "audio")["codec_name"] == "aac"
        # segments continue the recording's timeline, and ffprobe gives a fragmented MP4's
        # duration as its end on that timeline: the segment's length is end - start
        total += float(video["duration"]) - float(video["start_time"])
    frames = rec["last_frame"] - rec["first_frame"] + 1
    assert total == pytest.approx(frames / cfg.video.fps, abs=0.5 / cfg.video.fps)
    assert sum(rb.segment_durations) == pytest.approx(total, abs=1e-6)


def test_sound_and_picture_in_sync(raid):
    cfg, _, _, _, _, rb = raid
    frame = 1 / cfg.video.fps
    squares = [f.t for f in rb.frames if f.square]
    assert len(squares) >= 8
    # every whole second of the recording shows one square and one burst, lined up
    bursts = rb.burst_times
    for t in squares[1:]:
        nearest = min(bursts, key=lambda b: abs(b - t))
        assert abs(nearest - t) < frame, (t, nearest)
    assert len(bursts) >= len(squares) - 1


def _whole_fragment_ends(data: bytes) -> list[int]:
    ends, moof = [], False
    for kind, off, size in iter_boxes(data):
        if kind == "moof":
            moof = True
        elif kind == "mdat" and moof:
            ends.append(off + size)
            moof = False
    return ends


def _inside_moof(data: bytes, at: int) -> int | None:
    """The start of the ``moof`` box that ``at`` cuts, if it cuts one."""
    for kind, off, size in iter_boxes(data):
        if kind == "moof" and off < at < off + size:
            return off
    return None


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(min_value=0.0, max_value=1.0))
def test_segment_cut_at_any_byte_plays_up_to_its_last_whole_fragment(raid, tmp_path, cut):
    _, _, _, _, paths, rb = raid
    data = paths[1].read_bytes()
    at = int(cut * (len(data) - 1))
    ends = _whole_fragment_ends(data)
    whole = [e for e in ends if e <= at]
    # FFmpeg refuses a file that ends inside a moof's track run (InvalidDataError at open):
    # a player then needs the cut moof dropped. The camera never leaves one (a torn chunk
    # does not decrypt: the MP4 ends at a whole fragment); the verifier names such a cut
    # `altered` by its own box walk. A cut anywhere else plays as it is.
    moof_at = _inside_moof(data, at)
    if moof_at is not None:
        at = moof_at
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[:at])
    seg_frames = [f.index for f in rb.frames if f.segment == 1]
    if not whole:
        return  # not one whole fragment: nothing to play, and nothing claimed
    got = read_segments([truncated], with_audio=False).indices
    per_fragment = len(seg_frames) // len(ends)
    # everything in the whole fragments plays, in order, from the segment's first frame
    assert got[: len(whole) * per_fragment] == seg_frames[: len(whole) * per_fragment]
    assert got == seg_frames[: len(got)]
    probe = subprocess.run(["ffprobe", "-v", "error", str(truncated)], capture_output=True)
    assert probe.returncode == 0


def test_audio_optional_in_pre_record(tmp_path):
    cfg = from_dict({**SMALL, "pre_record": {"seconds": 2.0, "max_mb": 16, "audio": False}})
    result = run_raid(cfg, tmp_path, RaidPlan(record_s=2.0))
    assert result.ok, result.problems
    rec = result.summary["recordings"][0]
    rb = read_segments([tmp_path / p for p in rec["segments"]])
    # no sound before the press, sound after it
    press_t = (rec["press_frame"] - rec["first_frame"]) / cfg.video.fps
    assert rb.burst_times and min(rb.burst_times) >= press_t - 0.05


def test_raid_ships_to_the_dock_and_its_evidence_verifies(raid):
    _, out, result, rec, paths, _ = raid
    s = result.summary
    assert s["verified"] is True and s["verification"]["ok"]
    # one receipt per chain record: every segment manifest, the end record, the time sync
    manifests = [x for x in s["verification"]["segments"]]
    syncs = s["verification"]["time_syncs"]
    assert len(syncs) == 1  # the dock visit's, signed into the camera's chain
    # the raid's camera starts on a fixed old date: the dock's time, backed by the raid's TSA
    # (its CA pinned), steps it, and the step is a chain record of its own (clock_step)
    assert syncs[0]["applied"] and syncs[0]["tsa_token"] and abs(syncs[0]["offset_us"]) > 5e6
    assert len(s["receipts"]) == len(manifests) + 1 + len(syncs) + 1
    assert not list((out / "device" / "outbox" / "segments").iterdir())  # all shipped
    assert all((out / p).is_file() for p in s["evidence"])
    assert any(p.startswith("dock/objects/") for p in s["evidence"])
    # `bwv verify DIR` accepts the folder as it is; a flipped byte at the dock is named
    from click.testing import CliRunner

    from bwv.cli import main

    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["dock", "status", "--store", str(out / "dock"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["recordings"][0]["state"] == "verified"


def test_tampering_at_the_dock_is_caught_by_bwv_verify(tmp_path):
    from click.testing import CliRunner

    from bwv.cli import main

    cfg = from_dict(SMALL)
    result = run_raid(cfg, tmp_path, RaidPlan(record_s=1.0))
    assert result.ok, result.problems
    blob = next(tmp_path / p for p in result.summary["evidence"] if p.endswith(".blob"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.chmod(0o600)
    blob.write_bytes(bytes(data))
    r = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert r.exit_code == 1
    assert "altered" in r.output
