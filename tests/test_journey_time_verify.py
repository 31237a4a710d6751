"""The verifier on time: a segment whose wall end is before its wall start, or whose wall start
is before a dock-signed time sync that precedes it, is ``time_inconsistent``; a time sync's
dock signature is checked with the dock's key (else reported unchecked); every recording is
reported "recorded between T0 and T1 (UTC)", both bounds in the JSON report.

The outboxes are written by the real evidence sink and signed by the device key (a camera
whose clock lies, or anyone holding its key); the time answers are signed by a dock key
exactly as the dock signs them (dock/routes/time.py).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from crypto.evidence import EvidenceSink
from crypto.manifest import clock_step_fields, time_sync_fields
from crypto.testing import WALL0, S, agency_key, blob, device_identity, make_sink, segment_info
from crypto.time_answer import time_answer
from crypto.verify import verify_outbox
from crypto.verify.timecheck import apply_upper_bounds, recorded_between
from dock.protocol import canonical_json, key_id

DAY = 86_400 * S
DOCK = SigningKey(b"d" * 32)


def bwv(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


def outbox(tmp_path: Path) -> tuple[EvidenceSink, Path]:
    ident = device_identity()
    sink = make_sink(tmp_path, ident, agency_key())
    pub = tmp_path / "device.pub"
    pub.write_text(ident.public_key.hex() + "\n")
    (tmp_path / "dock.pub").write_text(bytes(DOCK.verify_key).hex() + "\n")
    return sink, pub


def time_sync(
    sink: EvidenceSink,
    capture_us: int,
    dock_time_us: int,
    applied: bool = True,
    forged: bool = False,
) -> int:
    """A dock's signed time answer, recorded by the device as it records one."""
    nonce = secrets.token_hex(16)
    device_wall = dock_time_us - 1_000
    answer = time_answer(
        sink.identity.device_id, nonce, device_wall, dock_time_us, key_id(bytes(DOCK.verify_key))
    )
    signer = SigningKey(b"x" * 32) if forged else DOCK
    sig = signer.sign(canonical_json(answer)).signature
    rec, _ = sink.chain.append(
        "time_sync",
        time_sync_fields(
            capture_us=capture_us,
            device_wall_us=device_wall,
            nonce=nonce,
            dock_time_us=dock_time_us,
            dock_key_id=answer["dock_key_id"],
            dock_signature=sig.hex(),
            offset_us=dock_time_us - device_wall,
            applied=applied,
            tsa_token=None,
        ),
    )
    return rec.seq


def one_segment(sink: EvidenceSink, rec_id: str, wall_start_us: int, wall_end_us: int) -> None:
    info = segment_info(rec_id, 0)
    info = type(info)(**{**info.__dict__, "wall_start_us": wall_start_us})
    sink.open_segment(info)
    sink.write_init(blob(rec_id + "/init", 64))
    sink.write_fragment(blob(rec_id + "/0", 200), info.start_us, info.start_us + S)
    sink.close_segment(info.start_us + 2 * S, wall_end_us)
    sink.end_recording(rec_id, "stopped", info.start_us + 2 * S)


def test_a_segment_whose_wall_end_is_before_its_wall_start_is_time_inconsistent(tmp_path):
    sink, pub = outbox(tmp_path)
    one_segment(sink, "backwards", WALL0 + 10 * S, WALL0 + 10 * S - 1)
    sink.close()
    r = bwv("verify", "--device-pub", pub, tmp_path / "outbox")
    assert r.exit_code == 1, r.output
    assert "time_inconsistent: segment backwards/0 ends" in r.output
    assert (
        "recording time not bounded by a trusted clock: no dock-signed time sync before it, "
        "no time-stamped checkpoint includes it"
    ) in r.output


def test_a_segment_claiming_a_time_before_a_dock_signed_sync_is_time_inconsistent(tmp_path):
    sink, pub = outbox(tmp_path)
    seq = time_sync(sink, capture_us=5 * S, dock_time_us=WALL0 + DAY)  # synced a day later
    one_segment(sink, "before", WALL0 + 10 * S, WALL0 + 12 * S)  # claims the day before
    sink.close()
    args = ("verify", "--device-pub", pub, "--dock-pub", tmp_path / "dock.pub")
    r = bwv(*args, tmp_path / "outbox")
    assert r.exit_code == 1, r.output
    assert "time_inconsistent: segment before/0 claims to start at" in r.output
    assert f"dock-signed time sync {seq}" in r.output
    report = json.loads(bwv(*args, "--json", tmp_path / "outbox").stdout)
    assert report["time_syncs"][0]["dock_signature"] == "valid"
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"time_inconsistent"}


def test_an_honest_recording_is_bounded_and_reported_between_t0_and_t1(tmp_path):
    sink, pub = outbox(tmp_path)
    time_sync(sink, capture_us=5 * S, dock_time_us=WALL0 + 9 * S)
    one_segment(sink, "honest", WALL0 + 10 * S, WALL0 + 12 * S)
    sink.close()
    args = ("verify", "--device-pub", pub, "--dock-pub", tmp_path / "dock.pub")
    r = bwv(*args, tmp_path / "outbox")
    assert r.exit_code == 0, r.output
    assert "recorded after 2023-11-14 22:13:29 (UTC); no upper bound" in r.output
    rec = json.loads(bwv(*args, "--json", tmp_path / "outbox").stdout)["recordings"][0]
    assert rec["recorded_after_us"] == WALL0 + 9 * S and rec["recorded_before_us"] is None
    assert rec["wall_start_us"] == WALL0 + 10 * S and rec["wall_quality"] == "unsynced"
    # the upper bound (the RFC 3161 time of the first checkpoint that includes it)
    report = verify_outbox(tmp_path / "outbox", device_identity().public_key)
    apply_upper_bounds(report, {"honest": WALL0 + 60 * S})
    assert report.ok and recorded_between(report.recordings[0]) == (
        "recorded between 2023-11-14 22:13:29 and 2023-11-14 22:14:20 (UTC)"
    )
    apply_upper_bounds(report, {"honest": WALL0 + 11 * S})  # stamped before it claims to end
    assert not report.ok and report.findings[-1].kind == "time_inconsistent"


def test_a_forged_dock_signature_is_found_with_the_dock_key_and_unchecked_without(tmp_path):
    sink, pub = outbox(tmp_path)
    time_sync(sink, capture_us=5 * S, dock_time_us=WALL0 + 9 * S, forged=True)
    one_segment(sink, "forged", WALL0 + 10 * S, WALL0 + 12 * S)
    sink.close()
    r = bwv("verify", "--device-pub", pub, "--dock-pub", tmp_path / "dock.pub", tmp_path / "outbox")
    assert r.exit_code == 1 and "does not verify under the dock key given" in r.output
    r = bwv("verify", "--json", "--device-pub", pub, tmp_path / "outbox")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["time_syncs"][0]["dock_signature"] == "unchecked"


def test_a_clock_step_must_apply_an_applied_sync_by_its_offset(tmp_path):
    sink, pub = outbox(tmp_path)
    seq = time_sync(sink, capture_us=5 * S, dock_time_us=WALL0 + 9 * S, applied=False)
    sink.chain.append(
        "clock_step",
        clock_step_fields(
            capture_us=5 * S, from_wall_us=WALL0, to_wall_us=WALL0 + 1_000, time_sync_seq=seq
        ),
    )
    one_segment(sink, "stepped", WALL0 + 10 * S, WALL0 + 12 * S)
    sink.close()
    r = bwv("verify", "--device-pub", pub, tmp_path / "outbox")
    assert r.exit_code == 1
    assert f"applies time sync {seq}, which the device refused" in r.output
