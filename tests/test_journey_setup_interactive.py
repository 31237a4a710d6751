"""The interactive simulator as a newcomer meets it: in an 80-column terminal its status line
never wraps; without a terminal it refuses at once, pointing at `bwv sim raid`; on quit it
prints commands that export and play what was recorded, and those commands work.

The terminal is a real pty (the process as a user runs it) or an injected one (virtual time,
keys by tick): nothing here waits on a timer to synchronise.
"""

from __future__ import annotations

import fcntl
import os
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from click.testing import CliRunner

from bwv.cli import main
from simulator.device import make_device
from simulator.interactive import Terminal, fit, run_interactive, status_parts
from tests.conftest import ffprobe_streams

ROOT = Path(__file__).resolve().parent.parent
STATUS = "\r\x1b[K"


def _small_config(tmp_path: Path) -> Path:
    f = tmp_path / "small.toml"
    f.write_text(
        'device_id = "sim-i"\n[video]\nwidth = 320\nheight = 240\nbitrate = 300000\n'
        "[pre_record]\nseconds = 1.0\nmax_mb = 8\n"
    )
    return f


def _status_lines(out: str) -> list[str]:
    """Each status line as drawn (up to the next redraw or line end)."""
    return [chunk.replace("\r\n", "\n").split("\n")[0] for chunk in out.split(STATUS)[1:]]


# ------------------------------------------------------------------------- without a terminal


def test_without_a_terminal_it_refuses_at_once_pointing_at_the_raid(tmp_path):
    state = tmp_path / "state"
    r = subprocess.run(
        [sys.executable, "-m", "bwv.cli", "sim", "--state", str(state)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2
    assert r.stdout == ""  # no escape codes, no status lines
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a terminal" in lines[0] and "bwv sim raid" in lines[0]
    assert "Traceback" not in r.stderr
    assert not state.exists()


# ------------------------------------------------------------------------- in a real terminal


def _read(master: int, until: str, seen: list[str], deadline: float) -> None:
    while until not in "".join(seen):
        assert time.monotonic() < deadline, f"never saw {until!r}: {''.join(seen)[-400:]!r}"
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the simulator exited: its end of the pty is closed
                data = b""
            if not data:
                raise AssertionError(f"exited before {until!r}: {''.join(seen)[-400:]!r}")
            seen.append(data.decode(errors="replace"))


def _read_to_end(master: int, seen: list[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        seen.append(data.decode(errors="replace"))
    raise AssertionError("the simulator did not exit")


def test_in_an_80_column_terminal_the_status_line_never_wraps(tmp_path):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bwv.cli",
            "sim",
            "--state",
            str(tmp_path / "state"),
            "--config",
            str(_small_config(tmp_path)),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        _read(master, "buffering", seen, deadline)
        os.write(master, b" ")  # press record
        _read(master, "recording", seen, deadline)
        _read(master, "rec ", seen, deadline)  # the widest line: a recording's id shown
        os.write(master, b"q")
        _read_to_end(master, seen, deadline)
        assert proc.wait(timeout=60) == 0, "".join(seen)[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    out = "".join(seen)
    statuses = _status_lines(out)
    assert statuses and any("recording" in s for s in statuses)
    too_wide = [s for s in statuses if len(s) >= 80]
    assert not too_wide, too_wide[:3]
    assert " dock export " in out and "ffplay " in out
    assert "Traceback" not in out


# --------------------------------------------------------------------- an injected terminal


def _scripted(keys: dict[int, str], columns: int = 80) -> tuple[Terminal, list[str]]:
    written: list[str] = []
    tick = iter(range(10**9))

    def read_key() -> str | None:
        return keys.get(next(tick))

    return Terminal(read_key, written.append, lambda: columns), written


def test_on_quit_it_prints_export_and_play_commands_that_work(small_cfg, tmp_path):
    state = tmp_path / "state"
    # press at 2.5 s (booted, buffer full), quit at 6 s: the recording is finished on quit
    term, written = _scripted({25: " ", 60: "q"})
    run_interactive(small_cfg, state, term, realtime=False)
    out = "".join(written)
    assert all(len(s) < 80 for s in _status_lines(out))
    after = out.rsplit(STATUS, 1)[1].splitlines()
    exports = [ln.strip() for ln in after if " dock export " in ln]
    plays = [ln.strip() for ln in after if ln.strip().startswith("ffplay ")]
    assert len(exports) == 1 and len(plays) == 1, after
    args = shlex.split(exports[0])
    assert args[1:3] == ["dock", "export"]
    assert "--agency-key" in args and str(state / "agency" / "agency.key") in args

    r = CliRunner().invoke(main, args[1:])
    assert r.exit_code == 0, r.output
    assert "VERIFIED" in r.output
    mp4 = Path(shlex.split(plays[0])[1])
    assert mp4.is_file()
    assert {s["codec_type"] for s in ffprobe_streams(mp4)} == {"video", "audio"}
    # the state folder holds its own keys: it verifies without --device-pub (point 12)
    r = CliRunner().invoke(main, ["verify", str(state)])
    assert r.exit_code == 0, r.output


def test_quitting_before_recording_says_so_and_makes_no_dock(small_cfg, tmp_path):
    term, written = _scripted({5: "q"})
    run_interactive(small_cfg, tmp_path / "state", term, realtime=False)
    assert "Nothing was recorded" in "".join(written)
    assert not (tmp_path / "state" / "dock").exists()


def test_the_status_line_keeps_what_matters_and_cuts_the_rest(small_cfg, tmp_path):
    dev = make_device(small_cfg, tmp_path / "state")
    dev.run_until(1_500_000)
    dev.controls.fault("storage full: " + "x" * 120, dev.now_us)
    line = fit(status_parts(dev, stealth=True), 80)
    assert len(line) == 79 and line.endswith("...")
    assert line.split()[0] == "1.5s" and "FAULT: storage full" in line
    assert fit(["short", "line"], 80) == "short  line"
    assert len(fit(status_parts(dev, stealth=True), 40)) == 39
    dev.shutdown()
