"""``bwv dock export``: what was handed over, as the person receiving it reads it."""

from __future__ import annotations

from pathlib import Path

import click

from dock.export import ExportResult


def print_export(result: ExportResult, out: Path) -> bool:
    """Say what went into ``out``: the segments (playable, or encrypted as stored), empty
    segments, the manifests and the report; then the verdict. True if VERIFIED; otherwise
    the problems are on stderr and the command exits 1."""
    if result.replaced:
        from dock.export_folder import describe

        click.echo(
            f"started clean: removed the earlier export in {out} ({describe(result.replaced)})"
        )
    n = len(result.stored)
    click.echo(
        f"recording {result.recording_id} from device {result.device_id}: "
        f"{n} segment(s) held at the dock"
    )
    if result.decrypted:
        for p in result.segments:
            click.echo(f"  {p}")
    else:
        click.echo(
            "  NOT decrypted (no --agency-key): exported the encrypted segments as "
            f"stored, in {out / 'segments'}"
        )
    for s in result.handed_over:
        if s.state == "empty":
            click.echo(f"  segment {s.index}: EMPTY, {s.detail}")
    click.echo(f"manifests: {out / 'manifests'} ({len(result.manifests)} chain record(s))")
    click.echo(f"report:    {result.report_path}")
    if result.zipped is not None:
        click.echo(f"zip:       {result.zipped}")
    click.echo(
        f"check it:  bwv verify {out} --device-pub DEVICE.pub  (the device's key as the "
        "agency publishes it, or --dock-pub with this dock's key: the check below)"
    )
    if result.ok:
        click.echo(
            "VERIFIED: authentic and complete"
            + (", every segment decrypted" if result.decrypted else "")
            + (
                f" ({len(result.empty)} empty segment(s) listed, not written)"
                if result.empty and result.decrypted
                else ""
            )
        )
        return True
    for problem in result.problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    click.echo("NOT VERIFIED: see the problems above and the report", err=True)
    return False
