"""Hand a device's evidence over: what the dock holds, laid out as the device's outbox.

``export_device`` writes ``chain/<seq:012d>.<type>.json`` and ``segments/<file>`` (crypto/
FORMAT.md, "Outbox") so that crypto/'s offline verifier checks the dock's holdings exactly as
it checks a camera's outbox (without the trail, which stays on the device);
``export_custody_log`` writes the custody-log entries about the device, one JSON object a
line, for the auditor (with ``verify_custody_log`` and the dock's public key).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from crypto.evidence import SEGMENTS_DIR
from crypto.manifest import CHAIN_DIR, chain_file_name
from dock.store import DirectoryStore, blob_key, manifest_key
from dock.verify import ChainRecordVerifier


def export_device(store: DirectoryStore, device_id: str, out: Path) -> list[Path]:
    """Copy every record and segment the dock holds for ``device_id`` into ``out``."""
    out = Path(out)
    (out / CHAIN_DIR).mkdir(parents=True, exist_ok=True)
    (out / SEGMENTS_DIR).mkdir(exist_ok=True)
    verifier = ChainRecordVerifier()
    written = []
    for held in store.held_segments(device_id):
        with store.open_object(manifest_key(device_id, held.segment_id)) as f:
            line = f.read()
        fields = verifier.parse(line)
        path = out / CHAIN_DIR / chain_file_name(fields.seq, fields.record_type)
        path.write_bytes(line)
        written.append(path)
        if fields.record_type == "manifest":
            dst = out / SEGMENTS_DIR / Path(str(fields.raw["file"])).name
            with (
                store.open_object(blob_key(device_id, held.segment_id)) as src,
                open(dst, "wb") as f,
            ):
                shutil.copyfileobj(src, f, 1 << 20)
            written.append(dst)
    return written


def export_custody_log(store: DirectoryStore, path: Path, device_id: str | None = None) -> int:
    """Write the custody log (all of it, or the entries about ``device_id``) as JSON lines.
    A device's entries alone do not chain; the whole log does."""
    n = 0
    with open(path, "w") as f:
        for e in store.custody_log(limit=10**9):
            if device_id is None or e.device_id == device_id:
                f.write(json.dumps(asdict(e), sort_keys=True) + "\n")
                n += 1
    return n
