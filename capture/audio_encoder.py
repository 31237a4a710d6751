"""AAC encoding of microphone PCM with PyAV, stamped in capture time.

The AAC encoder primes with 1024 samples: its first packet has pts -1024 and decodes to the
priming silence. Packets keep the encoder's pts (in samples since the first sample fed),
mapped onto capture time from the first chunk's timestamp, so a decoder that honours the
timestamps plays sound in step with the picture; the priming packet is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np
from av.audio.stream import AudioStream

from base.formats import AudioFormat
from base.packets import Packet, Stream

AAC_FRAME = 1024


class AacEncoder:
    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate = fmt.sample_rate
        ctx.layout = "mono" if fmt.channels == 1 else "stereo"
        ctx.format = "fltp"
        ctx.bit_rate = fmt.bitrate
        self._time_base = Fraction(1, fmt.sample_rate)  # one object, set on every frame
        ctx.time_base = self._time_base
        # the "fast" coder costs about two thirds of the default "twoloop" in CPU, for a
        # speech-grade difference at 64 kbit/s: the device's CPU budget matters more
        ctx.options = {"aac_coder": "fast"}
        ctx.open()
        self._ctx = ctx
        self._layout = ctx.layout.name
        self.extradata: bytes = bytes(ctx.extradata or b"")
        self._t0_us: int | None = None
        self._samples = 0
        # Packet durations take two or three values: share the int objects, so a packet
        # held in the pre-record buffer costs its bytes and little more (an AAC packet is
        # only ~170 bytes)
        self._durations: dict[int, int] = {}

    def _to_us(self, samples: int) -> int:
        assert self._t0_us is not None
        return self._t0_us + samples * 1_000_000 // self.fmt.sample_rate

    def encode(self, pcm: np.ndarray, capture_us: int) -> list[Packet]:
        """Encode int16 PCM shaped (samples,) or (samples, channels) captured at ``capture_us``.

        The first call anchors sample 0 at ``capture_us``; later chunks are assumed
        contiguous (the microphone's own sample clock).
        """
        if self._t0_us is None:
            self._t0_us = capture_us
        pcm = np.asarray(pcm)
        if pcm.ndim == 1:
            pcm = pcm[:, None]
        # planar float in [-1, 1): one array, scaled in place (PyAV wants it C-ordered)
        planar = pcm.T.astype(np.float32, order="C")
        planar *= 1.0 / 32768.0
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self._layout)
        frame.sample_rate = self.fmt.sample_rate
        frame.pts = self._samples
        frame.time_base = self._time_base
        self._samples += planar.shape[1]
        return self._wrap(self._ctx.encode(frame))

    def flush(self) -> list[Packet]:
        return self._wrap(self._ctx.encode(None))

    def _wrap(self, packets: Iterable[av.Packet[AudioStream]]) -> list[Packet]:
        out: list[Packet] = []
        for p in packets:
            if p.pts is None or p.pts < 0:
                continue  # the priming packet: decodes to nothing of ours
            dur = p.duration or AAC_FRAME
            start = self._to_us(p.pts)
            d = self._to_us(p.pts + dur) - start
            d = self._durations.setdefault(d, d)
            out.append(Packet(Stream.AUDIO, start, d, True, bytes(p)))
        return out
