"""The PyAudio microphone backend for real: PortAudio's ALSA host API, capturing from an ALSA
``file`` PCM (scripts/alsa-file-pcm.sh) that plays a raw file made here with the simulator's
audio pattern, over the ``null`` plugin. No sound card, no fakes.

The null plugin keeps no time, so PortAudio reads as fast as the stream takes it: the test is
quick, and the backend's drift tracking (which needs a real sample clock) is off here; the
fakes test it. Needs the real pyaudio (apt ``portaudio19-dev``, then ``pip install pyaudio``).
Skipped when pyaudio is not importable, except under CI (``CI`` set), where it must run.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from base.formats import AudioFormat
from capture.camera import capture_clock
from capture.microphone import PyAudioMicrophone
from capture.packets import Packet, Stream
from simulator.pattern import audio_chunk, find_bursts
from tests.test_hw_contract import decode_aac

ROOT = Path(__file__).resolve().parent.parent
FMT = AudioFormat(sample_rate=48_000, channels=1, bitrate=64_000)
ORIGIN_US = 750_000  # the file's sample 0 "was captured" at 0.75 s: bursts at whole seconds
SECONDS = 3.5
CHUNK = 1024
DEVICE = "bwvfile"


class FileMicrophone(PyAudioMicrophone):
    """The backend, stopping the unpaced file device once it has read ``frames``: its callback
    then returns PortAudio's ``paComplete`` (the stream finishes) instead of the backend's
    ``paContinue``. Without a limit PortAudio would read tens of thousands of buffers a second
    and leave the encoder behind."""

    def __init__(self, *args: Any, frames: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frame_limit = frames
        self.frames_read = 0
        self.finished = threading.Event()

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status_flags: int
    ) -> tuple[None, int]:
        import pyaudio

        if self.frames_read >= self.frame_limit:
            self.finished.set()
            return None, pyaudio.paComplete
        self.frames_read += frame_count
        return super()._callback(in_data, frame_count, time_info, status_flags)


@pytest.fixture
def real_pyaudio() -> ModuleType:
    try:
        import pyaudio
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(
                f"CI must run the real PyAudio test, but pyaudio does not import ({e}):"
                " apt-get install portaudio19-dev, then pip install pyaudio"
            )
        pytest.skip(
            "pyaudio is not importable (apt portaudio19-dev, then pip install "
            "pyaudio); CI runs this test"
        )
    assert getattr(pyaudio, "__file__", None), "a fake pyaudio is installed"
    return pyaudio


@pytest.fixture
def alsa_file_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Writes the raw file and an ALSA configuration naming it DEVICE; returns the samples."""
    n = int(SECONDS * FMT.sample_rate)
    samples = audio_chunk(0, n, FMT.sample_rate, ORIGIN_US, np.random.default_rng(5))
    raw = tmp_path / "mic.raw"
    # a second of silence after the pattern: past the end of the file ALSA's file plugin
    # leaves the ring buffer as it was, so the tail of what was read repeats
    np.concatenate([samples, np.zeros(FMT.sample_rate, np.int16)]).astype("<i2").tofile(raw)
    conf = tmp_path / "asound.conf"
    out = subprocess.run(
        [str(ROOT / "scripts" / "alsa-file-pcm.sh"), str(raw), DEVICE],
        capture_output=True,
        text=True,
        check=True,
    )
    conf.write_text(out.stdout)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")  # PortAudio also probes JACK
    return samples


def test_pyaudio_microphone_through_alsa_file_pcm(
    real_pyaudio: ModuleType, alsa_file_device: np.ndarray
) -> None:
    samples = alsa_file_device
    expected_bursts = find_bursts(samples, FMT.sample_rate)
    assert len(expected_bursts) == 4  # at 1, 2, 3 and 4 s of capture time
    packets: list[Packet] = []
    faults: list[str] = []
    clock = capture_clock()
    needed = -(-len(samples) // CHUNK) + 2
    mic = FileMicrophone(
        FMT,
        clock,
        chunk=CHUNK,
        device_name=DEVICE,
        max_drift_us=None,
        on_fault=faults.append,
        frames=needed * CHUNK,
    )
    before_us = clock.now_us()
    mic.start(packets.append)
    try:
        assert mic.device_info is not None and mic.device_info["name"] == DEVICE
        assert mic.finished.wait(20), "PortAudio did not read the file"
    finally:
        after_us = clock.now_us()
        mic.stop()
    assert faults == [] and mic.fault is None
    assert mic.stats.chunks == needed
    assert mic.stats.dropped_chunks == 0 and mic.stats.samples_inserted == 0
    assert mic.stats.input_overflows == 0

    # packets: AAC in capture time, contiguous, covering exactly the samples read
    assert packets and all(p.stream is Stream.AUDIO for p in packets)
    for a, b in zip(packets, packets[1:], strict=False):
        assert abs(b.pts_us - a.end_us) <= 1
    read = mic.stats.chunks * CHUNK
    t0 = packets[0].pts_us
    covered = packets[-1].end_us - t0
    assert abs(covered - read * 1_000_000 // FMT.sample_rate) <= 1_000_000 * 1024 // 48_000
    decoded = decode_aac(packets, FMT)
    assert abs(len(decoded) - read) <= CHUNK

    # what went in comes out where it went in: the bursts at their sample positions
    got = find_bursts(decoded[: len(samples)], FMT.sample_rate)
    assert len(got) == len(expected_bursts)
    for want, have in zip(expected_bursts, got, strict=True):
        assert abs(have - want) <= FMT.sample_rate // 1000, (expected_bursts, got)
    # in capture time the bursts are a second apart, as their samples are
    times = [t0 + i * 1_000_000 // FMT.sample_rate for i in got]
    for k, t in enumerate(times):
        assert abs(t - times[0] - k * 1_000_000) <= 1_000, times
    # sample 0 is stamped with the capture clock's time when it was captured
    assert before_us - 100_000 <= t0 <= after_us
