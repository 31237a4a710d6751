"""Fragmented MP4 muxing of already-encoded packets (no re-encoding), with PyAV.

The muxer writes into memory; ``Fmp4Muxer`` cuts what it writes into whole top-level boxes
and hands them out as blobs: one ``init`` blob (ftyp + moov) and then one ``fragment`` blob
(moof + mdat) per GOP. A file made of the init blob followed by any prefix of the fragments
is a valid, playable MP4 (shared/DESIGN.md: "a truncated file still plays up to its last
whole fragment"), which is what lets the writer fsync, sign and encrypt fragment by fragment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from capture.audio_encoder import AudioFormat
from capture.packets import Packet, Stream

US = Fraction(1, 1_000_000)
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+skip_trailer"


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    fps: int


@dataclass(frozen=True, slots=True)
class Blob:
    kind: str  # "init" | "fragment"
    data: bytes


def iter_boxes(data: bytes | memoryview, start: int = 0) -> Iterator[tuple[str, int, int]]:
    """Yield (type, offset, size) of the whole top-level boxes in ``data``; stops at the
    first box that is incomplete or malformed."""
    n = len(data)
    pos = start
    while pos + 8 <= n:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > n:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        if size < header or pos + size > n:
            return
        yield kind.decode("latin-1"), pos, size
        pos += size


def whole_fragments_length(data: bytes | memoryview) -> int:
    """Length of the longest prefix made of the init boxes and whole moof+mdat pairs."""
    end = 0
    pending_moof = False
    for kind, off, size in iter_boxes(data):
        if kind == "moof":
            pending_moof = True
            continue
        if kind == "mdat" and pending_moof:
            pending_moof = False
            end = off + size
        elif not pending_moof:
            end = off + size
    return end


class _Sink:
    """The file object PyAV writes to: it only appends (fragmented MP4 never seeks back)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, b) -> int:
        self.buf += b
        return len(b)

    def tell(self) -> int:
        return len(self.buf)

    def seek(self, *_args) -> int:
        raise OSError("fragmented MP4 output is append-only")


class Fmp4Muxer:
    """One segment's muxer. Feed packets with times relative to the segment start."""

    def __init__(
        self,
        video: VideoFormat,
        video_extradata: bytes,
        audio: AudioFormat | None = None,
        audio_extradata: bytes = b"",
    ) -> None:
        self._sink = _Sink()
        self._container = av.open(
            self._sink, "w", format="mp4",
            options={"movflags": MOVFLAGS, "flush_packets": "1"},
        )
        vs = self._container.add_stream("h264", rate=video.fps)
        vs.width, vs.height, vs.pix_fmt = video.width, video.height, "yuv420p"
        vs.time_base = Fraction(1, 90_000)
        vs.codec_context.extradata = video_extradata
        self._video = vs
        self._audio = None
        if audio is not None:
            ast = self._container.add_stream("aac", rate=audio.sample_rate)
            ast.codec_context.extradata = audio_extradata
            ast.time_base = Fraction(1, audio.sample_rate)
            if audio.channels == 2:
                ast.codec_context.layout = "stereo"
            self._audio = ast
        self._init_sent = False
        self._closed = False

    def add(self, packet: Packet, rel_pts_us: int) -> list[Blob]:
        if packet.stream is Stream.AUDIO and self._audio is None:
            return []
        p = av.Packet(packet.data)
        p.pts = p.dts = rel_pts_us
        p.duration = packet.duration_us
        p.time_base = US
        p.is_keyframe = packet.keyframe
        p.stream = self._video if packet.stream is Stream.VIDEO else self._audio
        self._container.mux_one(p)
        return self._take()

    def close(self) -> list[Blob]:
        if not self._closed:
            self._closed = True
            self._container.close()
        return self._take()

    def _take(self) -> list[Blob]:
        buf = self._sink.buf
        blobs: list[Blob] = []
        pos = 0
        moof_at: int | None = None
        with memoryview(buf) as view:
            boxes = list(iter_boxes(view))
        for kind, off, size in boxes:
            if kind == "moov" and not self._init_sent:
                blobs.append(Blob("init", bytes(buf[: off + size])))
                self._init_sent = True
                pos = off + size
            elif kind == "moof":
                moof_at = off
            elif kind == "mdat" and moof_at is not None:
                blobs.append(Blob("fragment", bytes(buf[moof_at : off + size])))
                pos = off + size
                moof_at = None
        if pos:
            del buf[:pos]
        return blobs
