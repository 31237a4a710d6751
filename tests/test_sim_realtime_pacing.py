"""The simulator in real time: it looks at each frame when the frame is due, so a frame is
dropped only when the pipeline really stalls for two frame intervals; every drop is counted.
Driven by an injected monotonic clock and sleep: no real waiting."""

from __future__ import annotations

from dataclasses import dataclass, field

from capture.config import from_dict
from capture.storage import LocalStorage
from simulator.device import SimDevice
from tests.conftest import SMALL

S = 1_000_000
FRAME_US = S // 30


@dataclass
class FakeTime:
    """Monotonic microseconds; ``sleep`` advances them, plus any stall scheduled at a time
    (as if the process had not run for that long after waking)."""

    now_us: int = 5_000_000
    stalls: dict[int, int] = field(default_factory=dict)  # at (relative) -> stall length
    origin: int = 5_000_000

    def monotonic_us(self) -> int:
        return self.now_us

    def sleep(self, seconds: float) -> None:
        self.now_us += round(seconds * S)
        for at in [a for a in self.stalls if a <= self.now_us - self.origin]:
            self.now_us += self.stalls.pop(at)


def _device(tmp_path, t: FakeTime) -> SimDevice:
    cfg = from_dict(SMALL)
    return SimDevice(
        cfg,
        LocalStorage(tmp_path),
        realtime=True,
        monotonic_us=t.monotonic_us,
        sleep=t.sleep,
    )


def test_frames_are_captured_when_due_not_up_to_an_interval_later(tmp_path):
    t = FakeTime()
    dev = _device(tmp_path, t)
    dev.run_until(4 * S)
    assert dev.camera.dropped == 0
    assert dev.camera.next_index >= 3 * 30  # 3 s of frames after the 1 s boot
    # stepping on a fixed grid out of phase with the camera left frames ~33 ms late
    assert dev.camera.max_late_us <= 1


def test_a_stall_shorter_than_two_intervals_drops_nothing(tmp_path):
    t = FakeTime(stalls={2 * S: 2 * FRAME_US - 1_000})
    dev = _device(tmp_path, t)
    dev.run_until(4 * S)
    assert dev.camera.dropped == 0
    assert dev.camera.max_late_us >= 2 * FRAME_US - 1_000


def test_a_longer_stall_drops_the_frames_it_missed_and_counts_them(tmp_path):
    t = FakeTime(stalls={2 * S: 5 * FRAME_US})
    dev = _device(tmp_path, t)
    dev.run_until(4 * S)
    assert 1 <= dev.camera.dropped <= 5
    # the frame index skips the dropped ones: a gap that readback shows
    assert dev.camera.next_index == dev.camera.index_at(dev.now_us) + 1
