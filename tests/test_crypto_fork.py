"""A forked chain: one device key signing in two outboxes (a cloned SD card, a restored
backup). Each record is validly signed and numbered, so only the ``prev_sha256`` links show
that records 0-1 and 2-3 come from two different histories; the verifier must say so even
when no trail is given and none is required."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.testing import agency_key, device_identity, make_sink, write_recording
from crypto.verify import Report, read_outbox, verify

AGENCY = agency_key()
DEV = device_identity("cam-fork")


def _chain_and_segments(files: dict[str, bytes]) -> dict[str, bytes]:
    return {n: b for n, b in files.items() if n.startswith(("chain/", "segments/"))}


@pytest.fixture(scope="module")
def outboxes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], ...]:
    """Outbox A: recording recA (chain records 0, 1). Outbox B, same key, its own chain:
    recording recX (records 0, 1), then recB (records 2, 3)."""
    a: Path = tmp_path_factory.mktemp("a")
    sink = make_sink(a, DEV, AGENCY)
    write_recording(sink, "recA", segments=1, fragments=2, size=64)
    sink.close()
    b: Path = tmp_path_factory.mktemp("b")
    sink = make_sink(b, DEV, AGENCY)
    write_recording(sink, "recX", segments=1, fragments=2, size=64)
    write_recording(sink, "recB", segments=1, fragments=2, size=64)
    sink.close()
    return read_outbox(a / "outbox"), read_outbox(b / "outbox")


def _forked(outboxes: tuple[dict[str, bytes], ...]) -> dict[str, bytes]:
    """A's records 0-1 and recA's file, then B's records 2-3 and recB's file."""
    a, b = (_chain_and_segments(o) for o in outboxes)
    files = dict(a)
    taken = ("chain/000000000002.manifest.json", "chain/000000000003.end.json")
    files |= {n: d for n, d in b.items() if n in taken or n.startswith("segments/recB_")}
    assert sorted(n for n in files if n.startswith("chain/")) == [
        "chain/000000000000.manifest.json",
        "chain/000000000001.end.json",
        "chain/000000000002.manifest.json",
        "chain/000000000003.end.json",
    ]
    return files


def _verify(files: dict[str, bytes]) -> Report:
    return verify(files, DEV.public_key, AGENCY, require_trail=False)


def test_each_history_alone_verifies(outboxes: tuple[dict[str, bytes], ...]) -> None:
    """The control: without the fork, the same kind of input (no trail) is clean."""
    for files in outboxes:
        rep = _verify(_chain_and_segments(files))
        assert rep.ok, rep.findings


def test_a_forked_chain_is_reported_as_a_break(outboxes: tuple[dict[str, bytes], ...]) -> None:
    rep = _verify(_forked(outboxes))
    assert not rep.ok
    breaks = [f for f in rep.findings if f.kind == "chain_break"]
    assert [(f.seq, f.file) for f in breaks] == [(2, "chain/000000000002.manifest.json")]
    assert "does not name record 1" in breaks[0].detail
    # every record and segment is otherwise genuine: the link is the only thing that tells
    assert [f.kind for f in rep.findings] == ["chain_break"]
    assert all(s.status == "authentic" for s in rep.segments)
