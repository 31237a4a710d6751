"""The footage as an investigator opens it (issue 8, points 4 to 6): the sound has the
configured channels, the burned-in stamp sits bottom right on a backing that reads on any
background, and every segment says when and by which camera it was recorded, on one timeline
with the segments before it."""

from __future__ import annotations

import json
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from capture.config import from_dict
from capture.overlay import Overlay
from capture.storage import LocalStorage
from simulator.device import SimDevice
from simulator.pattern import (
    STRIP_ROWS,
    draw_background,
    draw_marks,
    find_bursts,
    read_frame_index,
    read_sync_square,
)
from simulator.readback import read_segments
from tests.conftest import SMALL

S = 1_000_000
WALL_US = 1_767_225_600_123_456  # 2026-01-01T00:00:00.123456Z


def _record(tmp_path: Path, seconds: float, **over) -> tuple[SimDevice, list[Path]]:
    """A recording on the simulated device, as plain MP4 files (no keys)."""
    cfg = from_dict({**SMALL, **over})
    dev = SimDevice(cfg, LocalStorage(tmp_path / "out"), wall_epoch_us=WALL_US)
    dev.run_until(3 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(dev.now_us + int(seconds * S))
    dev.recorder.finish_now(dev.now_us)
    paths = sorted((tmp_path / "out").glob("*.mp4"))
    assert paths
    return dev, paths


def _probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _audio(path: Path) -> tuple[np.ndarray, int]:
    """The decoded audio as (channels, samples) float, and its sample rate."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(a)]
        return np.concatenate(chunks, axis=1), a.rate


# --------------------------------------------------------------------------- point 4


@pytest.mark.parametrize("channels,layout", [(1, "mono"), (2, "stereo")])
def test_audio_track_has_the_configured_channels_and_carries_the_sound(tmp_path, channels, layout):
    _, paths = _record(tmp_path, 2.5, audio={"channels": channels})
    bursts = [0] * channels
    for p in paths:
        (audio,) = [s for s in _probe(p)["streams"] if s["codec_type"] == "audio"]
        assert (audio["channels"], audio["channel_layout"]) == (channels, layout), p
        samples, rate = _audio(p)
        assert samples.shape[0] == channels  # as many decoded channels as the track says
        for k, ch in enumerate(samples):
            bursts[k] += len(find_bursts((ch * 32768).astype(np.int32), rate))
    # every channel carries the once-a-second bursts: sound in both ears, or the one
    assert all(n >= 4 for n in bursts), bursts


# --------------------------------------------------------------------------- point 5


def _stamped(background: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    img = np.full(shape, background, dtype=np.uint8)
    before = img.copy()
    Overlay("sim-0001").draw(img, WALL_US)
    return before, img


@pytest.mark.parametrize("size", [(1280, 720), (320, 240), (1920, 1080)])
def test_overlay_is_bottom_right_and_reads_on_white_and_on_black(size):
    w, h = size
    _, on_white = _stamped(235, (h, w))
    _, on_black = _stamped(16, (h, w))
    changed = np.argwhere(on_white != 235)
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    # in the bottom-right corner, as the README says: against the right and bottom edges
    assert x0 >= w // 2 and y0 >= h // 2, (x0, y0)
    assert x1 >= w - 1 - w // 40 and y1 >= h - 1 - h // 40, (x1, y1)
    box_w, box_b = on_white[y0 : y1 + 1, x0 : x1 + 1], on_black[y0 : y1 + 1, x0 : x1 + 1]
    # a dark backing over white: the box behind the text is dark, the text is bright on it
    assert np.median(box_w) < 110
    # the text: what is brighter than halfway from the box's backing to white
    text_w = box_w > (float(np.median(box_w)) + 235) / 2
    text_b = box_b > (float(np.median(box_b)) + 235) / 2
    assert text_w.mean() > 0.05
    assert float(box_w[text_w].mean()) - float(np.median(box_w)) > 100
    assert float(box_b[text_b].mean()) - float(np.median(box_b)) > 100
    # the same glyphs on white as on black: legible whatever the scene
    overlap = (text_w & text_b).sum() / (text_w | text_b).sum()
    assert overlap > 0.9


@pytest.mark.parametrize("size", [(1280, 720), (320, 240), (128, 96)])
def test_overlay_keeps_clear_of_the_simulator_marks(size):
    w, h = size
    for square in (True, False):
        luma = np.zeros((h, w), dtype=np.uint8)
        draw_background(luma, 1234)
        draw_marks(luma, 1234, square)
        marks = luma.copy()
        Overlay("sim-0001").draw(luma, WALL_US)
        assert np.array_equal(luma[:STRIP_ROWS], marks[:STRIP_ROWS])  # frame-index strip
        assert np.array_equal(luma[h // 2 :, : w // 2], marks[h // 2 :, : w // 2])  # quarter
        assert not np.array_equal(luma, marks)  # and it did draw
        if h >= 240:
            assert read_frame_index(luma) == 1234 and read_sync_square(luma) is square


def test_overlay_draws_on_a_colour_image_too():
    before, img = _stamped(255, (240, 320, 3))
    changed = np.argwhere((img != before).any(axis=2))
    assert changed.min(axis=0)[1] >= 160 and changed.min(axis=0)[0] >= 120


# --------------------------------------------------------------------------- point 6


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        yield kind.decode("latin-1"), pos + 8, pos + size
        pos += size


def _find(data: bytes, path: list[str], start: int = 0, end: int | None = None):
    """Payload ranges of every box at ``path`` (e.g. ["moof", "traf", "tfdt"])."""
    end = len(data) if end is None else end
    for kind, body, stop in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield body, stop
            else:
                yield from _find(data, path[1:], body, stop)


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    dev, paths = _record(tmp_path_factory.mktemp("segs"), 7.0)
    (rec,) = dev.recorder.recordings
    assert len(paths) >= 3  # 2 s segments: the boundaries are exercised
    return dev, rec, paths


def test_segments_say_when_and_by_which_camera_they_were_recorded(segments):
    dev, rec, paths = segments
    for seg, p in zip(rec.segments, paths, strict=True):
        tags = _probe(p)["format"]["tags"]
        assert tags["device_id"] == dev.cfg.device_id
        assert tags["recording_id"] == rec.id and tags["segment_index"] == str(seg.index)
        wall = datetime.fromisoformat(tags["creation_time"].replace("Z", "+00:00"))
        expected = datetime.fromtimestamp(dev.wall.wall_us(seg.start_us) / 1e6, UTC)
        assert abs((wall - expected).total_seconds()) < 1e-3, (wall, expected)
        # and the movie header's own creation time (whole seconds since 1904)
        ((body, _),) = list(_find(p.read_bytes(), ["moov", "mvhd"]))
        data = p.read_bytes()
        created = (
            struct.unpack_from(">Q", data, body + 4)[0]
            if data[body] == 1
            else struct.unpack_from(">I", data, body + 4)[0]
        )
        assert created - 2_082_844_800 == int(expected.timestamp())


def test_segment_timestamps_continue_from_the_segment_before(segments):
    dev, rec, paths = segments
    fps = dev.cfg.video.fps
    starts = []
    for p in paths:
        (video,) = [s for s in _probe(p)["streams"] if s["codec_type"] == "video"]
        starts.append(float(video["start_time"]))
    assert starts[0] == pytest.approx(0.0, abs=1e-3)
    for n in range(1, len(paths)):  # segment N starts where N-1 ended
        ended = starts[n - 1] + rec.segments[n - 1].frames / fps
        assert starts[n] == pytest.approx(ended, abs=1e-3), (n, starts)
    # read back on that timeline, the frames run on without a gap or an overlap
    rb = read_segments(paths, with_audio=False)
    times = [f.t for f in rb.frames]
    assert np.allclose(np.diff(times), 1 / fps, atol=1e-3)


def test_every_segment_still_decodes_alone_and_stays_a_standard_fragmented_mp4(segments):
    _, rec, paths = segments
    for seg, p in zip(rec.segments, paths, strict=True):
        run = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(p), "-map", "0", "-f", "null", "-"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and not run.stderr.strip(), run.stderr
        with av.open(str(p)) as c:
            assert sum(1 for _ in c.decode(video=0)) == seg.frames
        data = p.read_bytes()
        kinds = [k for k, _, _ in _boxes(data, 0, len(data))]
        assert kinds[:2] == ["ftyp", "moov"] and set(kinds[2:]) == {"moof", "mdat"}
        ftyp = data[8 : 8 + struct.unpack_from(">I", data, 0)[0] - 8]
        assert b"iso5" in ftyp  # the brand MSE and browsers play as fragmented MP4
        assert list(_find(data, ["moov", "mvex", "trex"]))
        # every fragment of every track says where it starts on the recording's timeline
        trafs = list(_find(data, ["moof", "traf"]))
        assert trafs and len(list(_find(data, ["moof", "traf", "tfdt"]))) == len(trafs)
