"""Issue 10, point 7: precise verdicts. Two different signed records for one sequence number
(a forked history: a cloned card, a restored backup) are `equivocation`, not "duplicate";
trail lines that were dropped are `trail_missing`, while the chunks the manifest signs stay
authentic (not "unsigned")."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.testing import agency_key, device_identity, make_sink, write_recording
from crypto.trail import TRAIL_NAME, split_lines
from crypto.verify import read_outbox, verify

AGENCY = agency_key()
DEV = device_identity("cam-verdicts")


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], ...]:
    """Two outboxes of one device key, each its own history from seq 0."""
    out = []
    for rec in ("recA", "recB"):
        root: Path = tmp_path_factory.mktemp(rec)
        sink = make_sink(root, DEV, AGENCY)
        write_recording(sink, rec, segments=1, fragments=2, size=64)
        sink.close()
        out.append(read_outbox(root / "outbox"))
    return tuple(out)


def _kinds(files: dict[str, bytes]) -> list[str]:
    return [f.kind for f in verify(files, DEV.public_key, AGENCY).findings]


def test_the_control_verifies(histories):
    assert _kinds(histories[0]) == []


def test_a_second_chain_record_for_one_seq_is_equivocation(histories):
    a, b = histories
    files = dict(a)
    files["fork/000000000000.manifest.json"] = b["chain/000000000000.manifest.json"]
    kinds = _kinds(files)
    assert "equivocation" in kinds and "duplicate" not in kinds
    same = dict(a)  # the same record twice is a duplicate, not a fork
    same["copy/000000000000.manifest.json"] = a["chain/000000000000.manifest.json"]
    assert "duplicate" in _kinds(same) and "equivocation" not in _kinds(same)


def test_a_second_trail_line_for_one_seq_is_equivocation(histories):
    a, b = histories
    files = dict(a)
    first_b = next(line for _, line in split_lines(b[TRAIL_NAME]))
    files[TRAIL_NAME] = a[TRAIL_NAME] + first_b
    kinds = _kinds(files)
    assert "equivocation" in kinds and "duplicate" not in kinds


def test_dropped_trail_lines_are_trail_missing_and_the_chunks_stay_authentic(histories):
    a, _ = histories
    files = dict(a)
    lines = [line for _, line in split_lines(a[TRAIL_NAME])]
    files[TRAIL_NAME] = lines[0] + b"".join(lines[3:])  # lines 1 and 2 dropped
    rep = verify(files, DEV.public_key, AGENCY)
    kinds = {f.kind for f in rep.findings}
    assert kinds == {"trail_missing"}, rep.findings
    assert all(c.status == "authentic" for s in rep.segments for c in s.chunks)
    assert not rep.ok


def test_an_mp4_with_its_own_fragments_swapped_is_lined_up_chunk_by_chunk(tmp_path):
    """A segment's MP4 holding only its own pieces, out of order, is not "another segment"
    (docs/evidence-format.md, "Checking a decrypted segment", 4): its chunks are lined up,
    the longest run in signed order authentic, the rest reordered. (Found by the browser
    verifier, written independently from the specification: both now agree.)"""
    import shutil

    from capture.fmp4 import iter_boxes
    from crypto.verify.exhibit import verify_exhibit_path

    vectors = Path(__file__).parent / "vectors" / "exhibit"
    bundle = tmp_path / "swapped"
    shutil.copytree(vectors / "pristine", bundle)
    mp4 = bundle / "vec-r1_0000.mp4"
    data = mp4.read_bytes()
    moofs = [off for kind, off, _ in iter_boxes(data) if kind == "moof"]
    assert len(moofs) == 2
    init, f1, f2 = data[: moofs[0]], data[moofs[0] : moofs[1]], data[moofs[1] :]
    mp4.write_bytes(init + f2 + f1)
    pub = (vectors / "device_a.pub").read_text().strip()
    report = verify_exhibit_path(bundle, bytes.fromhex(pub))
    seg = next(s for s in report.segments if s.segment_index == 0)
    statuses = sorted((c.chunk, c.status) for c in seg.chunks if c.chunk is not None)
    assert statuses[0] == (0, "authentic") and statuses[-1] == (3, "authentic")
    assert sorted(st for _, st in statuses[1:3]) == ["authentic", "reordered"]
    assert seg.status == "reordered" and not report.ok
