"""``bwv verify``: gather the files, find the keys, run the offline verifier, report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from crypto.identity import IdentityError, load_agency_private_key, load_public_key
from crypto.verify import Report, read_outbox, verify

EXIT_OK, EXIT_NOT_AUTHENTIC, EXIT_ERROR = 0, 1, 2


def _sim_folder(path: Path) -> tuple[Path, Path, Path] | None:
    """(outbox, device public key, agency private key) of a ``bwv sim raid`` folder."""
    summary = path / "summary.json"
    if not summary.is_file():
        return None
    keys = json.loads(summary.read_text()).get("keys") or {}
    outbox = path / "device" / "outbox"
    if not keys or not outbox.is_dir():
        return None
    return outbox, path / keys["device_public_key"], path / keys["agency_private_key"]


def collect_sim_folder(path: Path, device_id: str | None = None) -> dict[str, bytes]:
    """The evidence of a ``bwv sim raid`` folder: what the dock holds for the device (in the
    outbox layout), with what stays on the device (its signature trail, anything not yet
    shipped)."""
    files: dict[str, bytes] = {}
    dock_dir = path / "dock"
    if (dock_dir / "dock.key").exists():
        from dock.export import export_device
        from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
        from dock.store import DirectoryStore

        if device_id is None:
            device_id = json.loads((path / "summary.json").read_text())["device_id"]
        store = DirectoryStore(dock_dir, load_or_create_signing_key(dock_dir / DOCK_KEY_FILE))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                export_device(store, device_id, Path(tmp))
                files.update(read_outbox(Path(tmp)))
        finally:
            store.close()
    files.update(read_outbox(path / "device" / "outbox"))
    return files


def _collect(paths: list[Path]) -> tuple[dict[str, bytes], Path | None, Path | None]:
    files: dict[str, bytes] = {}
    device_pub = agency_key = None
    for path in paths:
        sim = _sim_folder(path) if path.is_dir() else None
        if sim is not None:
            _, device_pub, agency_key = sim
            files.update(collect_sim_folder(path))
        elif path.is_dir():
            files.update(read_outbox(path))
        else:  # a single file: named as it is named in its outbox
            parent = path.parent.name
            name = f"{parent}/{path.name}" if parent in ("segments", "chain") else path.name
            files[name] = path.read_bytes()
    return files, device_pub, agency_key


def run_verify(paths: list[Path], device_pub: Path | None, agency_key: Path | None,
               device_id: str | None, as_json: bool) -> int:
    files, sim_pub, sim_agency = _collect(paths)
    device_pub = device_pub or sim_pub
    agency_key = agency_key or sim_agency
    if device_pub is None:
        click.echo("error: --device-pub is needed (the device's public key)", err=True)
        return EXIT_ERROR
    try:
        pk = load_public_key(device_pub, "device Ed25519 public key")
        sk = load_agency_private_key(agency_key) if agency_key else None
    except IdentityError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    if not files:
        click.echo("error: no evidence files found in the given paths", err=True)
        return EXIT_ERROR
    report = verify(files, pk, sk, device_id=device_id)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        _print(report, decrypting=sk is not None)
    return EXIT_OK if report.ok else EXIT_NOT_AUTHENTIC


def _print(report: Report, decrypting: bool) -> None:
    click.echo(f"device {report.device_id or '?'} key {report.key_id}"
               + ("" if decrypting else " (footage not decrypted: no --agency-key)"))
    for rec in report.recordings:
        click.echo(f"recording {rec.recording_id}: {rec.status}"
                   + (f" (ended: {rec.end_reason})" if rec.end_reason else ""))
    for seg in report.segments:
        bad = [c for c in seg.chunks if c.status != "authentic"]
        click.echo(f"  segment {seg.recording_id} #{seg.segment_index}: {seg.status}"
                   f"  {len(seg.chunks) - len(bad)}/{len(seg.chunks)} chunks authentic"
                   + (f"  {seg.detail}" if seg.detail else ""))
        for c in bad:
            click.echo(f"    chunk {c.chunk} ({c.kind}): {c.status} {c.detail}".rstrip())
    for f in report.findings:
        where = f" [{f.file}]" if f.file else ""
        click.echo(f"  {f.kind}: {f.detail}{where}")
    click.echo("VERIFIED: authentic and complete" if report.ok
               else "NOT VERIFIED: see the findings above")
