"""The camera and the microphone: each started for a moment of its own clock, its packets
collected and judged."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bwv.selftest.model import Check, SelftestOptions, describe_error
from capture.config import Config
from capture.packets import Packet, Stream


@dataclass
class _Collected:
    packets: list[Packet] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _run_source(
    device: Any, stream: Stream, seconds: float, timeout_s: float, keep_data: bool
) -> tuple[_Collected, str | None]:
    """Start ``device``, collect its packets until they span ``seconds`` of capture time
    (or ``timeout_s`` of real time, or a fault), stop it. Returns what came and any error."""
    got = _Collected()
    span_us = int(seconds * 1_000_000)
    first: list[int] = []  # capture time of the first packet
    need_keyframe = [stream is Stream.VIDEO]

    def on_packet(p: Packet) -> None:
        if p.stream is not stream:
            return
        with got.lock:
            got.packets.append(
                p
                if keep_data
                else Packet(p.stream, p.pts_us, p.duration_us, p.keyframe, b"", p.frame_index)
            )
            if not first:
                first.append(p.pts_us)
            if p.keyframe:
                need_keyframe[0] = False
            if not need_keyframe[0] and p.end_us - first[0] >= span_us:
                got.done.set()

    try:
        device.start(on_packet)
    except Exception as exc:  # noqa: BLE001 - any failure to start is the finding
        with contextlib.suppress(Exception):
            device.stop()
        return got, f"did not start: {describe_error(exc)}"
    error = None
    try:
        deadline = time.monotonic() + timeout_s
        while not got.done.wait(min(0.05, max(deadline - time.monotonic(), 0))):
            if getattr(device, "fault", None) or time.monotonic() >= deadline:
                break
    finally:
        try:
            device.stop()
        except Exception as exc:  # noqa: BLE001
            error = f"did not stop cleanly: {describe_error(exc)}"
    return got, error


def check_camera(hw: Any, opts: SelftestOptions) -> Check:
    clock = hw.clock
    t0 = clock.now_us()
    got, error = _run_source(
        hw.camera, Stream.VIDEO, opts.camera_s, opts.camera_timeout_s, keep_data=False
    )
    t1 = clock.now_us()
    with got.lock:
        packets = list(got.packets)
    fault = getattr(hw.camera, "fault", None)
    n = len(packets)
    keys = sum(1 for p in packets if p.keyframe)
    data: dict[str, Any] = {
        "frames": n,
        "keyframes": keys,
        "dropped_frames": getattr(hw.camera, "dropped_frames", None),
        "encoder": getattr(hw.camera, "encoder_kind", None),
    }
    if error and error.startswith("did not start"):
        return Check("camera", "FAIL", f"the camera {error}", data)
    if fault:
        return Check("camera", "FAIL", f"camera fault: {fault}", data)
    if n == 0:
        return Check(
            "camera",
            "FAIL",
            f"no frames within {opts.camera_timeout_s:g} s (is the "
            "camera connected, enabled, not in use by another process?)",
            data,
        )
    if keys == 0:
        return Check(
            "camera",
            "FAIL",
            f"{n} frames but no keyframe: recordings could not "
            "start (the encoder must repeat SPS/PPS on keyframes)",
            data,
        )
    span_us = max(p.end_us for p in packets) - min(p.pts_us for p in packets)
    slack = 1_000_000
    off_clock = [p for p in packets if not t0 - slack <= p.pts_us <= t1 + slack]
    if off_clock:
        return Check(
            "camera",
            "FAIL",
            f"{len(off_clock)} of {n} frames carry times outside "
            "the capture clock's: the sensor timestamps are on another clock, so "
            "sound and picture would not line up",
            data,
        )
    fps = n / (span_us / 1e6) if span_us > 0 else 0.0
    data.update(span_us=span_us, fps=round(fps, 1))
    detail = (
        f"{n} frames ({keys} keyframes) in {span_us / 1e6:.1f} s of capture time, ~{fps:.0f} fps"
    )
    if data["encoder"]:
        detail += f", encoder {data['encoder']}"
    if error:
        return Check("camera", "FAIL", f"{detail}; but it {error}", data)
    return Check("camera", "PASS", detail, data)


def _rms_dbfs(packets: list[Packet], cfg: Config) -> float | None:
    """RMS level of the decoded AAC packets, dB relative to full scale (None: undecodable)."""
    import av
    import numpy as np

    from base.formats import AudioFormat
    from capture.audio_encoder import AacEncoder

    a = cfg.audio
    try:
        extradata = AacEncoder(AudioFormat(a.sample_rate, a.channels, a.bitrate)).extradata
        dec = av.CodecContext.create("aac", "r")
        dec.extradata = extradata
        chunks = []
        for p in packets:
            for frame in dec.decode(av.Packet(p.data)):
                chunks.append(frame.to_ndarray().astype(np.float64).ravel())
        if not chunks:
            return None
        x = np.concatenate(chunks)
    except Exception:  # noqa: BLE001 - the level is information, not the verdict
        return None
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return -math.inf if rms <= 0 else 20 * math.log10(rms)


def check_microphone(hw: Any, cfg: Config, opts: SelftestOptions) -> Check:
    if not cfg.audio.enabled:
        return Check("microphone", "PASS", "not used (audio.enabled = false)")
    mic = hw.microphone
    if mic is None:
        return Check("microphone", "FAIL", "audio is enabled but there is no microphone")
    got, error = _run_source(
        mic, Stream.AUDIO, opts.microphone_s, opts.microphone_timeout_s, keep_data=True
    )
    check = getattr(mic, "check", None)
    fault = (check() if callable(check) else None) or getattr(mic, "fault", None)
    with got.lock:
        packets = list(got.packets)
    data: dict[str, Any] = {"packets": len(packets)}
    if error and error.startswith("did not start"):
        return Check("microphone", "FAIL", f"the microphone {error}", data)
    if fault:
        return Check("microphone", "FAIL", f"microphone fault: {fault}", data)
    if not packets:
        return Check(
            "microphone",
            "FAIL",
            f"no sound within {opts.microphone_timeout_s:g} s "
            "(is the microphone connected? audio.device right?)",
            data,
        )
    level = _rms_dbfs(packets, cfg)
    span_us = max(p.end_us for p in packets) - min(p.pts_us for p in packets)
    data.update(
        span_us=span_us, level_dbfs=None if level is None or math.isinf(level) else round(level, 1)
    )
    detail = f"{len(packets)} packets in {span_us / 1e6:.1f} s"
    if level is None:
        detail += ", level unknown (could not decode)"
    elif math.isinf(level):
        return Check(
            "microphone", "WARN", f"{detail}, but digital silence: muted or disconnected?", data
        )
    else:
        detail += f", level {level:.1f} dBFS RMS"
    if error:
        return Check("microphone", "FAIL", f"{detail}; but it {error}", data)
    return Check("microphone", "PASS", detail, data)
