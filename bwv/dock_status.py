"""``bwv dock status``: what the dock holds, collected from the store and printed as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bwv.dock_common import DockUsageError, open_store_or_fail, when
from bwv.dock_log_cmd import print_log_status
from crypto.identity import load_agency_public_key
from dock.agency import AGENCY_PUB_FILE, NOT_CONFIGURED, AgencyKeyError, pinned_agency_key_id
from dock.export import scan_recordings, verify_recording
from dock.holdings import recording_records


def _agency_public_key(store_dir: Path) -> bytes | None:
    """The pinned agency key: ``--verify`` also finds segments sealed to another one (taken
    in before it was pinned)."""
    if _agency_key_id(store_dir) is None:
        return None
    return bytes(load_agency_public_key(store_dir / AGENCY_PUB_FILE))


def _agency_key_id(store_dir: Path) -> str | None:
    try:
        return pinned_agency_key_id(store_dir)
    except AgencyKeyError as exc:
        raise DockUsageError(str(exc)) from None


def _offset(us: int | None) -> str:
    return "-" if us is None else f"{us / 1e6:+.3f} s"


def _chain_text(chain: dict[str, Any]) -> str:
    if not chain["held"]:
        return "nothing held"
    parts = []
    for g in chain["gaps"]:
        a, b = g["from_seq"], g["to_seq"]
        parts.append(f"missing {a}" if a == b else f"missing {a}..{b}")
    if chain["breaks"]:
        parts.append("breaks at " + ", ".join(str(s) for s in chain["breaks"]))
    return "; ".join(parts) or f"whole ({chain['first_seq']}..{chain['last_seq']})"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def collect_status(store_dir: Path, reverify: bool = False) -> dict[str, Any]:
    """What ``bwv dock status --json`` prints."""
    from dock.log_status import stored_log_status
    from dock.verify import reverified_state

    store = open_store_or_fail(store_dir)
    agency = _agency_public_key(Path(store_dir)) if reverify else None
    try:
        devices = store.list_devices()
        recordings, holdings = scan_recordings(store)
        if reverify:
            for r in recordings:
                recs = recording_records(holdings[r.device_id].records, r.recording_id)
                if r.state == "deleted" and not any(x.is_segment for x in recs):
                    continue  # deleted under retention: nothing left to re-check
                report, _ = verify_recording(store, r.device_id, recs, agency_public_key=agency)
                r.reverified = True
                r.state, r.detail = reverified_state(report, r.recording_id)
        out_devices = []
        for d in devices:
            h = holdings[d.device_id]
            chain = h.chain()
            out_devices.append(
                {
                    "device_id": d.device_id,
                    "key_id": d.key_id,
                    "key_store": d.key_store,
                    "attested_by": d.attested_by,
                    "state": "revoked" if d.revoked else "enrolled",
                    "enrolled_at_us": d.enrolled_at_us,
                    "revoked_at_us": d.revoked_at_us,
                    "revoke_reason": d.revoke_reason,
                    "time_offset_us": d.time_offset_us,
                    "time_synced_at_us": d.time_synced_at_us,
                    "records_held": len(h.records) + len(h.unreadable),
                    "segments_held": sum(1 for r in h.records if r.is_segment),
                    "unreadable_records": [x.seq for x in h.unreadable],
                    "chain": chain.to_json(),
                }
            )
        return {
            "store": str(Path(store_dir).resolve()),
            **_backends(Path(store_dir)),
            "dock_key_id": store.dock_key_id,
            "agency_key_id": _agency_key_id(Path(store_dir)),
            "devices": out_devices,
            "recordings": [r.to_json() for r in recordings],
            "log": stored_log_status(Path(store_dir), store),
        }
    finally:
        store.close()


def _camera_rows(devices: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["DEVICE", "KEY ID", "STATE", "TIME OFFSET", "SYNCED", "RECORDS", "SEGMENTS", "CHAIN"]]
    for d in devices:
        state = d["state"]
        if d["revoked_at_us"] is not None:
            state = f"REVOKED {when(d['revoked_at_us'])} ({d['revoke_reason']})"
        chain = _chain_text(d["chain"])
        if d["unreadable_records"]:
            chain += f"; unreadable {d['unreadable_records']}"
        rows.append(
            [
                d["device_id"],
                f"{d['key_id']} ({d.get('key_store', 'file')})",
                state,
                _offset(d["time_offset_us"]),
                when(d["time_synced_at_us"]),
                str(d["records_held"]),
                str(d["segments_held"]),
                chain,
            ]
        )
    return rows


def _recording_rows(recs: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["RECORDING", "DEVICE", "STARTED", "SEGMENTS", "BYTES", "STATE", "DETAIL"]]
    for r in recs:
        segs = str(r["segments"]) + (
            f"/{r['expected_segments']}"
            if r["expected_segments"] is not None and r["expected_segments"] != r["segments"]
            else ""
        )
        rows.append(
            [
                r["recording_id"],
                r["device_id"],
                when(r["wall_start_us"]),
                segs,
                str(r["stored_bytes"]),
                r["state"],
                "" if r["state"] == "verified" else r["detail"],
            ]
        )
    return rows


def _backends(store_dir: Path) -> dict[str, str]:
    """Where a shared store keeps its objects and index (nothing for a folder's own)."""
    from dock.backends import load_backends

    b = load_backends(store_dir)
    return (
        {} if b.embedded else {"objects": b.objects or "the folder", "index": b.index or "SQLite"}
    )


def print_status(data: dict[str, Any]) -> bool:
    """Print ``data`` (from :func:`collect_status`) as tables: the cameras, then the
    recordings, and what is not verified. True if a recording FAILED re-verification (said
    on stderr): the command exits 1."""
    failed = [r for r in data["recordings"] if r["state"] == "failed"]
    click.echo(f"dock store {data['store']} (dock key id {data['dock_key_id']})")
    if "objects" in data:
        click.echo(f"  objects in {data['objects']}, index in {data['index']} (many docks)")
    agency = data.get("agency_key_id")
    click.echo(f"agency key id {agency}" if agency else f"agency key: {NOT_CONFIGURED}")
    if data.get("log") is not None:
        print_log_status(data["log"])
    if not data["devices"]:
        click.echo(
            "no cameras enrolled yet: `bwv dock token --store DIR --device ID` gives "
            "a technician a one-time enrollment token"
        )
        return False
    click.echo(f"\nCAMERAS ({len(data['devices'])})")
    for line in _table(_camera_rows(data["devices"])):
        click.echo(line)
    recs = data["recordings"]
    click.echo(f"\nRECORDINGS ({len(recs)})")
    if not recs:
        click.echo("  none held yet")
        return False
    for line in _table(_recording_rows(recs)):
        click.echo(line)
    bad = [r for r in recs if r["state"] not in ("verified", "deleted")]
    if bad:
        click.echo(
            f"\n{len(bad)} recording(s) not verified: see STATE above "
            "(`bwv dock status --help` explains each)"
        )
    if failed:
        click.echo(
            f"{len(failed)} recording(s) FAILED re-verification: stored bytes are not "
            "what the camera signed",
            err=True,
        )
        return True
    return False
