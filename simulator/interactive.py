"""``bwv sim``: the simulated device in a terminal, in real time.

SPACE presses the record button, H holds it (long enough to stop), T toggles stealth,
Q (or Ctrl-C) quits: a recording in progress is stopped first (as a hold would), then the
camera goes into its dock (a dock store in the state folder), and the exact commands to
export and play what was recorded are printed. One status line, cut to the terminal's width
so it never wraps, shows the recorder's state, what the LEDs and the haptic motor are doing,
and the segments written.

It needs a terminal: without one (``bwv sim < /dev/null``, a pipe) it refuses and points at
``bwv sim raid``, the headless scripted run.
"""

from __future__ import annotations

import contextlib
import logging
import select
import shlex
import shutil
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from capture.config import Config
from simulator.device import SimDevice, make_device

log = logging.getLogger("bwv.sim")

HELP = "SPACE press   H hold (stop)   T stealth   Q quit"
TICK_US = 100_000  # one status line and one key per tick
DOCK_DIR = "dock"
EXPORT_DIR = "export"


class NoTerminal(Exception):
    """The simulator was started without a terminal (one line, for the user)."""


@dataclass
class Terminal:
    """What the simulator needs from a terminal (tests pass their own)."""

    read_key: Callable[[], str | None]  # a key pressed since the last call, or None
    write: Callable[[str], None]
    columns: Callable[[], int]


def terminal_problem(stdin: TextIO, stdout: TextIO) -> str | None:
    """Why ``bwv sim`` cannot run on these streams, or None."""
    if stdin.isatty() and stdout.isatty():
        return None
    return (
        "bwv sim needs a terminal (it reads keys as they are pressed); "
        "without one, run the scripted raid: bwv sim raid --out DIR"
    )


def run_interactive(
    cfg: Config, state: Path, term: Terminal | None = None, realtime: bool = True
) -> None:
    """Run the simulator on ``term`` (default: this process's terminal, which must be one:
    :class:`NoTerminal` otherwise, raised before anything is made)."""
    if term is not None:
        _session(cfg, state, term, realtime)
        return
    problem = terminal_problem(sys.stdin, sys.stdout)
    if problem:
        raise NoTerminal(problem)
    with _cbreak(sys.stdin):
        _session(cfg, state, _tty(), realtime)


@contextlib.contextmanager
def _cbreak(stdin: TextIO) -> Iterator[None]:
    fd = stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _tty() -> Terminal:
    def read_key() -> str | None:
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        return sys.stdin.read(1) if ready else None

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return Terminal(read_key, write, lambda: shutil.get_terminal_size().columns)


def _session(cfg: Config, state: Path, term: Terminal, realtime: bool) -> None:
    dev = make_device(cfg, state, realtime=realtime)
    term.write(f"bwv simulator: device {cfg.device_id}, state in {state}\n{HELP}\n")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: quit as Q does
        _loop(dev, cfg, term)
    _stop_recording(dev)
    dev.shutdown()
    term.write("\n")
    for line in after_quit(dev, state):
        term.write(line + "\n")


def _loop(dev: SimDevice, cfg: Config, term: Terminal) -> None:
    release_at: int | None = None
    stealth = cfg.controls.stealth
    while True:
        key = term.read_key()
        if key is not None:
            key = key.lower()
            if key == "q":
                return
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
        dev.run_until(dev.now_us + TICK_US)
        term.write("\r\x1b[K" + fit(status_parts(dev, stealth), term.columns()))


def _stop_recording(dev: SimDevice) -> None:
    """Quitting during a recording stops it as the officer's hold would (so it verifies as
    stopped, not ended early), once the microphone has caught up with the stop."""
    if dev.recorder.current is None:
        return
    dev.recorder.stop(dev.now_us)
    limit = dev.now_us + 5_000_000
    while dev.recorder.current is not None and dev.now_us < limit:
        dev.run_until(dev.now_us + TICK_US)


def status_parts(dev: SimDevice, stealth: bool) -> list[str]:
    """The status line's parts, most important first (the end is cut to fit)."""
    rec = dev.recorder.current
    status = dev.controls.status()
    ind = status.indicator
    parts = [f"{dev.now_us / 1e6:6.1f}s", f"{dev.recorder.state.value:<9}"]
    if status.fault:
        parts.append(f"FAULT: {status.fault}")
    if stealth:
        parts.append("STEALTH")
    parts += [
        f"red {ind.red}",
        f"green {ind.green}",
        f"haptic {ind.haptic}",
        f"seg {len(dev.recorder.segment_paths())}",
    ]
    if rec is not None:
        parts.append(f"rec {rec.id[:8]}")
    return parts


def fit(parts: list[str], columns: int) -> str:
    """Join ``parts`` into one line shorter than ``columns`` (a line as wide as the terminal
    wraps on some terminals), cutting the end with "..." when it is too long."""
    line = "  ".join(parts)
    width = max(columns - 1, 4)
    return line if len(line) <= width else line[: width - 3] + "..."


def after_quit(dev: SimDevice, state: Path) -> list[str]:
    """Dock the camera and say how to export and play what it recorded."""
    recs = [r for r in dev.recorder.recordings if any(s.frames for s in r.segments)]
    if dev.keys is None:  # plain files: playable as they are
        return [f"ffplay {shlex.quote(str(p))}" for p in dev.recorder.segment_paths()]
    waiting = [p for p in (dev.storage.root / "segments").glob("*") if p.is_file()]
    if not recs and not waiting:
        return ["Nothing was recorded (SPACE starts a recording, H stops it)."]
    return _dock_and_explain(dev, state, recs)


def _dock_and_explain(dev: SimDevice, state: Path, recs: list) -> list[str]:
    from simulator.docking import visit_dock

    assert dev.keys is not None
    dock_dir = state / DOCK_DIR
    lines = [f"The camera went into its dock (store: {dock_dir})."]
    try:
        visit = visit_dock(dev, dock_dir)
    except Exception as exc:  # the simulator's exit: one line, never a traceback
        log.debug("dock visit failed", exc_info=True)
        return [
            f"Could not dock ({exc}); the encrypted segments stay in "
            f"{dev.storage.root / 'segments'}."
        ]
    lines.append(
        f"It shipped {visit.shipped} chain record(s) (segments and end records), "
        "each receipted by the dock."
    )
    lines += [f"PROBLEM: {p}" for p in visit.problems]
    bwv = _bwv_command()
    q = shlex.quote
    key = dev.keys.agency_private_path
    if recs:
        lines.append(
            "Export a recording (decrypted with the simulator's stand-in agency "
            f"key, {key}) and play it:"
        )
    for rec in recs:
        out = state / EXPORT_DIR / rec.id
        lines += [
            f"  {bwv} dock export --store {q(str(dock_dir))} {rec.id} --out {q(str(out))} "
            f"--agency-key {q(str(key))}",
            f"  ffplay {q(str(out / f'{rec.id}_0000.mp4'))}",
            f"  {bwv} verify {q(str(out))} --device-pub {q(str(dev.keys.device_pub_path))}",
        ]
    lines.append(f"Every recording the dock holds: {bwv} dock status --store {q(str(dock_dir))}")
    return lines


def _bwv_command() -> str:
    """How to call bwv from this shell: ``bwv`` if it is on PATH, else the full path."""
    beside = Path(sys.executable).parent / "bwv"
    if shutil.which("bwv") == str(beside) or not beside.exists():
        return "bwv"
    return shlex.quote(str(beside))
