"""``bwv verify`` and the witnessed log: the trust the user gives (``--witness-key``,
``--checkpoint``, ``--tsa-ca``, or a raid's ``summary.json`` ``witness`` object), a dock
store checked against it, and what the report prints about the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bwv.errors import EXIT_FOUND_WANTING, EXIT_OK, fail
from crypto.verify.log import LogTrust, LogTrustError, read_witness_keys


def load_trust(
    witness_keys: tuple[str, ...],
    checkpoint: Path | None,
    tsa_ca: Path | None,
    dock_key: bytes | None,
    as_json: bool,
) -> LogTrust | None:
    """The log trust from the command line (None: no witness key given)."""
    if not witness_keys:
        if checkpoint is not None:
            fail(
                "--checkpoint needs --witness-key: the witness key it must be cosigned by", as_json
            )
        return None
    try:
        keys = read_witness_keys(witness_keys)
        cp = checkpoint.read_bytes() if checkpoint else None
        ca = tsa_ca.read_bytes() if tsa_ca else None
    except LogTrustError as exc:
        fail(str(exc), as_json)
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror}", as_json)
    if ca is not None and b"-----BEGIN CERTIFICATE-----" not in ca:
        fail(f"{tsa_ca}: not a PEM certificate (--tsa-ca: the TSA's CA certificate)", as_json)
    return LogTrust(keys, cp, dock_key, ca, _token_time())


def _token_time():
    from tsa.verify import verify_token

    return verify_token


def raid_trust(path: Path, tsa_ca: bytes | None = None) -> LogTrust | None:
    """The trust a ``bwv sim raid`` folder names in ``summary.json``'s ``witness`` object
    (its witness's key and the checkpoint fetched from it after the raid)."""
    try:
        w = json.loads((path / "summary.json").read_text()).get("witness")
        if not w:
            return None
        keys = read_witness_keys([str(path / w["public_key"])])
        cp = (path / w["checkpoint"]).read_bytes()
        ca_name = w.get("tsa_ca")
        ca = tsa_ca or ((path / ca_name).read_bytes() if ca_name else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, LogTrustError):
        return None
    return LogTrust(keys, cp, None, ca, _token_time())


def print_log(log: dict[str, Any] | None) -> None:
    """One line on what the witnessed log says (nothing when it was not checked)."""
    if not log or not log.get("checked"):
        return
    seen: set[tuple[str, int, str]] = set()
    for c in log.get("checkpoints") or []:
        if (c["origin"], c["size"], c["root"]) in seen:
            continue
        seen.add((c["origin"], c["size"], c["root"]))
        click.echo(f"log {c['origin']} size {c['size']}: cosigned by {', '.join(c['witnesses'])}")
    if log.get("time_note"):
        click.echo(f"  trusted time: {log['time_note']}")
    for rec, r in sorted(((log.get("store") or {}).get("recordings") or {}).items()):
        click.echo(
            f"  recording {rec} (device {r['device_id']}): {r['records']} records in the "
            f"witnessed log: {r['status']}" + _before(r)
        )
    for rec, t1 in sorted((log.get("upper_bounds_us") or {}).items()):
        if t1 is not None:
            click.echo(f"  recording {rec}: recorded before {_utc(t1)} (RFC 3161, UTC)")


def _before(r: dict[str, Any]) -> str:
    """``; recorded before T1 (RFC 3161, UTC)`` for a store audit's recording with a T1."""
    t1 = r.get("recorded_before_us")
    return f"; recorded before {_utc(t1)} (RFC 3161, UTC)" if t1 is not None else ""


def _utc(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def run_verify_store(path: Path, trust: LogTrust | None, as_json: bool) -> int:
    """``bwv verify STORE``: the dock store against the witnessed checkpoint."""
    from dock.log_audit import audit_store

    if trust is None:
        fail(
            f"{path} is a dock store: give --witness-key (and --checkpoint, fetched from the "
            "witness) to check it against its witnessed log",
            as_json,
        )
    try:
        audit = audit_store(path, trust)
    except Exception as exc:  # noqa: BLE001 - an unreadable store: one line, exit 2
        fail(f"{path}: cannot check the store: {exc}", as_json)
    if as_json:
        click.echo(json.dumps(audit.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print_audit(audit)
    return EXIT_OK if audit.ok else EXIT_FOUND_WANTING


def print_audit(audit: Any) -> None:
    cp = audit.checkpoint
    if cp is not None:
        click.echo(
            f"log {cp.origin}: witnessed size {cp.size} (cosigned by "
            f"{', '.join(cp.witnesses)}), the store's log holds {audit.log_size}"
        )
    for rec, r in sorted(audit.recordings.items()):
        click.echo(
            f"recording {rec} (device {r['device_id']}): {r['records']} records in the log: "
            f"{r['status']}" + _before(r)
        )
    for e in audit.explained:
        click.echo(f"  explained: {e.line()}")
    for f in audit.findings:
        click.echo(f"  {f.kind}: {f.detail}")
    click.echo(
        "VERIFIED: every leaf the witness saw is held or explained"
        if audit.ok
        else "NOT VERIFIED: see the findings above"
    )


def store_trust(store_dir: Path, trust: LogTrust | None) -> LogTrust | None:
    """The trust given, else the witnesses the dock is configured with (their keys, the
    store's own latest checkpoint): weaker, the dock's operator chose them."""
    if trust is not None:
        return trust
    from dock.checkpoints import load_log_config

    try:
        witnesses = load_log_config(Path(store_dir)).witnesses
    except ValueError:
        return None
    return LogTrust(tuple(w.vkey for w in witnesses), None) if witnesses else None


def status_log(store_dir: Path, trust: LogTrust | None) -> dict[str, Any]:
    """``bwv dock status --verify``: the store against its witnessed log."""
    from dock.log_audit import audit_store

    trust = store_trust(store_dir, trust)
    if trust is None:
        return {"checked": False, "note": "no witness: give --witness-key (and --checkpoint)"}
    try:
        audit = audit_store(Path(store_dir), trust)
    except Exception as exc:  # noqa: BLE001 - an unreadable log: said, not raised
        return {"checked": False, "ok": False, "note": f"the log cannot be read: {exc}"}
    out = audit.to_json() | {"checked": True}
    out["findings"] = [dict(f.__dict__) for f in audit.findings]
    return out


def print_status_log(log: dict[str, Any]) -> None:
    if not log.get("checked"):
        click.echo(f"log: not checked ({log.get('note', '')})")
        return
    cp = log.get("checkpoint")
    if cp:
        click.echo(
            f"log {cp['origin']}: witnessed size {cp['size']} (cosigned by "
            f"{', '.join(cp['witnesses'])}), the store's log holds {log.get('log_size')}"
        )
    for rec, r in sorted((log.get("recordings") or {}).items()):
        click.echo(
            f"  recording {rec}: {r['records']} records in the log: {r['status']}" + _before(r)
        )
    for e in log.get("explained") or []:
        click.echo(f"  explained: {e['line']}")
    for f in log.get("findings") or []:
        click.echo(f"  {f['kind']}: {f['detail']}")
    click.echo("log: every leaf the witness saw is held" if log["ok"] else "log: NOT VERIFIED")


def status_witness_options(f: Any) -> Any:
    """``bwv dock status``'s ``--witness-key`` and ``--checkpoint`` (used with --verify)."""
    f = click.option(
        "--checkpoint",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="With --verify: the witness's latest checkpoint (`bwv witness latest`) "
        "[default: the dock's own latest checkpoint].",
    )(f)
    return click.option(
        "--witness-key",
        "witness_keys",
        multiple=True,
        help="With --verify: a witness's public key (vkey, or a file of them) the log's "
        "checkpoint must be cosigned by [default: the witnesses the dock is configured with].",
    )(f)


def status_with_log(
    data: dict[str, Any], store_dir: Path, trust: LogTrust | None, reverify: bool, as_json: bool
) -> int:
    """Print ``bwv dock status`` (with --verify: and the store against its witnessed log,
    ``data["witnessed"]``); the exit status."""
    from bwv.dock_status import print_status

    log_bad = False
    if reverify:
        data["witnessed"] = status_log(store_dir, trust)
        log_bad = data["witnessed"].get("ok") is False
    failed = any(r["state"] == "failed" for r in data["recordings"])
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return EXIT_FOUND_WANTING if failed or log_bad else EXIT_OK
    failed = print_status(data)
    if reverify:
        print_status_log(data["witnessed"])
    return EXIT_FOUND_WANTING if failed or log_bad else EXIT_OK
