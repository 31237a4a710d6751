"""Issue 9, "Types and names": recorder events are typed, the segment writer takes keywords,
gpio counts in seconds, hold-to-stop is one constant, and one fault reporter serves the
camera and the microphone."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from base.clock import OffsetWallClock, VirtualClock
from base.formats import AudioFormat, VideoFormat
from capture.config import Config, from_dict
from capture.faults import FaultReporter
from capture.recorder import EventKind, FaultSource, State
from capture.segment_writer import SegmentWriter
from capture.sink import PlainFileSink
from capture.storage import LocalStorage, QuotaStorage
from gpio.controls import ControlsConfig
from gpio.devices import DEBOUNCE_S, HOLD_TO_STOP_S, Button, ButtonEvent
from gpio.sim import SimPinBackend
from simulator.device import SimDevice
from tests.conftest import SMALL

ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000
MS = 1_000


# -- recorder events ---------------------------------------------------------------------------


def test_recorder_events_carry_their_kind_state_and_source(tmp_path: Path) -> None:
    """A full disk and the space coming back: the events say what they are with types, and
    the officer's controls show the fault and then clear it."""
    cfg = from_dict({**SMALL, "storage": {"low_space_minutes": 0.1}})
    storage = QuotaStorage(tmp_path / "outbox", quota=700_000)
    dev = SimDevice(cfg, storage)
    dev.run_until(4 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(40 * S)
    storage.quota += 5_000_000
    dev.run_until(50 * S)
    dev.recorder.finish_now(dev.now_us)

    assert all(isinstance(e.kind, EventKind) for e in dev.events)
    states = [e.state for e in dev.events if e.kind is EventKind.STATE]
    assert states[:2] == [State.BUFFERING, State.RECORDING]
    assert all(isinstance(s, State) for s in states)
    fault = next(e for e in dev.events if e.kind is EventKind.FAULT)
    assert fault.source is FaultSource.STORAGE and "recording paused" in fault.detail
    warning = next(e for e in dev.events if e.kind is EventKind.WARNING)
    assert warning.source is FaultSource.STORAGE
    cleared = next(e for e in dev.events if e.kind is EventKind.FAULT_CLEARED)
    assert cleared.source is FaultSource.STORAGE
    assert dev.controls.status().fault is None and not dev.core.faults
    # the event log the simulator prints keeps its words
    assert [str(e.kind) for e in dev.events][:1] == ["state"]
    assert fault.kind == "fault"


def test_the_device_core_needs_no_type_ignore() -> None:
    """``set_state`` gets the controls' own state type, mapped from the recorder's enum."""
    source = (ROOT / "capture" / "device.py").read_text()
    assert "type: ignore" not in source
    assert '"storage"' not in source  # faults are matched by their typed source


# -- the segment writer ------------------------------------------------------------------------


def test_segment_writer_takes_keywords_only(tmp_path: Path) -> None:
    sink = PlainFileSink(LocalStorage(tmp_path))
    fmt, wall = VideoFormat(128, 96, 10), OffsetWallClock(0)
    with pytest.raises(TypeError):
        SegmentWriter(sink, "rec", fmt, None, b"", S, wall)  # type: ignore[misc]
    w = SegmentWriter(
        sink=sink, recording_id="rec", video=fmt, audio=AudioFormat(), segment_us=S, wall=wall
    )
    assert w.recording_id == "rec" and w.audio_extradata == b""


# -- gpio in seconds ---------------------------------------------------------------------------


def test_button_debounce_is_in_seconds() -> None:
    backend = SimPinBackend(VirtualClock())
    button = Button(backend, 5, debounce_s=0.050, hold_s=2.0)
    backend.drive(5, False, 100 * MS)
    assert button.tick(149 * MS) == []
    assert button.tick(150 * MS) == [ButtonEvent("press", 100 * MS)]
    with pytest.raises(TypeError):
        Button(backend, 6, debounce_ms=30)  # type: ignore[call-arg]
    assert ControlsConfig().debounce_s == DEBOUNCE_S == 0.030


def test_configured_debounce_reaches_the_controls_in_seconds() -> None:
    from capture.device import controls_config

    cfg = from_dict({**SMALL, "controls": {"debounce_ms": 45}})
    assert controls_config(cfg).debounce_s == pytest.approx(0.045)


# -- hold to stop: one constant ----------------------------------------------------------------


def _float_literals(path: Path) -> list[float]:
    tree = ast.parse(path.read_text())
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, float) and n.value == 3.0
    ]


def test_hold_to_stop_is_written_once() -> None:
    assert HOLD_TO_STOP_S == 3.0
    assert Config().controls.hold_to_stop_s == ControlsConfig().hold_to_stop_s == HOLD_TO_STOP_S
    places = {
        p: _float_literals(ROOT / p)
        for p in ("capture/config.py", "gpio/controls.py", "gpio/devices.py")
    }
    assert places == {"capture/config.py": [], "gpio/controls.py": [], "gpio/devices.py": [3.0]}


# -- one fault reporter ------------------------------------------------------------------------


def test_fault_reporter_keeps_the_first_and_reports_it_once(caplog) -> None:
    told: list[str] = []
    r = FaultReporter("camera", logging.getLogger("test"), told.append)
    with caplog.at_level(logging.ERROR):
        r.report("sensor timeout")
        r.report("encoder died")
    assert r.fault == "sensor timeout" and told == ["sensor timeout"]
    assert "camera fault: encoder died" in caplog.text  # every fault is logged


def test_a_failing_fault_callback_is_logged_not_raised(caplog) -> None:
    def boom(reason: str) -> None:
        raise RuntimeError("callback broke")

    r = FaultReporter("microphone", logging.getLogger("test"), boom)
    with caplog.at_level(logging.ERROR):
        r.report("device gone")
    assert r.fault == "device gone" and "on_fault callback failed" in caplog.text


def test_camera_and_microphone_share_the_reporter() -> None:
    """Neither source keeps its own copy of the fault logic."""
    for name in ("camera.py", "microphone.py"):
        tree = ast.parse((ROOT / "capture" / name).read_text())
        fails = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_fail"]
        assert len(fails) == 1 and len(fails[0].body) == 1, name
        assert "self._faults.report(reason)" in ast.unparse(fails[0].body[0]), name
