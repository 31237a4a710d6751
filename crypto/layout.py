"""The outbox's names (crypto/FORMAT.md, "Outbox"): where the evidence sink keeps segments."""

from __future__ import annotations

import re

SEGMENTS_DIR = "segments"
SEG_EXT = ".bwvseg"
PARTIAL = ".partial"
UNSIGNED = ".unsigned"
REC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
PARTIAL_NAME = re.compile(r"([A-Za-z0-9_-]{1,64})_(\d{4,})\.bwvseg\.partial\Z")


def segment_file_name(recording_id: str, segment_index: int) -> str:
    return f"{recording_id}_{segment_index:04d}{SEG_EXT}"
