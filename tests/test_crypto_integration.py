"""The simulated device records through the evidence sink: real fMP4 blobs from the segment
writer are encrypted, signed and chained; the agency decrypts them to playable segments."""

from __future__ import annotations

from capture.storage import LocalStorage
from crypto.seal import decrypt_segment
from crypto.testing import agency_key, device_identity, make_sink
from crypto.verify import verify_outbox
from simulator.device import SimDevice
from simulator.readback import read_segments

S = 1_000_000


def test_simulated_recording_through_the_evidence_sink(tmp_path, small_cfg):
    ident = device_identity(small_cfg.device_id)
    agency = agency_key()
    sink = make_sink(tmp_path, ident, agency)
    dev = SimDevice(small_cfg, LocalStorage(tmp_path / "outbox"), sink=sink)
    dev.run_until(4 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(9 * S)
    dev.recorder.stop(dev.now_us)
    dev.run_until(11 * S)
    sink.close()

    report = verify_outbox(tmp_path / "outbox", ident.public_key, agency)
    assert report.ok, report.findings
    assert len(report.segments) >= 3 and all(s.decrypted for s in report.segments)
    (rec,) = report.recordings
    assert rec.status == "complete" and rec.end_reason == "stopped"

    plain = []
    for seg in report.segments:
        d = decrypt_segment((tmp_path / "outbox" / seg.file).read_bytes(), agency)
        assert d.final and d.error is None
        out = tmp_path / "plain" / seg.file.replace(".bwvseg", ".mp4")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(d.plaintext)
        plain.append(out)
    idx = read_segments(plain, with_audio=False).indices
    assert idx == list(range(idx[0], idx[0] + len(idx)))  # every frame, once, in order
