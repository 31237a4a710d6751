"""Fragmented MP4 muxing of already-encoded packets (no re-encoding), with PyAV.

The muxer writes into memory; ``Fmp4Muxer`` cuts what it writes into whole top-level boxes
and hands them out as blobs: one ``init`` blob (ftyp + moov) and then one ``fragment`` blob
(moof + mdat) per GOP. A file made of the init blob followed by any prefix of the fragments
is a valid, playable MP4 (shared/DESIGN.md: "a truncated file still plays up to its last
whole fragment"), which is what lets the writer fsync, sign and encrypt fragment by fragment.

Every segment carries its wall-clock start (``creation_time``, in ``mvhd`` and as a tag) and
who recorded it (``device_id``, ``recording_id``, ``segment_index``: ``udta/meta`` tags that
``ffprobe -show_format`` lists). Timestamps run on the recording's timeline: packets are fed
relative to the recording's origin and each fragment's ``tfdt`` (base media decode time)
carries them unchanged, so segment N starts where segment N-1 ended (ffprobe's
``start_time``), and each segment still decodes on its own.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from base.formats import AudioFormat, VideoFormat
from base.packets import Packet, Stream

US = Fraction(1, 1_000_000)
# frag_discont: each track's first fragment keeps its packets' decode time in ``tfdt`` (the
# recording's timeline) instead of starting at 0; use_metadata_tags: our own tag names
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+skip_trailer+frag_discont+use_metadata_tags"


@dataclass(frozen=True)
class SegmentTags:
    """What a segment's container says about it (shown by ``ffprobe -show_format``)."""

    wall_start_us: int | None = None  # wall-clock time of the first frame (Unix µs, UTC)
    device_id: str = ""
    recording_id: str = ""
    segment_index: int | None = None

    def metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.wall_start_us is not None:
            t = datetime.fromtimestamp(self.wall_start_us / 1e6, UTC)
            out["creation_time"] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if self.device_id:
            out["device_id"] = self.device_id
        if self.recording_id:
            out["recording_id"] = self.recording_id
        if self.segment_index is not None:
            out["segment_index"] = str(self.segment_index)
        return out


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


def fragment_count(data: bytes | memoryview) -> int:
    """How many whole fragments (moof + mdat) follow the init boxes: 0 for a segment cut
    right after its init blob (it holds no frame)."""
    n, pending_moof = 0, False
    for kind, _off, _size in iter_boxes(data):
        if kind == "moof":
            pending_moof = True
        elif kind == "mdat" and pending_moof:
            pending_moof = False
            n += 1
    return n


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

    def write(self, b: bytes) -> int:
        self.buf += b
        return len(b)

    def tell(self) -> int:
        return len(self.buf)

    def seek(self, *_args: object) -> int:
        raise OSError("fragmented MP4 output is append-only")


class Fmp4Muxer:
    """One segment's muxer. Feed packets with times (>= 0) on the recording's timeline: the
    first segment's from 0, each later one's from where the one before ended."""

    def __init__(
        self,
        video: VideoFormat,
        video_extradata: bytes,
        audio: AudioFormat | None = None,
        audio_extradata: bytes = b"",
        tags: SegmentTags | None = None,
    ) -> None:
        self._sink = _Sink()
        self._container = av.open(
            self._sink,
            "w",
            format="mp4",
            # avoid_negative_ts would shift the first packet to 0: keep the timeline
            options={"movflags": MOVFLAGS, "flush_packets": "1", "avoid_negative_ts": "disabled"},
        )
        for k, v in (tags or SegmentTags()).metadata().items():
            self._container.metadata[k] = v
        vs = self._container.add_stream("h264", rate=video.fps)
        vs.width, vs.height, vs.pix_fmt = video.width, video.height, "yuv420p"
        vs.time_base = Fraction(1, 90_000)
        vs.codec_context.extradata = video_extradata
        self._video = vs
        self._audio: AudioStream | None = None
        if audio is not None:
            ast = self._container.add_stream("aac", rate=audio.sample_rate)
            ast.codec_context.extradata = audio_extradata
            ast.time_base = Fraction(1, audio.sample_rate)
            # the track says what the encoder was given: mono stays mono (one channel)
            ast.codec_context.layout = "mono" if audio.channels == 1 else "stereo"
            self._audio = ast
        self._init_sent = False
        self._closed = False

    def add(self, packet: Packet, rel_pts_us: int) -> list[Blob]:
        stream: VideoStream | AudioStream
        if packet.stream is Stream.VIDEO:
            stream = self._video
        elif self._audio is not None:
            stream = self._audio
        else:
            return []
        p = av.Packet(packet.data)
        p.pts = p.dts = rel_pts_us
        p.duration = packet.duration_us
        p.time_base = US
        p.is_keyframe = packet.keyframe
        p.stream = stream
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
        # each blob copied once, out of a view (a slice of the bytearray would be a second
        # copy of a whole fragment, ~1.25 MB a second at 10 Mbit/s); the view is let go
        # before the bytes taken are cut off the buffer
        with memoryview(buf) as view:
            for kind, off, size in iter_boxes(view):
                if kind == "moov" and not self._init_sent:
                    blobs.append(Blob("init", bytes(view[: off + size])))
                    self._init_sent = True
                    pos = off + size
                elif kind == "moof":
                    moof_at = off
                elif kind == "mdat" and moof_at is not None:
                    blobs.append(Blob("fragment", bytes(view[moof_at : off + size])))
                    pos = off + size
                    moof_at = None
        if pos:
            del buf[:pos]
        return blobs
