"""Faults an officer must never lose footage to: a full disk, a killed process, bad config,
a press during boot."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from capture.config import ConfigError, from_dict, load
from capture.recorder import State
from capture.storage import LocalStorage, QuotaStorage
from crypto.seal import decrypt_segment
from crypto.verify import verify_outbox
from simulator.device import SimDevice, make_device
from simulator.readback import read_segments
from tests.conftest import SMALL, ffprobe_streams

S = 1_000_000


def _digest(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_disk_full_closes_segment_cleanly_warns_first_and_resumes(tmp_path):
    cfg = from_dict({**SMALL, "storage": {"low_space_minutes": 0.1}})
    storage = QuotaStorage(tmp_path / "outbox", quota=700_000)
    dev = SimDevice(cfg, storage)
    dev.run_until(4 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(40 * S)
    kinds = [e.kind for e in dev.events]
    assert "fault" in kinds, "the officer must be told the disk is full"
    fault_at = next(e.at_us for e in dev.events if e.kind == "fault")
    warn_at = next(e.at_us for e in dev.events if e.kind == "warning")
    assert fault_at - warn_at >= 3 * S, "the low-space warning must come well before"
    assert dev.recorder.state is State.RECORDING  # the recording is paused, not ended
    shown = dev.controls.status()
    assert shown.fault and "storage" in shown.fault
    assert "fault" in shown.indicator.red  # the officer sees the fault pattern
    written = sorted(storage.root.glob("*.mp4"))
    assert written and not list(storage.root.glob("*.partial"))
    before = _digest(written)
    for p in written:  # the segment open when the disk filled was closed and plays
        assert sorted(s["codec_type"] for s in ffprobe_streams(p)) == ["audio", "video"]

    storage.quota += 5_000_000  # space comes back
    dev.run_until(50 * S)
    assert "fault_cleared" in [e.kind for e in dev.events]
    assert dev.controls.status().fault is None
    dev.recorder.finish_now(dev.now_us)
    after = sorted(storage.root.glob("*.mp4"))
    assert _digest([p for p in after if p.name in before]) == before  # nothing damaged
    assert len(after) > len(written)  # recording went on
    rb = read_segments(after, with_audio=False)
    idx = rb.indices
    assert idx == sorted(idx) and len(set(idx)) == len(idx)  # in order, nothing repeated
    # what was written after the resume is contiguous again
    resumed = [p for p in after if p.name not in before]
    r2 = read_segments(resumed, with_audio=False).indices
    assert r2 == list(range(r2[0], r2[0] + len(r2)))


def test_killed_process_leaves_playable_segments_recovered_at_next_start(tmp_path):
    state = tmp_path / "state"
    cfg_file = tmp_path / "bwv.toml"
    cfg_file.write_text(
        'device_id = "sim-kill"\n[video]\nwidth = 320\nheight = 240\nbitrate = 400000\n'
        "[pre_record]\nseconds = 1.0\nmax_mb = 16\n[segments]\nseconds = 4.0\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "bwv.cli",
        "sim",
        "--config",
        str(cfg_file),
        "--state",
        str(state),
        "record",
        "--seconds",
        "600",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    fragments: dict[int, int] = {}
    assert proc.stdout is not None
    for line in proc.stdout:  # the device reports each fragment once it is on disk, signed
        e = json.loads(line)
        if e["kind"] == "fragment_written":
            seg = int(e["detail"].split()[1])
            fragments[seg] = fragments.get(seg, 0) + 1
            if sum(fragments.values()) >= 6 and fragments[seg] >= 2 and seg >= 1:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    segments_dir = state / "outbox" / "segments"
    assert list(segments_dir.glob("*.partial")), "the open segment was left behind by the kill"

    # the next start recovers it: nothing written is lost, and it all verifies
    dev = make_device(load(cfg_file), state)
    assert not list(segments_dir.glob("*.partial"))
    assert len(dev.recovered) == 1
    report = verify_outbox(
        state / "outbox", dev.keys.identity.public_key, dev.keys.agency_private()
    )
    by_index = {s.segment_index: s for s in report.segments}
    assert all(s.status == "authentic" for s in report.segments), report.to_json()
    assert by_index[max(by_index)].truncated  # the segment the kill cut short says so
    assert [r.status for r in report.recordings] != ["complete"]  # cut short, not ended
    plain = []
    for s in sorted(report.segments, key=lambda s: s.segment_index):
        fragments_kept = sum(c.kind == "fragment" for c in s.chunks)
        assert fragments_kept >= fragments.get(s.segment_index, 0)
        dec = decrypt_segment((state / "outbox" / s.file).read_bytes(), dev.keys.agency_private())
        out = tmp_path / f"{s.segment_index}.mp4"
        out.write_bytes(dec.plaintext)
        assert sorted(x["codec_type"] for x in ffprobe_streams(out)) == ["audio", "video"]
        plain.append(out)
    idx = read_segments(plain, with_audio=False).indices
    assert idx == list(range(idx[0], idx[0] + len(idx)))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"pre_record": {"seconds": -5}}, "pre_record.seconds"),
        ({"video": {"widht": 640}}, "video.widht"),
        ({"video": {"width": 1000, "height": 700}}, "video.width"),
        ({"video": {"height": 7}}, "video.height"),
        ({"nonsense": 1}, "nonsense"),
        ({"video": {"fps": "thirty"}}, "video.fps"),
        ({"pre_record": {"seconds": 120, "max_mb": 1}}, "pre_record.max_mb"),
        ({"pins": {"button": 27}}, "pins.red_led"),
        ({"controls": {"hold_to_stop_s": 0}}, "controls.hold_to_stop_s"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert err.value.key == key
    assert str(err.value).startswith(key + ":")


def test_bad_configuration_file_refused_at_startup_by_the_cli(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pre_record]\nseconds = -1\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bwv.cli",
            "sim",
            "--config",
            str(bad),
            "raid",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "pre_record.seconds" in r.stderr
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_press_while_booting_is_honoured_once_frames_flow(tmp_path, small_cfg):
    dev = SimDevice(small_cfg, LocalStorage(tmp_path))
    assert dev.recorder.state is State.BOOTING
    assert dev.recorder.press(0)
    dev.run_until(3 * S)
    assert dev.recorder.state is State.RECORDING
    rec = dev.recorder.current
    dev.recorder.finish_now(dev.now_us)
    frames = [i for s in rec.segments for i in (s.first_frame, s.last_frame)]
    assert frames[0] == 0  # it began with the very first frame


def test_press_while_recording_does_not_start_another_recording(tmp_path, small_cfg):
    dev = SimDevice(small_cfg, LocalStorage(tmp_path))
    dev.run_until(3 * S)
    assert dev.recorder.press(dev.now_us)
    dev.run_until(4 * S)
    assert not dev.recorder.press(dev.now_us)
    assert len(dev.recorder.recordings) == 1


def test_no_footage_on_disk_without_a_press(tmp_path, small_cfg):
    dev = SimDevice(small_cfg, LocalStorage(tmp_path))
    dev.run_until(10 * S)
    assert dev.recorder.state is State.BUFFERING
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # pre-record lives in RAM only
    assert os.listdir(tmp_path) == []
