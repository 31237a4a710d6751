"""Finishing a partial segment: what a crash (or a full disk) left open is closed at its
last chunk the trail signed, as a truncated segment with a signed manifest.

Bytes past the signed chunks are set aside in ``<name>.unsigned`` (``.unsigned.N`` when that
exists with other bytes), kept until the dock receipts them, and named in the manifest's
``unsigned_tail``. A file that is not even a readable segment header of this device is set
aside whole. A segment whose manifest was already signed (only the rename was missing) is
just renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.durable import fsync_dir, rename_durable, truncate_durable, write_atomic
from crypto.layout import PARTIAL, PARTIAL_NAME, UNSIGNED, segment_file_name
from crypto.manifest import Chain, chunk_entry, manifest_fields
from crypto.records import SignedRecord, Signer, sha256_hex
from crypto.seal import ParsedSegment, SealFormatError, parse_segment
from crypto.trail import TrailWriter


@dataclass(frozen=True)
class RecoveredSegment:
    """What ``recover()`` (or ``abort_segment()``) did with one partial segment."""

    partial: Path
    path: Path | None  # the stored segment, or None when nothing could be kept as one
    recording_id: str | None
    segment_index: int | None
    signed_chunks: int  # chunks kept (signed in the trail), init included
    truncated: bool  # no FINAL chunk
    unsigned_path: Path | None  # where bytes past the signed chunks were set aside
    unsigned_bytes: int


@dataclass(frozen=True)
class Recovery:
    """What finishing a partial segment needs of the evidence sink."""

    segments_dir: Path
    identity: Signer
    trail: TrailWriter
    chain: Chain
    firmware_version: str

    def set_aside(self, name: str, data: bytes) -> Path:
        """Keep ``data`` in ``<name>.unsigned`` (or ``.unsigned.N``), never overwriting."""
        i = 0
        while True:
            path = self.segments_dir / (name + UNSIGNED + (f".{i}" if i else ""))
            if not path.exists():
                write_atomic(path, data, overwrite=False)
                return path
            if path.read_bytes() == data:
                return path
            i += 1

    def finish_partial(self, partial: Path, recovered: bool) -> RecoveredSegment:
        """Close a partial segment at its last signed chunk (see the module docstring)."""
        data = partial.read_bytes()
        name = partial.name[: -len(PARTIAL)]
        parsed = self._parse_ours(name, data)
        if parsed is None:
            # not even a readable header of ours: nothing to sign; keep the bytes aside
            aside = self.set_aside(name, data)
            partial.unlink()
            fsync_dir(self.segments_dir)
            m = PARTIAL_NAME.match(partial.name)
            rec_hint = m.group(1) if m else None
            return RecoveredSegment(partial, None, rec_hint, None, 0, True, aside, len(data))
        rec, idx = parsed.context.recording_id, parsed.context.segment_index
        final = self.segments_dir / name
        state = self.chain.state.recordings.get(rec)
        signed = self.trail.records_for_segment(rec, idx)
        if state is not None and idx in state.segments:
            # the manifest was signed, only the rename was missing
            rename_durable(partial, final)
            truncated = not (signed and signed[-1].record["kind"] == "final")
            return RecoveredSegment(
                partial, final, rec, idx, len(parsed.chunks), truncated, None, 0
            )
        kept = signed_prefix(signed, parsed)
        k = len(kept)
        keep_len = parsed.offsets[k] if k < len(parsed.offsets) else parsed.end
        tail = data[keep_len:]
        unsigned_path = self._unsigned_tail(partial, name, tail, keep_len)
        chunks = [chunk_entry(r) for r in kept]
        fields = self._manifest(parsed, name, keep_len, chunks, recovered, unsigned_path)
        self.chain.append("manifest", fields)
        rename_durable(partial, final)
        truncated = not (chunks and chunks[-1]["kind"] == "final")
        return RecoveredSegment(partial, final, rec, idx, k, truncated, unsigned_path, len(tail))

    def _parse_ours(self, name: str, data: bytes) -> ParsedSegment | None:
        """The partial segment parsed, when it is one of this device's under its own name."""
        try:
            parsed = parse_segment(data)
        except SealFormatError:
            return None
        ctx = parsed.context
        if (
            ctx.device_id != self.identity.device_id
            or ctx.key_id != self.identity.key_id
            or segment_file_name(ctx.recording_id, ctx.segment_index) != name
        ):
            return None
        return parsed

    def _unsigned_tail(self, partial: Path, name: str, tail: bytes, keep_len: int) -> Path | None:
        """Set the bytes past the signed chunks aside and cut the partial back to them."""
        existing = self.segments_dir / (name + UNSIGNED)
        if tail:
            path = self.set_aside(name, tail)
            truncate_durable(partial, keep_len)
            return path
        if existing.exists():  # set aside by an earlier recovery that was cut short
            return existing
        return None

    def _manifest(
        self,
        parsed: ParsedSegment,
        name: str,
        stored_size: int,
        chunks: list[dict[str, Any]],
        recovered: bool,
        unsigned_path: Path | None,
    ) -> dict[str, Any]:
        ctx = parsed.context
        unsigned_tail = None
        if unsigned_path is not None:
            aside = unsigned_path.read_bytes()
            unsigned_tail = {
                "file": unsigned_path.name,
                "size": len(aside),
                "sha256": sha256_hex(aside),
            }
        end_us = chunks[-1]["end_us"] if chunks else ctx.start_us
        return manifest_fields(
            firmware_version=self.firmware_version,
            recording_id=ctx.recording_id,
            segment_index=ctx.segment_index,
            start_us=ctx.start_us,
            end_us=end_us,
            wall_start_us=ctx.wall_start_us,
            wall_end_us=ctx.wall_start_us + (end_us - ctx.start_us),
            wall_quality=ctx.wall_quality,
            trigger=ctx.trigger,
            file=name,
            agency_key_id=ctx.agency_key_id,  # the header's: what its segment key is sealed to
            header_sha256=parsed.header_sha256,
            stored_size=stored_size,
            chunks=chunks,
            recovered=recovered,
            unsigned_tail=unsigned_tail,
        )


def signed_prefix(records: list[SignedRecord], parsed: ParsedSegment) -> list[dict[str, Any]]:
    """The trail records of the segment's leading chunks that are on disk as signed: init
    first, in order, each with the cipher hash the trail names, up to a final chunk."""
    kept: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        rr = r.record
        expected_kind = "init" if i == 0 else rr["kind"]
        if (
            rr["chunk"] != i
            or i >= len(parsed.chunks)
            or rr["kind"] != expected_kind
            or (i > 0 and rr["kind"] == "init")
            or sha256_hex(parsed.chunks[i]) != rr["cipher_sha256"]
        ):
            break
        kept.append(rr)
        if rr["kind"] == "final":
            break
    return kept
