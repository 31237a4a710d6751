"""The PyAudio microphone backend over the fake pyaudio: clock mapping, overflows, drift,
shutdown and faults (the contract tests cover the plain path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from base.formats import AudioFormat
from capture.clock import VirtualClock
from capture.microphone import PyAudioMicrophone, buffer_age_us
from capture.packets import Packet
from simulator.pattern import audio_chunk
from tests.fakes import install
from tests.fakes.pyaudio import FakePyAudioEnv, make_fake_pyaudio
from tests.test_hw_contract import burst_times_us

FMT = AudioFormat(sample_rate=48_000, channels=1, bitrate=64_000)
START_US = 1_250_000


def make_mic(
    monkeypatch: pytest.MonkeyPatch,
    *,
    time_base_s: float = 1000.0,
    sources: Callable[[FakePyAudioEnv, VirtualClock], dict[str, Callable[[], float]]] | None = None,
    **kwargs: Any,
) -> tuple[PyAudioMicrophone, FakePyAudioEnv, list[Packet]]:
    clock = VirtualClock()
    rng = np.random.default_rng(11)
    env = make_fake_pyaudio(
        clock=clock,
        time_base_s=time_base_s,
        source=lambda first, n, rate: audio_chunk(first, n, rate, START_US, rng),
    )
    install(monkeypatch, env.modules)
    time_sources = (
        sources(env, clock) if sources else {"monotonic": lambda: env.time_info_now(clock.now_us())}
    )
    kwargs.setdefault("device_name", "USB")
    # the fake delivers as fast as it can: a queue that holds it all, unless a test says
    kwargs.setdefault("max_queue_chunks", 4096)
    mic = PyAudioMicrophone(FMT, clock, chunk=1024, time_sources=time_sources, **kwargs)
    packets: list[Packet] = []
    return mic, env, packets


def seconds(s: float) -> int:
    return int(s * FMT.sample_rate) // 1024


def assert_bursts_on_time(packets: list[Packet], tolerance_us: int) -> list[int]:
    bursts = burst_times_us(packets, FMT)
    assert bursts
    for t in bursts:
        nearest = round(t / 1_000_000) * 1_000_000
        assert abs(t - nearest) <= tolerance_us, bursts
    return bursts


def test_opens_a_callback_stream_on_the_named_device(monkeypatch: pytest.MonkeyPatch) -> None:
    mic, env, packets = make_mic(monkeypatch)
    mic.start(packets.append)
    s = env.stream
    assert s.callback is not None and s.active
    assert (s.rate, s.channels, s.frames_per_buffer, s.device_index) == (48_000, 1, 1024, 1)
    assert mic.device_info is not None and mic.device_info["name"].startswith("USB PnP")
    mic.stop()


def test_unknown_device_names_the_inputs_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    mic, env, _ = make_mic(monkeypatch, device_name="Headphones")  # an output only
    with pytest.raises(LookupError, match="USB PnP Sound Device"):
        mic.start(lambda p: None)
    assert env.instances[0].terminated  # PortAudio released after the failed start
    with pytest.raises(ValueError):
        PyAudioMicrophone(FMT, VirtualClock(), device_index=1, device_name="USB")


def test_callback_only_enqueues_and_the_worker_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    mic, env, packets = make_mic(monkeypatch)
    worker_threads: set[int] = set()
    mic.start(lambda p: (worker_threads.add(threading.get_ident()), packets.append(p)))
    env.stream.deliver(seconds(1))
    mic.stop()
    assert worker_threads and not worker_threads & env.stream.callback_thread_ids
    assert threading.get_ident() not in worker_threads


def test_stop_flushes_the_encoder_and_releases_portaudio(monkeypatch: pytest.MonkeyPatch) -> None:
    mic, env, packets = make_mic(monkeypatch)
    mic.start(packets.append)
    env.stream.deliver(47, start_us=START_US)  # 48128 frames
    mic.stop()
    covered = packets[-1].end_us - packets[0].pts_us
    assert covered >= 47 * 1024 * 1_000_000 // 48_000  # every sample is in a packet
    assert env.stream.closed and env.instances[0].terminated
    assert mic.packets_delivered == len(packets)
    mic.stop()  # idempotent


def test_time_info_in_either_kernel_clock_maps_onto_capture_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PortAudio 19.6 stamps CLOCK_REALTIME: the buffer's age is measured in that clock
    mic, env, packets = make_mic(
        monkeypatch,
        time_base_s=1_767_225_600.0,
        sources=lambda env, clock: {
            "monotonic": lambda: 5000.0 + clock.now_us() / 1e6,
            "realtime": lambda: env.time_info_now(clock.now_us()),
        },
    )
    mic.start(packets.append)
    env.stream.deliver(seconds(2.5), start_us=START_US)
    mic.stop()
    assert packets[0].pts_us == START_US
    assert_bursts_on_time(packets, 1_000)


def test_without_time_info_the_buffer_is_taken_as_just_filled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mic, env, packets = make_mic(monkeypatch)
    mic.start(packets.append)
    env.stream.deliver(seconds(1), start_us=START_US, time_info=False)
    mic.stop()
    # the callback ran callback_latency after the buffer filled: that much late
    assert packets[0].pts_us == START_US + env.callback_latency_us


@pytest.mark.parametrize("ppm", [+1500, -1500])
def test_a_microphone_clock_off_by_ppm_is_kept_in_step(
    monkeypatch: pytest.MonkeyPatch, ppm: int
) -> None:
    mic, env, packets = make_mic(monkeypatch, max_drift_us=4_000, drift_window=16)
    mic.start(packets.append)
    env.stream.deliver(seconds(12.5), ppm=ppm, start_us=START_US)
    mic.stop()
    # uncorrected, the last burst would be 1.5 ms/s x 11.75 s = 17.6 ms off
    bursts = assert_bursts_on_time(packets, 4_000 + 1_000)
    assert len(bursts) == 12
    assert mic.stats.drift_corrections >= 3
    if ppm > 0:  # fast: more samples than time
        assert mic.stats.samples_dropped > 0 and mic.stats.samples_inserted == 0
    else:
        assert mic.stats.samples_inserted > 0 and mic.stats.samples_dropped == 0


def test_an_overflow_is_counted_reported_and_the_gap_filled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warnings: list[str] = []
    mic, env, packets = make_mic(
        monkeypatch, max_drift_us=4_000, drift_window=8, on_warning=warnings.append
    )
    mic.start(packets.append)
    env.stream.deliver(seconds(5.5), start_us=START_US, lost_before={100: 4800})  # 100 ms
    mic.stop()
    assert mic.stats.input_overflows == 1 and mic.fault is None
    assert len(warnings) == 1 and "overflow" in warnings[0]
    assert abs(mic.stats.samples_inserted - 4800) <= 96  # 2 ms
    assert_bursts_on_time(packets, 2_000)


def test_an_encoder_that_falls_behind_loses_chunks_to_exact_silence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mic, env, packets = make_mic(monkeypatch, max_queue_chunks=4, max_drift_us=None)
    release = threading.Event()

    def slow(p: Packet) -> None:
        release.wait(10)
        packets.append(p)

    mic.start(slow)
    env.stream.deliver(seconds(1), start_us=START_US)  # never blocks on the stalled worker
    release.set()
    lost = mic.stats.dropped_chunks
    assert lost > 10

    def caught_up() -> None:
        deadline = time.monotonic() + 10
        while (
            mic.stats.chunks + mic.stats.dropped_chunks < env.stream.buffers_delivered
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)

    caught_up()
    for _ in range(seconds(3) // 2):  # the worker keeps up again
        env.stream.deliver(2, start_us=START_US)
        caught_up()
    mic.stop()
    assert mic.stats.dropped_chunks == lost
    assert mic.stats.samples_inserted == lost * 1024
    assert mic.stats.chunks + lost == env.stream.buffers_delivered
    # the audio after the gap is still where it belongs in capture time
    assert packets[0].pts_us == START_US
    assert len(assert_bursts_on_time(packets, 1_000)) == 3


def test_a_broken_consumer_is_a_fault_and_the_stream_lives_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults: list[str] = []
    mic, env, _ = make_mic(monkeypatch, on_fault=faults.append)

    def broken(p: Packet) -> None:
        raise OSError("no space left on device")

    mic.start(broken)
    env.stream.deliver(seconds(1))
    assert env.stream.active and env.stream.aborted is None  # PortAudio's thread unharmed
    env.stream.deliver(seconds(1))
    mic.stop()
    assert len(faults) == 1 and "no space left" in faults[0] and mic.fault == faults[0]


def test_check_reports_a_stream_that_stopped_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    faults: list[str] = []
    mic, env, packets = make_mic(monkeypatch, on_fault=faults.append)
    mic.start(packets.append)
    assert mic.check() is None
    env.stream.active = False  # the USB microphone was pulled out
    assert mic.check() == "the input stream stopped" and faults == [mic.fault]
    mic.stop()


def test_buffer_age_from_time_info() -> None:
    clocks = {"monotonic": 100.0, "realtime": 1.7e9}
    info = {"input_buffer_adc_time": 99.978, "current_time": 99.999, "output_buffer_dac_time": 0.0}
    assert buffer_age_us(info, clocks) == 22_000
    info_rt = {"input_buffer_adc_time": 1.7e9 - 0.5, "current_time": 1.7e9 - 0.01}
    assert buffer_age_us(info_rt, clocks) == 500_000
    assert buffer_age_us({"input_buffer_adc_time": 0.0, "current_time": 0.0}, clocks) is None
    assert buffer_age_us({"input_buffer_adc_time": 3.0, "current_time": 3.1}, clocks) is None
    assert buffer_age_us(None, clocks) is None
    assert buffer_age_us({"input_buffer_adc_time": 95.0, "current_time": 99.9}, clocks) is None
