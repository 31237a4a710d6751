"""``bwv status``: what a technician reads, from the running daemon and from the disk.

The daemon (``bwv run``) writes ``<storage.dir>/status.json`` atomically every second::

    {"updated_wall_us": int, "pid": int, "state": str, "recording": str | null,
     "faults": [str], "warnings": [str], "stealth": bool, "indicator": str,
     "frames_delivered": int, "camera_dropped_frames": int,
     "shipper": {"docked": bool, "shipped": int, "last_error": str | null,
                 "witnessed": bool, "unwitnessed": {manifest name: why kept}}}

A file that is missing, unreadable, older than :data:`STALE_AFTER_S` seconds, or written by
a process that is gone means the daemon is not running. The facts on the disk are reported
either way: segments waiting to ship (``outbox/segments/*.bwvseg`` and the ``.partial``
being written), free space, the last upload (newest receipt in ``receipts/``), which keys
are in place (public parts only: the device's secret key is never read here).

Exit status: 0 normally; 1 if there are faults or the daemon is not running; 2 if the
configuration cannot be read (``--json``: ``{"error": ...}`` then too).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from bwv.errors import bad_configuration, fail
from capture.config import Config, ConfigError, load

STATUS_FILE = "status.json"
STALE_AFTER_S = 10.0
SEG_EXT = ".bwvseg"
PARTIAL_EXT = ".bwvseg.partial"
DEFAULT_CONFIG = Path("/etc/bwv/bwv.toml")
_F = TypeVar("_F", bound=Callable[..., Any])


def load_config(path: Path, as_json: bool = False) -> Config:
    """The configuration, or one line naming the key that is wrong and exit 2 (as JSON too
    with ``as_json``)."""
    try:
        return load(path)
    except ConfigError as exc:
        if as_json:
            fail(f"bad configuration: {exc}", as_json)
        raise bad_configuration(exc) from None


def config_option(fn: _F) -> _F:
    """The ``--config`` option every device command takes."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFAULT_CONFIG,
        show_default=True,
        help="The device's configuration file.",
    )(fn)


def now_wall_us() -> int:
    return time.time_ns() // 1000


# -- the daemon's status file -------------------------------------------------------------------


@dataclass
class DaemonStatus:
    running: bool
    detail: str  # one line for a technician: why we think it runs or not
    data: dict[str, Any] | None  # the status file's content (possibly stale), if readable
    age_s: float | None  # how old the status file is


def status_path(cfg: Config) -> Path:
    return Path(cfg.storage.dir) / STATUS_FILE


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def read_daemon_status(cfg: Config, now_us: int | None = None) -> DaemonStatus:
    """Whether the daemon runs, judged by its status file (fresh, and its pid alive)."""
    path = status_path(cfg)
    now_us = now_wall_us() if now_us is None else now_us
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return DaemonStatus(False, f"no status file at {path}", None, None)
    except OSError as exc:
        return DaemonStatus(False, f"cannot read {path}: {exc.strerror}", None, None)
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        updated = data["updated_wall_us"]
        if not isinstance(updated, int) or isinstance(updated, bool):
            raise ValueError("updated_wall_us is not an integer")
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        return DaemonStatus(False, f"status file {path} is unreadable ({exc})", None, None)
    age_s = (now_us - updated) / 1e6
    pid = data.get("pid")
    if abs(age_s) > STALE_AFTER_S:
        when = f"{_ago(age_s)} ago" if age_s > 0 else f"{_ago(-age_s)} in the future"
        return DaemonStatus(False, f"last status {when}, pid {pid}", data, age_s)
    if not pid_alive(pid):
        return DaemonStatus(
            False, f"pid {pid} is gone (last status {_ago(age_s)} ago)", data, age_s
        )
    return DaemonStatus(True, f"pid {pid}, updated {_ago(max(age_s, 0.0))} ago", data, age_s)


# -- facts on the disk --------------------------------------------------------------------------


def outbox_facts(storage_dir: Path) -> dict[str, Any]:
    """Segments waiting to ship: finished (``*.bwvseg``) and being written (``.partial``)."""
    seg_dir = storage_dir / "outbox" / "segments"
    out: dict[str, Any] = {
        "segments": 0,
        "bytes": 0,
        "recordings": 0,
        "partial": 0,
        "partial_bytes": 0,
        "error": None,
    }
    recordings: set[str] = set()
    try:
        entries = list(os.scandir(seg_dir))
    except FileNotFoundError:
        return out
    except OSError as exc:
        out["error"] = f"cannot read {seg_dir}: {exc.strerror}"
        return out
    for e in entries:
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            size = e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        if e.name.endswith(SEG_EXT):
            out["segments"] += 1
            out["bytes"] += size
            recordings.add(e.name[: -len(SEG_EXT)].rsplit("_", 1)[0])
        elif e.name.endswith(PARTIAL_EXT):
            out["partial"] += 1
            out["partial_bytes"] += size
            recordings.add(e.name[: -len(PARTIAL_EXT)].rsplit("_", 1)[0])
    out["recordings"] = len(recordings)
    return out


def last_upload(storage_dir: Path) -> dict[str, Any]:
    """The newest receipt the dock gave (``receipts/*.json``): when the last upload ended."""
    d = storage_dir / "receipts"
    newest: int | None = None
    count = 0
    try:
        entries = list(os.scandir(d))
    except FileNotFoundError:
        return {"at_wall_us": None, "receipts": 0, "error": None}
    except OSError as exc:
        return {"at_wall_us": None, "receipts": 0, "error": f"cannot read {d}: {exc.strerror}"}
    for e in entries:
        if not e.name.endswith(".json"):
            continue
        try:
            mtime = e.stat(follow_symlinks=False).st_mtime_ns // 1000
        except OSError:
            continue
        count += 1
        newest = mtime if newest is None else max(newest, mtime)
    return {"at_wall_us": newest, "receipts": count, "error": None}


def storage_facts(cfg: Config) -> dict[str, Any]:
    from capture.device import recorder_config

    d = Path(cfg.storage.dir)
    v, a = cfg.video, cfg.audio
    byte_rate = v.bitrate / 8 + (a.bitrate / 8 if a.enabled else 0)
    low = recorder_config(cfg).low_space_bytes
    out: dict[str, Any] = {
        "dir": str(d),
        "free_bytes": None,
        "low_space_bytes": low,
        "minutes_left": None,
        "low": None,
        "error": None,
    }
    try:
        st = os.statvfs(d)
    except OSError as exc:
        out["error"] = f"{d}: {exc.strerror}"
        return out
    if not d.is_dir():
        out["error"] = f"{d} is not a folder (storage.dir: the daemon cannot record there)"
        return out
    free = st.f_bavail * st.f_frsize
    out.update(free_bytes=free, minutes_left=round(free / byte_rate / 60, 1), low=free < low)
    return out


def key_facts(cfg: Config) -> dict[str, Any]:
    """Which keys are in place; key ids from public files only (the secret is not read)."""
    from crypto.identity import IdentityError, key_id_of, load_public_key, public_key_path

    k = cfg.keys
    out: dict[str, Any] = {}
    for name, path, pub in (
        ("device", Path(k.device_key), public_key_path(Path(k.device_key))),
        ("agency", Path(k.agency_public_key), Path(k.agency_public_key)),
        ("dock", Path(k.dock_public_key), Path(k.dock_public_key)),
    ):
        try:
            present = os.path.lexists(path)
        except OSError:
            present = False
        key_id = None
        if present and pub.exists():
            try:
                key_id = key_id_of(load_public_key(pub))
            except (IdentityError, OSError):
                key_id = None
        out[name] = {"path": str(path), "present": present, "key_id": key_id}
    return out


# -- the report -----------------------------------------------------------------------------------


def collect_status(cfg: Config, now_us: int | None = None) -> dict[str, Any]:
    now_us = now_wall_us() if now_us is None else now_us
    storage_dir = Path(cfg.storage.dir)
    daemon = read_daemon_status(cfg, now_us)
    data = daemon.data or {}
    faults: list[str] = []
    warnings: list[str] = []
    if daemon.running:
        faults += [str(f) for f in data.get("faults") or []]
        warnings += [str(w) for w in data.get("warnings") or []]
    keys = key_facts(cfg)
    if not daemon.running:  # a running daemon reports these itself (it refuses to record)
        if not keys["device"]["present"]:
            faults.append(f"no device key at {keys['device']['path']}: run `bwv provision`")
        if not keys["agency"]["present"]:
            faults.append(f"no agency key pinned at {keys['agency']['path']}: run `bwv provision`")
    if cfg.dock.url and not keys["dock"]["present"]:
        warnings.append(f"no dock key pinned at {keys['dock']['path']}: footage cannot ship")
    storage = storage_facts(cfg)
    if storage["error"]:
        faults.append(f"storage: {storage['error']}")
    elif storage["low"]:
        warnings.append(
            f"storage low: {_size(storage['free_bytes'])} free, about "
            f"{_minutes(storage['minutes_left'])} of recording left"
        )
    outbox = outbox_facts(storage_dir)
    upload = last_upload(storage_dir)
    for err in (outbox["error"], upload["error"]):
        if err:
            warnings.append(err)
    faults = list(dict.fromkeys(faults))
    warnings = list(dict.fromkeys(warnings))
    shipper = data.get("shipper")
    if not isinstance(shipper, dict):
        shipper = {}
    report: dict[str, Any] = {
        "device_id": cfg.device_id,
        "daemon": {
            "running": daemon.running,
            "detail": daemon.detail,
            "age_s": None if daemon.age_s is None else round(daemon.age_s, 1),
            "pid": data.get("pid"),
            "state": data.get("state") if daemon.running else None,
            "recording": data.get("recording") if daemon.running else None,
            "stealth": data.get("stealth"),
            "indicator": data.get("indicator"),
            "frames_delivered": data.get("frames_delivered"),
            "camera_dropped_frames": data.get("camera_dropped_frames"),
            "last_faults": [str(f) for f in data.get("faults") or []],
        },
        "shipper": {
            "dock_url": cfg.dock.url or None,
            "docked": shipper.get("docked") if daemon.running else None,
            "shipped": shipper.get("shipped") if daemon.running else None,
            "last_error": shipper.get("last_error") if daemon.running else None,
            "kept_unwitnessed": dict(shipper.get("unwitnessed") or {}) if daemon.running else {},
        },
        "witnesses": witness_facts(cfg),
        "outbox": outbox,
        "last_upload": upload,
        "storage": storage,
        "keys": keys,
        "faults": faults,
        "warnings": warnings,
    }
    report["ok"] = daemon.running and not faults
    return report


def witness_facts(cfg: Config) -> dict[str, Any]:
    """The witnesses the camera pins (keys.witnesses): without any, a receipt alone lets
    footage be deleted ("unwitnessed")."""
    from dock.log_proof import WitnessKeysError, read_witness_keys

    path = Path(cfg.keys.witnesses)
    try:
        vkeys = read_witness_keys(path)
        error = None
    except WitnessKeysError as exc:
        vkeys, error = (), str(exc)
    return {
        "path": str(path),
        "pinned": [v.split("+", 1)[0] for v in vkeys],
        "quorum": cfg.keys.witness_quorum,
        "unwitnessed": not vkeys,
        "error": error,
    }


def _witness_line(w: dict[str, Any], kept: dict[str, str]) -> list[str]:
    if w["error"]:
        return [f"witnesses:    {w['error']}"]
    if w["unwitnessed"]:
        return [
            "witnesses:    none pinned: unwitnessed (footage is deleted on the dock's receipt "
            "alone; pin one with bwv provision --witness-key)"
        ]
    out = [
        f"witnesses:    {', '.join(w['pinned'])} (a delete waits for {w['quorum']} "
        "cosignature(s))"
    ]
    out += [f"  - kept, not yet witnessed: {name}: {why}" for name, why in sorted(kept.items())]
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _minutes(m: float) -> str:
    return f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h"


def _ago(s: float) -> str:
    s = abs(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def _when(at_us: int, now_us: int) -> str:
    t = datetime.fromtimestamp(at_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{t} ({_ago((now_us - at_us) / 1e6)} ago)"


def render_text(r: dict[str, Any], now_us: int) -> str:
    d, s, o, st, up, k = (
        r["daemon"],
        r["shipper"],
        r["outbox"],
        r["storage"],
        r["last_upload"],
        r["keys"],
    )
    lines = [f"device:       {r['device_id']}"]
    if d["running"]:
        lines.append(f"daemon:       running ({d['detail']}), state {d['state']}")
        lines.append(
            "recording:    " + (f"{d['recording']} IN PROGRESS" if d["recording"] else "no")
        )
        lines.append(f"indicator:    {d['indicator']}" + (" (stealth)" if d["stealth"] else ""))
        lines.append(
            f"camera:       {d['frames_delivered']} frames delivered, "
            f"{d['camera_dropped_frames']} dropped"
        )
    else:
        lines.append(f"daemon:       NOT RUNNING ({d['detail']})")
    waiting = f"{o['segments']} segments ({_size(o['bytes'])}) of {o['recordings']} recordings"
    if o["partial"]:
        waiting += f"; {o['partial']} being written ({_size(o['partial_bytes'])})"
    lines.append(f"to ship:      {waiting}")
    if not s["dock_url"]:
        lines.append("dock:         none configured (dock.url): footage stays on the device")
    elif d["running"]:
        lines.append(
            f"dock:         {s['dock_url']}: "
            + ("docked" if s["docked"] else "not docked")
            + f", {s['shipped']} shipped since start"
            + (f", last error: {s['last_error']}" if s["last_error"] else "")
        )
    else:
        lines.append(f"dock:         {s['dock_url']}")
    if s["dock_url"]:
        lines += _witness_line(r["witnesses"], s.get("kept_unwitnessed") or {})
    lines.append(
        "last upload:  " + (_when(up["at_wall_us"], now_us) if up["at_wall_us"] else "never")
    )
    if st["free_bytes"] is None:
        lines.append(f"storage:      {st['dir']}: {st['error']}")
    else:
        lines.append(
            f"storage:      {st['dir']}: {_size(st['free_bytes'])} free, about "
            f"{_minutes(st['minutes_left'])} of recording (warns below "
            f"{_size(st['low_space_bytes'])})"
        )
    key_bits = []
    for name in ("device", "agency", "dock"):
        kk = k[name]
        key_bits.append(
            f"{name} {kk['key_id'] or 'present'}" if kk["present"] else f"{name} MISSING"
        )
    lines.append("keys:         " + ", ".join(key_bits))
    lines.append("faults:       " + ("none" if not r["faults"] else ""))
    lines += [f"  - {f}" for f in r["faults"]]
    if not d["running"] and d["last_faults"]:
        lines.append("last faults the daemon reported (stale):")
        lines += [f"  - {f}" for f in d["last_faults"]]
    lines.append("warnings:     " + ("none" if not r["warnings"] else ""))
    lines += [f"  - {w}" for w in r["warnings"]]
    return "\n".join(line.rstrip() for line in lines)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(config_path: Path, as_json: bool) -> None:
    """Show what the camera is doing: daemon state, recording, footage waiting to ship,
    free space, last upload, faults and warnings.

    \b
    Exit status: 0  the daemon runs and reports no fault
                 1  a fault, or the daemon is not running
                 2  the configuration cannot be read (with --json: {"error": ...})
    """
    cfg = load_config(config_path, as_json)
    now_us = now_wall_us()
    report = collect_status(cfg, now_us)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        click.echo(render_text(report, now_us))
    sys.exit(0 if report["ok"] else 1)
