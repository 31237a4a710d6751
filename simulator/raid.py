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
from crypto.verify import verify, verify_outbox
from simulator.device import SimDevice, make_device
from simulator.raid_log import (
    Authorities,
    dock_log_identity,
    fetch_latest,
    pin_witness,
    running_authorities,
)
from simulator.soft_tpm import SoftTpm

# what a raid writes into its --out folder
RAID_ENTRIES = frozenset(
    {"agency", "device", "dock", "exhibits", "recordings", "summary.json", "tsa", "witness"}
)


class RaidOutError(Exception):
    """The --out folder cannot take a raid (one line, for the user)."""


def prepare_out(out: Path) -> bool:
    """Make ``out`` ready for a raid, as ``git clone`` would, but knowing its own output: a
    new or empty folder is used as it is; an earlier raid's folder is emptied (returns True,
    so the caller says so); a folder holding anything else is refused."""
    try:
        if not out.exists():
            return False
        if not out.is_dir():
            raise RaidOutError(f"{out} is not a folder")
        entries = sorted(out.iterdir())
        if not entries:
            return False
        foreign = [p.name for p in entries if p.name not in RAID_ENTRIES]
        if foreign or not (out / "device" / "keys").is_dir():
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise RaidOutError(
                f"{out} is not empty and not an earlier raid's folder"
                + (f" (it holds {shown})" if foreign else "")
                + ": give a new or empty folder"
            )
        for p in entries:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return True
    except OSError as exc:
        raise RaidOutError(f"cannot use {out}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class RaidPlan:
    record_s: float = 20.0
    boot_s: float = 1.0
    settle_s: float = 1.5  # press this long after the pre-record window has filled

    def lasts_us(self, cfg: Config) -> int:
        """How long the raid lasts on the camera's clock, power-on to shutdown (and a
        second): a raid simulated faster than real time starts that long before now, so
        that its recording is over, by the wall clock, when the camera docks and the dock's
        log is time-stamped (RFC 3161 time is real)."""
        held = cfg.controls.hold_to_stop_s + 0.2 + 1.0
        lasts = self.boot_s + cfg.pre_record.seconds + self.settle_s + self.record_s + held
        return _s(lasts + 1.0)


@dataclass
class RaidResult:
    summary: dict
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _s(x: float) -> int:
    return int(round(x * 1_000_000))


def run_raid(
    cfg: Config,
    out: Path,
    plan: RaidPlan,
    realtime: bool = False,
    wall_epoch_us: int | None = None,
    key_store: str = "file",
) -> RaidResult:
    """``wall_epoch_us``: the wall-clock time at power-on (default: a fixed instant, so runs
    are reproducible). ``key_store="tpm"``: the device key lives in a software TPM (swtpm,
    in ``OUT/tpm``) and the dock enrols it on the TPM's attestation."""
    out.mkdir(parents=True, exist_ok=True)
    if key_store != "tpm":
        return _raid(cfg, out, plan, realtime, wall_epoch_us, None)
    from simulator.soft_tpm import soft_tpm

    with soft_tpm(out / "tpm") as tpm:
        return _raid(cfg, out, plan, realtime, wall_epoch_us, tpm)


def _raid(
    cfg: Config,
    out: Path,
    plan: RaidPlan,
    realtime: bool,
    wall_epoch_us: int | None,
    tpm: SoftTpm | None,
) -> RaidResult:
    state = out / "device"
    extra = {} if wall_epoch_us is None else {"wall_epoch_us": wall_epoch_us}
    dev: SimDevice = make_device(
        cfg,
        state,
        realtime=realtime,
        agency_dir=out / "agency",
        boot_us=_s(plan.boot_s),
        tpm_tcti=tpm.tcti if tpm else None,
        tpm_ca_certs=tpm.ca_certs if tpm else (),
        **extra,
    )
    try:
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
    finally:
        if dev.keys is not None:
            dev.keys.close()


def _summarise(cfg: Config, out: Path, dev: SimDevice) -> RaidResult:
    problems: list[str] = []
    agency_sk = dev.keys.agency_private() if dev.keys else None
    summary: dict = {
        "device_id": cfg.device_id,
        "config": {
            "pre_record_s": cfg.pre_record.seconds,
            "size": f"{cfg.video.width}x{cfg.video.height}",
            "fps": cfg.video.fps,
            "gop": cfg.video.gop,
            "segment_s": cfg.segments.seconds,
        },
        "camera_dropped_frames": dev.camera.dropped,
    }
    if dev.keys is None:  # plain files: playable as they are
        play = out / "recordings"
        play.mkdir(exist_ok=True)
        recordings = [
            _recording_entry(cfg, dev, rec, problems, _copy_plain(out, play, rec))
            for rec in dev.recorder.recordings
        ]
    else:
        recordings = _ship_and_export(cfg, out, dev, agency_sk, summary, problems)
    if len(recordings) != 1:
        problems.append(f"expected 1 recording, found {len(recordings)}")
    summary["recordings"] = recordings
    summary["events"] = [{"at_us": e.at_us, "kind": e.kind, "detail": e.detail} for e in dev.events]
    summary["problems"] = problems
    summary["ok"] = not problems
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RaidResult(summary, problems)


def _copy_plain(out: Path, play: Path, rec: Recording) -> list[str]:
    paths = []
    for s in rec.segments:
        if s.path is not None and s.frames:
            dest = play / s.path.name
            shutil.copyfile(s.path, dest)
            paths.append(str(dest.relative_to(out)))
    return paths


def _ship_and_export(
    cfg: Config,
    out: Path,
    dev: SimDevice,
    agency_sk,
    summary: dict,
    problems: list[str],
) -> list[dict]:
    """Dock, ship, verify at the dock, export each recording as an exhibit: the evidence as
    an investigator gets it."""
    from bwv.verify_raid import EXHIBITS_DIR, raid_evidence
    from dock.export import export_recording
    from simulator.docking import visit_dock

    assert dev.keys is not None
    device_report = verify_outbox(
        dev.storage.root, dev.keys.identity.public_key, agency_sk, device_id=cfg.device_id
    )
    if not device_report.ok:
        problems.append("on the device, before docking: " + _findings(device_report))
    dock_dir = out / "dock"
    with running_authorities(out, dock_dir) as auth:
        pin_witness(dev.keys.device_pub_path.parent, auth.witness_vkey)
        visit = visit_dock(dev, dock_dir, tsa_ca_pem=auth.tsa_ca_pem)
        origin, _ = dock_log_identity(dock_dir)
        if fetch_latest(auth, origin) is None:
            problems.append("the witness holds no checkpoint of the dock's log")
    problems += visit.problems
    left = [p for p in (dev.storage.root / "segments").glob("*") if p.is_file()]
    if left:
        problems.append(f"{len(left)} files still on the device after docking")
    recordings, exhibits = [], []
    for rec in dev.recorder.recordings:
        exhibit = out / EXHIBITS_DIR / rec.id
        trail = (dev.storage.root / "trail.jsonl").read_bytes()  # stays on the camera
        exported = export_recording(dock_dir, rec.id, exhibit, agency_sk, trail=trail)
        if not exported.ok:
            problems.append(f"recording {rec.id}: its exhibit does not verify")
        exhibits.append(str(exhibit.relative_to(out)))
        recordings.append(
            _recording_entry(
                cfg, dev, rec, problems, [str(p.relative_to(out)) for p in exported.segments]
            )
        )
    report = verify_sim_folder_report(out, dev)
    if not report.ok:
        problems.append("at the dock: " + _findings(report))
    summary["witness"] = auth.summary(origin)
    problems += _witnessed_problems(out, auth, dev)
    summary.update(
        {
            "verified": report.ok and not problems,
            "verification": report.to_json(),
            "exhibits": exhibits,
            "evidence": raid_evidence(out, cfg.device_id),
            "receipts": visit.receipts,
            "dock": {
                **_backends_of(dock_dir),
                "store": str(dock_dir.relative_to(out)),
                "url": visit.url,
                "time_offset_us": visit.time_offset_us,
            },
            "keys": {
                "device_public_key": str(dev.keys.device_pub_path.relative_to(out)),
                "agency_private_key": str(dev.keys.agency_private_path.relative_to(out)),
            },
        }
    )
    return recordings


def _backends_of(dock_dir: Path) -> dict[str, str]:
    """Where a fleet raid's dock kept its store (nothing for a folder)."""
    from dock.backends import load_backends

    b = load_backends(dock_dir)
    return {} if b.embedded else {"objects": b.objects or "", "index": b.index or ""}


def _witnessed_problems(out: Path, auth: Authorities, dev: SimDevice) -> list[str]:
    """The dock's store and the exhibits against the witness's latest checkpoint, as
    ``bwv verify OUT`` checks them."""
    from bwv.verify_raid import check_exhibits, raid_exhibits
    from crypto.verify.inputs import read_outbox
    from dock.log_audit import audit_store

    assert dev.keys is not None
    trust = auth.trust()
    if trust is None:
        return []  # said already: the witness holds no checkpoint
    audit = audit_store(out / "dock", trust, read_outbox(dev.storage.root))
    problems = [f"the dock against the witness: {f.kind}: {f.detail}" for f in audit.findings]
    pk = dev.keys.identity.public_key
    agency = dev.keys.agency_private().public_key
    checked = check_exhibits(raid_exhibits(out), pk, dev.cfg.device_id, agency, trust)
    for ex, rep in checked.items():
        problems += [f"{ex.name} against the witness: {f.kind}: {f.detail}" for f in rep.findings]
    return problems


def verify_sim_folder_report(out: Path, dev: SimDevice):
    from bwv.verify_cmd import collect_sim_folder

    assert dev.keys is not None
    files = collect_sim_folder(out, dev.cfg.device_id)
    return verify(
        files, dev.keys.identity.public_key, dev.keys.agency_private(), device_id=dev.cfg.device_id
    )


def _findings(report) -> str:
    return "; ".join(f"{f.kind}: {f.detail}" for f in report.findings[:5]) or "not ok"


def _recording_entry(
    cfg: Config, dev: SimDevice, rec: Recording, problems: list[str], paths: list[str]
) -> dict:
    segs = [s for s in rec.segments if s.path is not None and s.frames]
    frames = sum(s.frames for s in segs)
    first = segs[0].first_frame if segs else None
    last = segs[-1].last_frame if segs else None
    dropped = (last - first + 1 - frames) if first is not None and last is not None else 0
    if len(paths) != len(segs):
        problems.append(
            f"recording {rec.id}: {len(segs)} segments recorded, {len(paths)} playable copies"
        )
    fps, gop = cfg.video.fps, cfg.video.gop
    pre_frames = int(round(cfg.pre_record.seconds * fps))
    if rec.press_frame is None or first is None:
        problems.append(f"recording {rec.id}: nothing recorded")
    else:
        if first > rec.press_frame - pre_frames:
            problems.append(
                f"recording {rec.id}: pre-record short: first frame {first}, "
                f"press at frame {rec.press_frame}"
            )
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
