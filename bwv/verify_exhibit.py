"""``bwv verify EXHIBIT``: an exhibit folder or zip (``bwv dock export``), checked with a key
from outside it: the device's public key, or the key of the dock that enrolled the device."""

from __future__ import annotations

import json
from pathlib import Path

import click
from nacl.public import PublicKey

from bwv.errors import EXIT_FOUND_WANTING, EXIT_OK, fail
from crypto.identity import IdentityError, load_device_public_key, load_dock_public_key
from crypto.verify.exhibit import ExhibitError, verify_exhibit_path
from crypto.verify.log import LogTrust


def run_verify_exhibit(
    path: Path,
    device_pub: Path | None,
    dock_pub: Path | None,
    device_id: str | None,
    as_json: bool,
    agency_public_key: PublicKey | None = None,
    trust: LogTrust | None = None,
) -> int:
    if device_pub is None and dock_pub is None:
        fail(
            f"{path} is an exhibit: give the key to trust, --device-pub (the device's public "
            "key as the agency publishes it) or --dock-pub (the key of the dock that enrolled "
            "the device); the copy inside the exhibit proves nothing on its own",
            as_json,
        )
    try:
        pk = load_device_public_key(device_pub) if device_pub else None
        dk = bytes(load_dock_public_key(dock_pub)) if dock_pub and pk is None else None
    except IdentityError as exc:
        fail(str(exc), as_json)
    try:
        report = verify_exhibit_path(
            path, pk, dk, device_id, agency_public_key=agency_public_key, trust=trust
        )
    except ExhibitError as exc:
        if not exc.wanting:
            fail(str(exc), as_json)
        if as_json:
            click.echo(json.dumps({"ok": False, "error": str(exc)}, sort_keys=True))
        else:
            click.echo(f"NOT VERIFIED: {exc}")
        return EXIT_FOUND_WANTING
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        from bwv.verify_cmd import _print

        click.echo(f"exhibit {path}")
        _print(report, decrypting=any(s.decrypted for s in report.segments))
    return EXIT_OK if report.ok else EXIT_FOUND_WANTING
