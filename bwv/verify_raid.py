"""A ``bwv sim raid`` folder checked whole: the dock's copies and the device's trail (as
``bwv verify`` reads any simulator folder), and every exhibit under ``OUT/exhibits/``.

``raid_evidence`` lists exactly the files that check reads as evidence (``summary.json``'s
``evidence``): changing, truncating, deleting or swapping any of them is found.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from nacl.public import PublicKey

from bwv.errors import EXIT_FOUND_WANTING, EXIT_OK
from crypto.verify import Report
from crypto.verify.exhibit import evidence_of, is_exhibit, read_exhibit, verify_exhibit
from crypto.verify.log import LogTrust

EXHIBITS_DIR = "exhibits"


def raid_exhibits(path: Path) -> list[Path]:
    d = Path(path) / EXHIBITS_DIR
    return sorted(p for p in d.iterdir() if is_exhibit(p)) if d.is_dir() else []


def raid_evidence(path: Path, device_id: str) -> list[str]:
    """Every file ``bwv verify PATH`` reads as evidence, relative to PATH."""
    from bwv.verify_cmd import sim_folder_evidence

    path = Path(path)
    names = set(sim_folder_evidence(path, device_id).real.values())
    for ex in raid_exhibits(path):
        rel = ex.relative_to(path).as_posix()
        names |= {f"{rel}/{n}" for n in evidence_of(read_exhibit(ex))}
    return sorted(names)


def check_exhibits(
    exhibits: list[Path],
    public_key: bytes,
    device_id: str | None,
    agency_public_key: PublicKey | None = None,
    trust: LogTrust | None = None,
) -> dict[Path, Report]:
    # a raid writes each exhibit with the camera's trail lines: one without them is wanting
    return {
        ex: verify_exhibit(
            read_exhibit(ex),
            public_key,
            device_id,
            require_trail=True,
            agency_public_key=agency_public_key,
            trust=trust,
        )
        for ex in exhibits
    }


def audit_raid_dock(report: Report, path: Path, trust: LogTrust | None) -> bool:
    """A simulator folder's dock store (``bwv sim raid``'s or ``bwv sim``'s) against the
    witnessed log, with the camera's outbox: its findings join the report. False when
    there is no dock log to check."""
    from dock.log_audit import audit_store

    store = Path(path) / "dock"
    if trust is None or not (store / "log").is_dir():
        return False
    from crypto.verify.inputs import read_outbox

    outbox = Path(path) / "device" / "outbox"
    if not outbox.is_dir():
        outbox = Path(path) / "outbox"
    audit = audit_store(store, trust, read_outbox(outbox) if outbox.is_dir() else None)
    report.findings += audit.findings
    cps = [audit.checkpoint.to_json()] if audit.checkpoint else []
    report.log = {"checked": True, "checkpoints": cps, "store": audit.to_json()}
    if not audit.ok:
        report.ok = False
    return True


def _wrong_anchor(report: Report) -> bool:
    """The key or device id given is not the evidence's (the verifier's one finding)."""
    f = report.findings[0] if report.findings else None
    return f is not None and f.kind == "substituted" and f.file is None and f.seq is None


def report_with_exhibits(
    report: Report,
    exhibits: list[Path],
    public_key: bytes,
    device_id: str | None,
    as_json: bool,
    decrypting: bool,
    agency_public_key: PublicKey | None = None,
    trust: LogTrust | None = None,
    folder: Path | None = None,
) -> int:
    """Print the folder's report and each exhibit's; 0 only if all are VERIFIED. The
    witness trust is the one given, else the raid's ``summary.json`` names it."""
    from bwv.verify_cmd import _print
    from bwv.verify_log import raid_trust

    if trust is None and folder is not None:
        trust = raid_trust(folder)
    if folder is not None and not _wrong_anchor(report):
        audit_raid_dock(report, folder, trust)
    if _wrong_anchor(report):  # one cause, one line: the exhibits would say the same
        exhibits = []
    checked = check_exhibits(exhibits, public_key, device_id, agency_public_key, trust)
    ok = report.ok and all(r.ok for r in checked.values())
    if as_json:
        out = report.to_json() | {
            "exhibits": {str(p): r.to_json() for p, r in checked.items()},
            "ok": ok,
            "dock_ok": report.ok,
        }
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    elif not checked:
        _print(report, decrypting)
    else:
        click.echo("the dock's copies and the device's trail:")
        _print(report, decrypting)
        for p, r in checked.items():
            click.echo(f"exhibit {p}:")
            _print(r, decrypting=True)
        click.echo(
            "ALL VERIFIED: the dock's copies and every exhibit"
            if ok
            else "NOT VERIFIED: see the findings above"
        )
    return EXIT_OK if ok else EXIT_FOUND_WANTING
