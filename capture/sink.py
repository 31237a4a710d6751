"""The plain-file sink: segments as playable MP4 files (for tests and the bench).

The segment sink interface (``SegmentSink``, ``SegmentInfo``) is in ``base.sink``; the
evidence sink (``crypto.evidence``) implements it too, and encrypts and signs.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from base.sink import SegmentInfo, SegmentSink
from capture.fmp4 import whole_fragments_length
from capture.storage import LocalStorage

__all__ = ["PARTIAL", "PlainFileSink", "SegmentInfo", "SegmentSink", "segment_name"]

PARTIAL = ".partial"


def segment_name(recording_id: str, index: int) -> str:
    return f"{recording_id}_{index:04d}.mp4"


class PlainFileSink:
    """Segments as plain fragmented MP4 files: ``<rec>_<index>.mp4``.

    While open, a segment lives as ``<name>.partial``; each fragment is appended and fsync'd.
    """

    def __init__(self, storage: LocalStorage) -> None:
        self.storage = storage
        self._file: BinaryIO | None = None
        self._name = ""
        self._good_length = 0

    @property
    def dir(self) -> Path:
        return self.storage.root

    def open_segment(self, info: SegmentInfo) -> None:
        self._name = segment_name(info.recording_id, info.segment_index)
        self._file = self.storage.create(self._name + PARTIAL)
        self._good_length = 0

    def write_init(self, data: bytes) -> None:
        self._append(data)

    def write_fragment(self, data: bytes, first_us: int, end_us: int) -> None:
        self._append(data)

    def _append(self, data: bytes) -> None:
        assert self._file is not None, "no open segment"
        self.storage.append(self._file, data)
        self._good_length += len(data)

    def close_segment(self, end_us: int, wall_end_us: int) -> Path:
        assert self._file is not None, "no open segment"
        self._file.close()
        self._file = None
        final = self.dir / self._name
        self.storage.publish(self.dir / (self._name + PARTIAL), final)
        return final

    def abort_segment(self) -> Path | None:
        """Close what was written so far (e.g. the disk is full): keep the whole fragments."""
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        tmp = self.dir / (self._name + PARTIAL)
        if self._good_length == 0:
            tmp.unlink(missing_ok=True)  # nothing but an empty file: nothing to keep
            return None
        self.storage.truncate(tmp, self._good_length)
        final = self.dir / self._name
        self.storage.publish(tmp, final)
        return final

    def end_recording(self, recording_id: str, reason: str, end_us: int) -> None:
        pass  # plain files carry no recording records; the evidence sink signs one

    def recover(self) -> list[Path]:
        """Finish segments a crash left open: keep every whole fragment, publish them."""
        recovered = []
        for tmp in sorted(self.dir.glob("*" + PARTIAL)):
            data = tmp.read_bytes()
            keep = whole_fragments_length(data)
            if keep == 0:
                # not even a whole header: there is no footage in it, but keep the bytes
                tmp.rename(tmp.with_suffix(".unreadable"))
                continue
            if keep < len(data):
                self.storage.truncate(tmp, keep)
            final = tmp.with_suffix("")  # drop ".partial"
            self.storage.publish(tmp, final)
            recovered.append(final)
        return recovered
