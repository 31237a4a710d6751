"""The evidence sink on the device: durable, signed, chained, encrypted; and its recovery
after a crash (a killed process, a pulled battery, a full disk)."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

import crypto.evidence as evidence_mod
from crypto.digests import plain_digest_from
from crypto.evidence import EvidenceSink
from crypto.manifest import ChainStateError
from crypto.records import sha256_hex
from crypto.seal import decrypt_segment, parse_segment
from crypto.testing import (
    WALL0,
    S,
    Written,
    agency_key,
    device_identity,
    make_sink,
    write_recording,
    write_segment,
)
from crypto.trail import TRAIL_NAME, read_trail
from crypto.verify import read_outbox, verify_outbox


class Killed(BaseException):
    """The process dies here (not an error anyone handles)."""


@pytest.fixture
def dev(tmp_path):
    return tmp_path, device_identity(), agency_key()


def _report(root, ident, agency, **kw):
    return verify_outbox(root / "outbox", ident.public_key, agency, **kw)


def _seg(report, rec, idx):
    return next(s for s in report.segments if s.recording_id == rec and s.segment_index == idx)


def _kinds(report):
    return {f.kind for f in report.findings}


def test_recordings_verify_decrypt_and_leave_no_plaintext(dev):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    a = write_recording(sink, "recA", segments=2, fragments=3)
    b = write_recording(sink, "recB", segments=1, fragments=2)
    sink.close()
    rep = _report(root, ident, agency)
    assert rep.ok, rep.findings
    assert [r.status for r in rep.recordings] == ["complete", "complete"]
    assert all(s.decrypted for s in rep.segments)
    files = read_outbox(root / "outbox")
    assert sorted(files) == [
        "chain/000000000000.manifest.json",
        "chain/000000000001.manifest.json",
        "chain/000000000002.end.json",
        "chain/000000000003.manifest.json",
        "chain/000000000004.end.json",
        "segments/recA_0000.bwvseg",
        "segments/recA_0001.bwvseg",
        "segments/recB_0000.bwvseg",
        TRAIL_NAME,
    ]
    everything = b"".join(files.values()) + (root / "state" / "chain.json").read_bytes()
    for w in (a, b):
        for idx, blobs in w.blobs.items():
            d = decrypt_segment(w.paths[idx].read_bytes(), agency)
            assert d.final and d.error is None and d.blobs == blobs
            for blob in blobs:
                assert blob[:32] not in everything  # plaintext never touches the disk
    # one trail record per chunk: init + fragments + final
    trail = read_trail(files[TRAIL_NAME], ident.public_key)
    assert not trail.bad and [r.seq for r in trail.records] == list(range(5 + 5 + 4))
    m = json.loads(files["chain/000000000001.manifest.json"])["record"]
    assert m["seq"] == 1 and m["segment_index"] == 1 and m["truncated"] is False
    assert m["prev_sha256"] is not None and m["firmware_version"] == "bwv-test-1"
    assert m["trigger"] == {"press_us": 12 * S, "pre_record_start_us": 10 * S, "press_frame": 360}
    assert m["wall_quality"] == "unsynced" and m["wall_start_us"] == WALL0 + m["start_us"]


def test_sequence_numbers_continue_across_restarts_and_never_repeat(dev):
    root, ident, agency = dev
    for n in range(3):
        sink = make_sink(root, ident, agency)
        assert sink.recover() == []
        write_recording(sink, f"rec{n}", segments=1, fragments=1)
        sink.close()
    rep = _report(root, ident, agency)
    assert rep.ok, rep.findings
    seqs = sorted(int(p.name[:12]) for p in (root / "outbox" / "chain").iterdir())
    assert seqs == list(range(6))
    state_file = root / "state" / "chain.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    # the state file lost: rebuilt from the chain directory, numbering goes on
    state_file.unlink()
    sink = make_sink(root, ident, agency)
    assert sink.chain.rebuilt and sink.chain.state.next_seq == 6
    write_recording(sink, "rec9", segments=1, fragments=1)
    sink.close()
    assert _report(root, ident, agency).ok

    # an unreadable state file stops the device from signing rather than reuse a number
    state_file.write_bytes(b"{garbage")
    with pytest.raises(ChainStateError, match="refusing to sign"):
        make_sink(root, ident, agency)


def test_killed_after_k_fragments_verifies_up_to_the_last_signed_fragment(dev):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    w = Written("recK")
    write_segment(sink, w, 0, fragments=2)
    write_segment(sink, w, 1, fragments=3, close=False)  # killed here: never closed
    del sink  # abandoned (its files are closed by the garbage collector)

    sink = make_sink(root, ident, agency)
    published = sink.recover()
    assert [p.name for p in published] == ["recK_0001.bwvseg"]
    (r,) = sink.last_recovery
    assert r.signed_chunks == 4 and r.truncated and r.unsigned_bytes == 0
    sink.close()
    rep = _report(root, ident, agency)
    assert not rep.ok
    seg = _seg(rep, "recK", 1)
    assert seg.status == "authentic" and seg.truncated and seg.decrypted
    assert [c.status for c in seg.chunks] == ["authentic"] * 4
    assert [c.kind for c in seg.chunks] == ["init", "fragment", "fragment", "fragment"]
    assert _seg(rep, "recK", 0).status == "authentic"
    (rec,) = rep.recordings
    assert rec.status == "ended_early" and rec.end_reason == "interrupted"
    assert _kinds(rep) == {"truncated", "ended_early"}
    d = decrypt_segment(published[0].read_bytes(), agency)
    assert d.blobs == w.blobs[1] and not d.final and d.error is None


def test_power_cut_mid_fragment_sets_the_unsigned_bytes_aside_and_names_them(dev, monkeypatch):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    w = Written("recP")
    write_segment(sink, w, 0, fragments=2, close=False)
    # the next fragment reaches the disk, the power goes before its trail record does
    real_append = sink.trail.append

    def dies(fields):
        raise Killed

    monkeypatch.setattr(sink.trail, "append", dies)
    with pytest.raises(Killed):
        sink.write_fragment(b"unsigned fragment" * 20, 12 * S, 13 * S)
    monkeypatch.setattr(sink.trail, "append", real_append)
    partial = root / "outbox" / "segments" / "recP_0000.bwvseg.partial"
    with open(partial, "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")  # and half of one more chunk
    with open(root / "outbox" / TRAIL_NAME, "ab") as f:
        f.write(b'{"record":{"chunk":4,')  # a torn trail line
    del sink

    sink = make_sink(root, ident, agency)
    assert sink.trail.repaired_torn_line
    (path,) = sink.recover()
    (r,) = sink.last_recovery
    assert r.signed_chunks == 3 and r.truncated and r.unsigned_path is not None
    assert r.unsigned_path.name == "recP_0000.bwvseg.unsigned"
    sink.close()
    rep = _report(root, ident, agency)
    seg = _seg(rep, "recP", 0)
    assert seg.status == "authentic" and seg.truncated
    assert [c.status for c in seg.chunks] == ["authentic"] * 3 + ["unsigned"] * 2
    assert "torn" in seg.chunks[-1].detail
    assert {"unsigned", "truncated", "torn", "ended_early"} <= _kinds(rep)
    unsigned = [f for f in rep.findings if f.kind == "unsigned"]
    assert unsigned[0].file == "segments/recP_0000.bwvseg.unsigned"
    assert not rep.ok
    # the set-aside bytes are the same stream: the agency can still read them, unsigned
    d = decrypt_segment(path.read_bytes() + r.unsigned_path.read_bytes(), agency)
    assert d.blobs[:3] == w.blobs[0] and d.blobs[3] == b"unsigned fragment" * 20


def test_crash_between_manifest_and_state_adopts_the_manifest(dev, monkeypatch):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    w = Written("recM")
    write_segment(sink, w, 0, fragments=1)
    write_segment(sink, w, 1, fragments=1, close=False)

    def dies():
        raise Killed

    monkeypatch.setattr(sink.chain, "_save", dies)
    with pytest.raises(Killed):
        sink.close_segment(13 * S, WALL0 + 13 * S)
    del sink
    sink = make_sink(root, ident, agency)
    assert sink.chain.adopted == [1] and sink.chain.state.next_seq == 2
    (path,) = sink.recover()  # only the rename was missing
    assert path.name == "recM_0001.bwvseg"
    write_recording(sink, "recN", segments=1, fragments=1)
    sink.close()
    rep = _report(root, ident, agency)
    assert _kinds(rep) == {"ended_early"}  # recM was found open; nothing else is wrong
    assert all(s.status == "authentic" and not s.truncated for s in rep.segments)
    assert [r.status for r in rep.recordings] == ["ended_early", "complete"]


def test_crash_before_the_init_is_signed_keeps_the_bytes(dev):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    w = Written("recE")
    write_segment(sink, w, 0, fragments=1)
    from crypto.testing import segment_info

    sink.open_segment(segment_info("recE", 1))
    del sink
    sink = make_sink(root, ident, agency)
    (path,) = sink.recover()
    assert sink.last_recovery[0].signed_chunks == 0
    assert len(parse_segment(path.read_bytes()).chunks) == 0
    sink.close()
    rep = _report(root, ident, agency)
    seg = _seg(rep, "recE", 1)
    assert seg.status == "authentic" and seg.truncated and seg.chunks == []
    assert [r.status for r in rep.recordings] == ["ended_early"]


def test_full_disk_aborts_to_the_signed_fragments_and_the_recording_resumes(dev, monkeypatch):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    w = Written("recD")
    real = evidence_mod.append_durable
    calls = {"n": 0}

    def filling(f, *data):
        calls["n"] += 1
        if calls["n"] == 4:  # header, init, fragment 0, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(f, *data)

    monkeypatch.setattr(evidence_mod, "append_durable", filling)
    with pytest.raises(OSError):
        write_segment(sink, w, 0, fragments=3)
    with pytest.raises(RuntimeError, match="abort"):
        sink.write_fragment(b"more", 0, 1)
    path = sink.abort_segment()
    assert path is not None and path.name == "recD_0000.bwvseg"
    sink.end_recording("recD", "storage_fault", 12 * S)
    monkeypatch.setattr(evidence_mod, "append_durable", real)
    write_segment(sink, w, 1, fragments=2)  # space came back: the same recording goes on
    sink.end_recording("recD", "stopped", 20 * S)
    sink.close()
    rep = _report(root, ident, agency)
    s0, s1 = _seg(rep, "recD", 0), _seg(rep, "recD", 1)
    assert s0.status == "authentic" and s0.truncated and len(s0.chunks) == 2
    assert s1.status == "authentic" and not s1.truncated
    assert _kinds(rep) == {"truncated", "ended_early"}
    (rec,) = rep.recordings
    assert rec.status == "incomplete" and rec.end_reason == "stopped"
    d = decrypt_segment(path.read_bytes(), agency)
    assert d.blobs == w.blobs[0][:2] and not d.final
    m = json.loads((root / "outbox/chain/000000000000.manifest.json").read_bytes())["record"]
    # its plain digest names the two blobs that were written, and it was no crash
    assert m["plain_digest"] == plain_digest_from(sha256_hex(b) for b in w.blobs[0][:2])
    assert m["recovered"] is False


def test_misuse_is_refused(dev):
    root, ident, agency = dev
    sink = make_sink(root, ident, agency)
    from crypto.testing import segment_info

    with pytest.raises(RuntimeError):
        sink.write_init(b"x")
    with pytest.raises(ValueError):
        sink.open_segment(segment_info("../evil", 0))
    sink.open_segment(segment_info("r1", 0))
    with pytest.raises(RuntimeError):
        sink.write_fragment(b"x", 0, 1)  # before the init
    with pytest.raises(RuntimeError):
        sink.open_segment(segment_info("r1", 1))
    with pytest.raises(RuntimeError):
        sink.recover()
    sink.write_init(b"i")
    sink.close_segment(1, 1)
    with pytest.raises(FileExistsError):
        sink.open_segment(segment_info("r1", 0))  # never overwrite a stored segment
    sink.close()
    assert isinstance(sink, EvidenceSink)
