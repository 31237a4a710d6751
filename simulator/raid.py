"""The scripted raid: boot, buffer, press once more than the pre-record window has passed,
record, hold to stop; then write ``summary.json`` and check that everything expected was
recorded."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from capture.config import Config
from capture.recorder import Recording
from crypto.seal import decrypt_segment
from crypto.verify import verify_outbox
from simulator.device import SimDevice, make_device


@dataclass(frozen=True)
class RaidPlan:
    record_s: float = 20.0
    boot_s: float = 1.0
    settle_s: float = 1.5  # press this long after the pre-record window has filled


@dataclass
class RaidResult:
    summary: dict
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _s(x: float) -> int:
    return int(round(x * 1_000_000))


def run_raid(cfg: Config, out: Path, plan: RaidPlan, realtime: bool = False,
             wall_epoch_us: int | None = None) -> RaidResult:
    """``wall_epoch_us``: the wall-clock time at power-on (default: a fixed instant, so runs
    are reproducible)."""
    out.mkdir(parents=True, exist_ok=True)
    state = out / "device"
    extra = {} if wall_epoch_us is None else {"wall_epoch_us": wall_epoch_us}
    dev: SimDevice = make_device(cfg, state, realtime=realtime, boot_us=_s(plan.boot_s),
                                 **extra)
    hold_us = _s(cfg.controls.hold_to_stop_s)
    press_at = _s(plan.boot_s + cfg.pre_record.seconds + plan.settle_s)
    dev.run_until(press_at)
    dev.button(down=True)  # one press
    dev.run_until(press_at + _s(0.15))
    dev.button(down=False)
    dev.run_until(press_at + _s(plan.record_s))
    dev.button(down=True)  # hold to stop
    dev.run_until(dev.now_us + hold_us + _s(0.2))
    dev.button(down=False)
    dev.run_until(dev.now_us + _s(1.0))
    dev.shutdown()
    return _summarise(cfg, out, dev)


def _summarise(cfg: Config, out: Path, dev: SimDevice) -> RaidResult:
    problems: list[str] = []
    recordings = []
    play = out / "recordings"
    play.mkdir(exist_ok=True)
    agency_sk = dev.keys.agency_private() if dev.keys else None
    for rec in dev.recorder.recordings:
        recordings.append(_recording_entry(cfg, out, play, dev, rec, problems, agency_sk))
    verification = None
    if dev.keys is not None:
        report = verify_outbox(dev.storage.root, dev.keys.identity.public_key, agency_sk,
                               device_id=cfg.device_id)
        verification = report.to_json()
        if not report.ok:
            problems.append("verification failed: " + "; ".join(
                f"{f.kind}: {f.detail}" for f in report.findings[:5]))
    evidence = sorted(
        str(p.relative_to(out)) for p in dev.storage.root.rglob("*") if p.is_file()
    )
    if len(recordings) != 1:
        problems.append(f"expected 1 recording, found {len(recordings)}")
    summary = {
        "device_id": cfg.device_id,
        "config": {
            "pre_record_s": cfg.pre_record.seconds,
            "size": f"{cfg.video.width}x{cfg.video.height}",
            "fps": cfg.video.fps,
            "gop": cfg.video.gop,
            "segment_s": cfg.segments.seconds,
        },
        "camera_dropped_frames": dev.camera.dropped,
        "recordings": recordings,
        "verified": bool(verification and verification["ok"]),
        "verification": verification,
        "evidence": evidence,
        "keys": {
            "device_public_key": str(dev.keys.device_pub_path.relative_to(out)),
            "agency_private_key": str(dev.keys.agency_private_path.relative_to(out)),
        } if dev.keys else None,
        "events": [{"at_us": e.at_us, "kind": e.kind, "detail": e.detail} for e in dev.events],
        "problems": problems,
        "ok": not problems,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RaidResult(summary, problems)


def _recording_entry(cfg: Config, out: Path, play: Path, dev: SimDevice, rec: Recording,
                     problems: list[str], agency_sk) -> dict:
    segs = [s for s in rec.segments if s.path is not None and s.frames]
    frames = sum(s.frames for s in segs)
    first = segs[0].first_frame if segs else None
    last = segs[-1].last_frame if segs else None
    dropped = (last - first + 1 - frames) if segs else 0
    paths = []
    for s in segs:
        dest = play / (s.path.name.split(".")[0] + ".mp4")
        if agency_sk is None:  # plain files: already playable
            shutil.copyfile(s.path, dest)
        else:  # the agency's view: decrypt the stored segment into a playable copy
            dec = decrypt_segment(s.path.read_bytes(), agency_sk)
            if dec.error:
                problems.append(f"{s.path.name}: cannot decrypt: {dec.error}")
            dest.write_bytes(dec.plaintext)
        paths.append(str(dest.relative_to(out)))
    fps, gop = cfg.video.fps, cfg.video.gop
    pre_frames = int(round(cfg.pre_record.seconds * fps))
    if rec.press_frame is None or first is None:
        problems.append(f"recording {rec.id}: nothing recorded")
    else:
        if first > rec.press_frame - pre_frames:
            problems.append(f"recording {rec.id}: pre-record short: first frame {first}, "
                            f"press at frame {rec.press_frame}")
        if first < rec.press_frame - pre_frames - gop:
            problems.append(f"recording {rec.id}: pre-record longer than one GOP extra")
        stop_frame = dev.camera.index_at(rec.stop_us or 0)
        if last is None or last < stop_frame - 1:
            problems.append(f"recording {rec.id}: ends at frame {last}, stop was at {stop_frame}")
    if dropped:
        problems.append(f"recording {rec.id}: {dropped} frames missing")
    if rec.faults:
        problems.append(f"recording {rec.id}: faults: {'; '.join(rec.faults)}")
    return {
        "id": rec.id,
        "press_frame": rec.press_frame,
        "first_frame": first,
        "last_frame": last,
        "dropped_frames": dropped,
        "segments": paths,
        "end_reason": rec.end_reason,
    }


def run_record(cfg: Config, state: Path, seconds: float, emit) -> SimDevice:
    """Boot, press as soon as possible and record for ``seconds``, reporting every event
    through ``emit`` as it happens (used to kill a recording device on purpose)."""
    dev = make_device(cfg, state, on_event=emit)
    dev.button(down=True)  # pressed while booting: honoured once frames flow
    dev.run_until(dev.boot_us + _s(seconds))
    dev.shutdown()
    return dev
