"""Issue 14, the newcomer's path: `bwv sim console` serves a real (small) raid's dock with
its console on loopback in one command, printing the URL and one-time demo accounts; in
Debian's Chromium each role sees what the raid left: the camera, the recording with its
times, verdict and witness status, the custody log, and no problem. Ctrl-C stops it
cleanly; a folder with no raid is refused in one line."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.testing import CHROMIUM, browser, sign_in

ROOT = Path(__file__).resolve().parent.parent
BWV = [sys.executable, "-m", "bwv.cli"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def bwv(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BWV, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, **kw
    )


def read_until(proc: subprocess.Popen, lines: queue.Queue, end: str, timeout_s: float) -> str:
    got, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, f"exited {proc.returncode}: {''.join(got)}"
            continue
        got.append(line)
        if line.startswith(end):
            return "".join(got)
    raise AssertionError(f"no {end!r} within {timeout_s}s: {''.join(got)}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """Ctrl-C (or SIGTERM), then its exit; a hang is a failure that shows its stderr."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"did not stop: {proc.stderr.read()}") from None


def text(page, selector: str = "main") -> str:
    return page.locator(selector).inner_text()


@pytest.fixture(scope="module")
def raid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "raid"
    r = bwv("sim", "raid", "--out", str(out), "--pre-record", "2", "--record", "3",
            "--size", "320x240", "--fps", "10")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_a_newcomer_sees_the_raid_in_the_console(raid):
    summary = json.loads((raid / "summary.json").read_text())
    rec_id = summary["recordings"][0]["id"]
    proc = subprocess.Popen(
        [*BWV, "sim", "console", "--out", str(raid), "--listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        said = read_until(proc, lines, "Ctrl-C stops.", 120)
        url = re.search(r"^  (https://127\.0\.0\.1:\d+)/$", said, re.M).group(1)
        pw = dict(re.findall(r"^  (\w+)\s+(?:technician|supervisor|investigator|auditor)\s+(\S+)$",
                             said, re.M))  # fmt: skip
        assert set(pw) == {"tess", "sam", "ivan", "aud"}, said
        with browser(javascript=False) as page:
            sign_in(page, url, "tess", pw["tess"])
            page.goto(f"{url}/cameras")
            assert "sim-0001" in text(page)
            page.goto(f"{url}/uploads")
            receipted = text(page, "details.receipted")  # what each receipt was, in words
            assert "end" in receipted and "time sync" in receipted, receipted
            assert "0 bytes" not in receipted  # a record that is no segment has no size
            page.goto(f"{url}/problems")
            assert "Nothing needs a person now." in text(page, "#summary")
            page.click("form.who button[type=submit]")

            sign_in(page, url, "aud", pw["aud"])
            page.goto(f"{url}/recordings")
            row = text(page, f'tr[data-recording="{rec_id}"]')
            assert "recorded between" in row and "sim-0001" in row and "verified" in row
            page.click(f'tr[data-recording="{rec_id}"] a')
            facts = text(page)
            assert "verified: all segments and the end record held" in facts
            assert "witnessed" in facts and "cosigned by bwv-sim-witness" in facts
            assert "unwitnessed" not in facts
            page.goto(f"{url}/problems")
            assert "Nothing needs a person now." in text(page, "#summary")
            assert "every leaf the witness saw is held or explained" in text(page, "#checks")
            page.goto(f"{url}/custody")
            log = text(page)
            assert "account:aud" in log and "viewed" in log and "received" in log
            page.click("form.who button[type=submit]")

            sign_in(page, url, "ivan", pw["ivan"])
            page.goto(f"{url}/recordings")
            page.click(f'tr[data-recording="{rec_id}"] a')
            assert page.get_by_role("button", name="Download the exhibit").count() == 1
    finally:
        stop(proc)  # stdout is the reader's: communicate() would race it
    reader.join(10)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "bwv sim console: stopped" in "".join(lines.queue)
    assert "Traceback" not in err and "WARNING" not in err, err

    # a second start: new one-time passwords, the old ones no longer sign in
    again = subprocess.Popen(
        [*BWV, "sim", "console", "--out", str(raid), "--listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines2: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines2.put(x) for x in again.stdout], daemon=True).start()
    try:
        said = read_until(again, lines2, "Ctrl-C stops.", 120)
        assert pw["aud"] not in said
    finally:
        stop(again, signal.SIGTERM)
    assert again.returncode == 0


def test_a_folder_without_a_raid_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a raid")
    r = bwv("sim", "console", "--out", str(tmp_path), "--listen", "127.0.0.1:0")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "holds no raid" in r.stderr and "bwv sim raid --out" in r.stderr
    r = bwv("sim", "console", "--out", str(tmp_path), "--listen", "0.0.0.0:8445")
    assert r.returncode == 2 and "this machine only" in r.stderr and "Traceback" not in r.stderr


def test_a_raid_whose_witness_is_away_stays_witnessed(raid):
    """The raid's witness is gone (its port closed): the console's own custody entries get
    checkpoints nobody cosigns. The recording stays witnessed (an earlier checkpoint holding
    it was cosigned), the store is checked against that checkpoint, and the problems page
    says, in one line, which witness is away."""
    import re as _re

    from console.testing import ConsoleHarness
    from dock.translog import sync_quietly

    h = ConsoleHarness(raid / "dock")
    try:
        h.add_account("ada", "auditor")
        h.dock.store.log("technician", "note", h.now_us(), detail={"why": "witness away"})
        sync_quietly(h.dock.translog)  # a checkpoint the (gone) witness cannot cosign
        c = h.client("ada")
        ref = _re.search(r'href="(/recordings/[^"]+)"', c.get("/recordings").text).group(1)
        page = c.get(ref).text
        assert "cosigned by bwv-sim-witness" in page and "unwitnessed" not in page
        problems = c.get("/problems").text
        assert "every leaf the witness saw is held or explained" in problems
        assert "NOT VERIFIED" not in problems
        assert "the witness bwv-sim-witness has not cosigned the dock&#39;s log" in problems
    finally:
        h.close()


def test_an_empty_folder_gets_a_raid_first(tmp_path):
    out = tmp_path / "sim-out"
    proc = subprocess.Popen(
        [*BWV, "sim", "console", "--out", str(out), "--listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        said = read_until(proc, lines, "Ctrl-C stops.", 240)
        assert "summary:" in said and "  aud   auditor" in said
        assert (out / "summary.json").is_file()
    finally:
        stop(proc)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "running one" in err and "Traceback" not in err
