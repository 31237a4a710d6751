"""``bwv sim``: the simulated device in a terminal, in real time.

SPACE presses the record button, H holds it (long enough to stop), T toggles stealth,
Q quits (a recording in progress is finished first). One status line shows the recorder's
state, what the LEDs and the haptic motor are doing, and the segments written.
"""

from __future__ import annotations

import contextlib
import select
import sys
import termios
import tty
from pathlib import Path

from capture.config import Config
from simulator.device import make_device

HELP = "SPACE press   H hold (stop)   T stealth   Q quit"


@contextlib.contextmanager
def _raw_stdin():
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _key() -> str | None:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return sys.stdin.read(1) if ready else None


def run_interactive(cfg: Config, state: Path) -> None:
    dev = make_device(cfg, state, realtime=True)
    release_at: int | None = None
    stealth = cfg.controls.stealth
    print(f"bwv simulator: device {cfg.device_id}, storage {state / 'outbox'}")
    print(HELP)
    with _raw_stdin():
        while True:
            key = _key()
            if key is not None:
                key = key.lower()
                if key == "q":
                    break
                if key == " " and release_at is None:
                    dev.button(down=True)
                    release_at = dev.now_us + 150_000
                elif key == "h" and release_at is None:
                    dev.button(down=True)
                    release_at = dev.now_us + int((cfg.controls.hold_to_stop_s + 0.3) * 1e6)
                elif key == "t":
                    stealth = not stealth
                    dev.controls.set_stealth(stealth, dev.now_us)
            if release_at is not None and dev.now_us >= release_at:
                dev.button(down=False)
                release_at = None
            dev.run_until(dev.now_us + 100_000)
            _render(dev, stealth)
    dev.shutdown()
    print()
    for p in dev.recorder.segment_paths():
        print(f"  {p}")


def _render(dev, stealth: bool) -> None:
    rec = dev.recorder.current
    status = dev.controls.status()
    parts = [
        f"{dev.now_us / 1e6:7.1f}s",
        f"{dev.recorder.state.value:<9}",
        str(status.indicator),
        f"segments: {len(dev.recorder.segment_paths())}",
    ]
    if rec is not None:
        parts.append(f"rec {rec.id[:8]}")
    if stealth:
        parts.append("STEALTH")
    if status.fault:
        parts.append(f"FAULT: {status.fault}")
    sys.stdout.write("\r\x1b[K" + "  ".join(parts))
    sys.stdout.flush()
