"""The simulated microphone: quiet noise with a 1 kHz burst at each whole second of capture
time, delivered in chunks and encoded to AAC, like the real microphone backend."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from base.formats import AudioFormat
from capture.audio_encoder import AacEncoder
from capture.packets import Packet
from simulator.pattern import audio_chunk


class SimMicrophone:
    def __init__(
        self,
        fmt: AudioFormat,
        on_packet: Callable[[Packet], None],
        start_us: int = 0,
        chunk_samples: int = 1024,
        seed: int = 1,
    ) -> None:
        self.fmt = fmt
        self.on_packet = on_packet
        self.start_us = start_us
        self.chunk = chunk_samples
        self.encoder = AacEncoder(fmt)
        self._rng = np.random.default_rng(seed)
        self._sample = 0

    def _time(self, sample: int) -> int:
        return self.start_us + sample * 1_000_000 // self.fmt.sample_rate

    def poll(self, now_us: int) -> None:
        """Deliver every chunk whose last sample was captured by ``now_us``."""
        while self._time(self._sample + self.chunk) <= now_us:
            pcm = audio_chunk(
                self._sample, self.chunk, self.fmt.sample_rate, self.start_us, self._rng
            )
            if self.fmt.channels == 2:
                pcm = np.repeat(pcm[:, None], 2, axis=1)
            t = self._time(self._sample)
            self._sample += self.chunk
            for p in self.encoder.encode(pcm, t):
                self.on_packet(p)
