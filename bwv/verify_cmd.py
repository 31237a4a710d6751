"""``bwv verify``: gather the files, find the keys, run the offline verifier, report.

Findings name the files as they are on disk, relative to the folder given: a ``bwv sim raid``
folder's dock copies as ``dock/objects/<device>/<segment>.blob``, its device's files as
``device/outbox/...``. The verifier itself sees them in the outbox layout it knows.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
from nacl.public import PublicKey

from bwv.errors import EXIT_CANNOT_CHECK, EXIT_FOUND_WANTING, EXIT_OK, fail
from crypto.identity import (
    IdentityError,
    load_agency_private_key,
    load_agency_public_key,
    load_device_public_key,
    public_key_path,
)
from crypto.verify import Report, is_evidence, read_outbox, verify
from crypto.verify.timecheck import recorded_between, wall_claim

if TYPE_CHECKING:
    from crypto.verify.log import LogTrust
    from dock.store_sqlite import DirectoryStore

EXIT_NOT_AUTHENTIC, EXIT_ERROR = EXIT_FOUND_WANTING, EXIT_CANNOT_CHECK
NOTHING_CHECKABLE = (
    "nothing checkable here: {what} (evidence is a device outbox: segments/*.bwvseg, "
    "chain/*.json, trail.jsonl; a `bwv sim raid` folder; a `bwv sim` state folder)"
)


class InputError(Exception):
    """The paths given cannot be read as evidence (exit 2)."""


@dataclass
class Evidence:
    files: dict[str, bytes] = field(default_factory=dict)  # by the verifier's (outbox) name
    real: dict[str, str] = field(default_factory=dict)  # verifier's name -> file on disk
    device_pub: Path | None = None  # found with the files (a simulator's folder holds it)
    agency_key: Path | None = None
    exhibits: list[Path] = field(default_factory=list)  # a raid folder's exhibits, checked too
    dock_public_key: bytes | None = None  # the simulator's dock's: checks its time answers

    def add(self, files: dict[str, bytes], real: dict[str, str] | None = None) -> None:
        self.files.update(files)
        for name in files:
            self.real.pop(name, None)
        self.real.update(real or {})


# -- the simulator's folders -------------------------------------------------------------------
def _sim_raid_keys(path: Path) -> tuple[Path, Path] | None:
    """(device public key, agency private key) of a ``bwv sim raid`` folder."""
    summary = path / "summary.json"
    if not summary.is_file() or not (path / "device" / "outbox").is_dir():
        return None
    try:
        keys = json.loads(summary.read_text()).get("keys") or {}
        return path / keys["device_public_key"], path / keys["agency_private_key"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{summary}: unreadable (not the summary `bwv sim raid` writes)") from None


def _sim_state_keys(path: Path) -> tuple[Path, Path | None] | None:
    """(device public key, agency private key or None) of a simulator's state folder (``bwv sim
    --state``, default sim-state): it keeps its keys beside its outbox."""
    from simulator.keys import AGENCY_KEY, DEVICE_KEY, agency_dir_of, keys_dir

    pub = public_key_path(keys_dir(path) / DEVICE_KEY)
    if not (pub.is_file() and (path / "outbox").is_dir()):
        return None
    agency = agency_dir_of(path) / AGENCY_KEY
    if not agency.is_file():
        agency = keys_dir(path) / AGENCY_KEY  # kept there by an earlier version
    return pub, agency if agency.is_file() else None


def sim_folder_evidence(
    path: Path,
    device_id: str | None = None,
    *,
    outbox: str = "device/outbox",
    device_pub: Path | None = None,
) -> Evidence:
    """The evidence of a simulator's folder (``bwv sim raid``'s, or ``bwv sim``'s state
    folder once it has docked): what its dock (``path/dock``) holds for the device, in the
    outbox layout, with what stays on the device (its signature trail, anything not yet
    shipped; ``path/outbox``); ``real`` names the dock's objects and the device's files.
    The device is ``device_id``, else the raid's summary names it, else the dock's device
    whose key is ``device_pub``."""
    ev = Evidence()
    held: set[str] = set()  # the dock's chain records, read or not: the device's copies are not
    dock_dir = path / "dock"
    if (dock_dir / "dock.key").exists():
        from dock.backends import BackendsError, open_store
        from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key

        dock_key = load_or_create_signing_key(dock_dir / DOCK_KEY_FILE)
        ev.dock_public_key = bytes(dock_key.verify_key)
        try:  # a fleet raid's dock keeps its store on the shared servers (dock.toml)
            store = open_store(dock_dir, dock_key)
        except BackendsError as exc:
            raise InputError(f"{dock_dir}: the dock's store cannot be read: {exc}") from None
        try:
            device_id = device_id or _sim_device_id(path, store, device_pub)
            if device_id:
                held = _add_dock_holdings(ev, store, dock_dir, device_id)
        finally:
            store.close()
    files = {
        n: d for n, d in read_outbox(path / outbox).items() if n.rsplit("/", 1)[-1] not in held
    }
    ev.add(files, {n: f"{outbox}/{n}" for n in files})
    return ev


def _add_dock_holdings(
    ev: Evidence, store: DirectoryStore, dock_dir: Path, device_id: str
) -> set[str]:
    """What the dock holds for ``device_id``, in the outbox layout, named by its objects;
    returns the chain file names the dock holds, read or not (the device's copies of those
    are not evidence)."""
    from crypto.manifest import chain_file_name
    from crypto.records import CHAIN_TYPES
    from dock.export import device_holdings, outbox_files
    from dock.store import blob_key, manifest_key

    held: set[str] = set()
    holdings = device_holdings(store, device_id)
    for r in holdings.records:
        held.add(chain_file_name(r.seq, r.fields.record_type))
        got = outbox_files(store, device_id, [r])
        keys = {
            "chain": manifest_key(device_id, r.held.segment_id),
            "segments": blob_key(device_id, r.held.segment_id),
        }
        ev.add(got, {n: f"dock/objects/{keys[n.split('/', 1)[0]]}" for n in got})
    for h in holdings.unreadable:  # still the dock's: checked
        held |= {chain_file_name(h.seq, t) for t in CHAIN_TYPES}
        _add_unreadable(ev, store, manifest_key(device_id, h.segment_id), h.seq)
    return held


def _add_unreadable(ev: Evidence, store: DirectoryStore, key: str, seq: int) -> None:
    """A chain record the dock holds but cannot parse: given to the verifier as it is, so
    that it is reported (not silently replaced by another copy)."""
    name = f"chain/{seq:012d}.manifest.json"
    # gone although the dock's index holds it (the chain's tail, maybe): empty, reported torn
    try:
        with store.open_object(key) as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    ev.add({name: data}, {name: f"dock/objects/{key}"})


def _sim_device_id(path: Path, store: DirectoryStore, device_pub: Path | None) -> str | None:
    summary = path / "summary.json"
    if summary.is_file():
        device_id: str = json.loads(summary.read_text())["device_id"]
        return device_id
    if device_pub is None:
        return None
    raw = load_device_public_key(device_pub)
    return next((d.device_id for d in store.list_devices() if d.public_key == raw), None)


def collect_sim_folder(path: Path, device_id: str | None = None) -> dict[str, bytes]:
    """The files of ``sim_folder_evidence``, by the verifier's names."""
    return sim_folder_evidence(path, device_id).files


# -- gathering ---------------------------------------------------------------------------------
def _read_single(path: Path) -> bytes:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or socket): not read")
    return path.read_bytes()


def _collect(paths: list[Path]) -> Evidence:
    ev = Evidence()
    for path in paths:
        try:
            _collect_one(ev, path)
        except OSError as exc:
            raise InputError(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
    return ev


def _collect_one(ev: Evidence, path: Path) -> None:
    if not path.is_dir():  # a single file: named as it is named in its outbox
        parent = path.parent.name
        name = f"{parent}/{path.name}" if parent in ("segments", "chain") else path.name
        ev.add({name: _read_single(path)}, {name: str(path)})
        return
    raid = _sim_raid_keys(path)
    state = _sim_state_keys(path) if raid is None else None
    if raid is not None:
        from bwv.verify_raid import raid_exhibits

        ev.device_pub, ev.agency_key = raid
        sim = sim_folder_evidence(path)
        ev.add(sim.files, sim.real)
        ev.exhibits += raid_exhibits(path)
    elif state is not None:
        ev.device_pub, ev.agency_key = state
        sim = sim_folder_evidence(path, outbox="outbox", device_pub=ev.device_pub)
        ev.add(sim.files, sim.real)
    else:
        ev.add(read_outbox(path))


# -- the command -------------------------------------------------------------------------------
def run_verify(
    paths: list[Path],
    device_pub: Path | None,
    agency_key: Path | None,
    device_id: str | None,
    as_json: bool,
    dock_pub: Path | None = None,
    trust: LogTrust | None = None,
    *,
    agency_pub: Path | None = None,
) -> int:
    from crypto.verify.exhibit import is_exhibit
    from dock.holdings import is_store

    if len(paths) == 1 and is_exhibit(paths[0]):
        from bwv.verify_exhibit import run_verify_exhibit

        agency = agency_public_key_of(agency_pub, agency_key, as_json)
        return run_verify_exhibit(paths[0], device_pub, dock_pub, device_id, as_json, agency, trust)
    if len(paths) == 1 and is_store(paths[0]):
        from bwv.verify_log import run_verify_store

        return run_verify_store(paths[0], trust, as_json)
    try:
        ev = _collect(paths)
    except InputError as exc:
        fail(str(exc), as_json)
    if not any(is_evidence(name, data) for name, data in ev.files.items()):
        if len(paths) > 1:
            what = "none of the paths given holds an evidence file"
        elif paths[0].is_dir():
            what = f"{paths[0]} holds no evidence file"
        else:
            what = f"{paths[0]} is not an evidence file"
        fail(NOTHING_CHECKABLE.format(what=what), as_json)
    device_pub = device_pub or ev.device_pub
    agency_key = agency_key or ev.agency_key
    if device_pub is None:
        fail(
            "--device-pub is needed: the device's public key (device.key.pub, made by "
            "`bwv provision` beside the device key)",
            as_json,
        )
    try:
        pk = load_device_public_key(device_pub)
        sk = load_agency_private_key(agency_key) if agency_key else None
    except IdentityError as exc:
        fail(str(exc), as_json)
    apk = agency_public_key_of(agency_pub, None, as_json) or (sk.public_key if sk else None)
    dock_pk = _dock_key(dock_pub, as_json) if dock_pub else ev.dock_public_key
    report = verify(
        ev.files, pk, sk, device_id=device_id, agency_public_key=apk, dock_public_key=dock_pk
    )
    rename_files(report, ev.real)
    if ev.exhibits:
        from bwv.verify_raid import report_with_exhibits

        return report_with_exhibits(
            report,
            ev.exhibits,
            pk,
            device_id,
            as_json,
            sk is not None,
            agency_public_key=apk,
            trust=trust,
            folder=paths[0],
        )
    if trust is not None:
        _audit_log(report, paths[0], trust)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        _print(report, decrypting=sk is not None)
    return EXIT_OK if report.ok else EXIT_NOT_AUTHENTIC


def _audit_log(report: Report, path: Path, trust: LogTrust) -> None:
    """The dock's log in a folder (a `bwv sim` folder's) against the witness, or a note."""
    from bwv.verify_raid import audit_raid_dock

    if not audit_raid_dock(report, path, trust):
        click.echo(
            "note: the log is not checked: no dock store with a log here (give the "
            "dock's store, an exhibit, or a `bwv sim` folder)",
            err=True,
        )


def agency_public_key_of(
    agency_pub: Path | None, agency_key: Path | None, as_json: bool
) -> PublicKey | None:
    """The agency's public key, from --agency-pub or (its public half) --agency-key."""
    try:
        if agency_pub is not None:
            return load_agency_public_key(agency_pub)
        return load_agency_private_key(agency_key).public_key if agency_key else None
    except IdentityError as exc:
        fail(str(exc), as_json)


def _dock_key(path: Path, as_json: bool) -> bytes:
    from crypto.identity import load_dock_public_key

    try:
        return bytes(load_dock_public_key(path))
    except IdentityError as exc:
        fail(str(exc), as_json)


_NAME = re.compile(r"[\w./-]+")


def rename_files(report: Report, real: dict[str, str]) -> None:
    """Name the files in ``report`` as they are on disk (``real``: verifier's name -> path)."""
    names = {k: v for k, v in real.items() if k != v}
    if not names:
        return

    def one(token: str) -> str:
        stem = token.rstrip(".")
        return names[stem] + token[len(stem) :] if stem in names else token

    def sub(text: str | None) -> str | None:
        return None if text is None else _NAME.sub(lambda m: one(m.group(0)), text)

    for f in report.findings:
        f.file, f.detail = sub(f.file), sub(f.detail) or ""
    for s in report.segments:
        s.file, s.manifest, s.detail = sub(s.file), sub(s.manifest), sub(s.detail) or ""
        for c in s.chunks:
            c.detail = sub(c.detail) or ""


SUITE_WORDS = {
    "ed25519": "Ed25519, a key in a file",
    "ecdsa-p256-sha256": "ECDSA P-256, a key in a TPM",
}


def _print(report: Report, decrypting: bool) -> None:
    click.echo(
        f"device {report.device_id or '?'} key {report.key_id}"
        + (f" ({SUITE_WORDS.get(report.suite, report.suite)})" if report.suite else "")
        + ("" if decrypting else " (footage not decrypted: no --agency-key)")
    )
    for rec in report.recordings:
        click.echo(
            f"recording {rec.recording_id}: {rec.status}"
            + (f" (ended: {rec.end_reason})" if rec.end_reason else "")
        )
        click.echo(f"recording {rec.recording_id}: {recorded_between(rec)}; {wall_claim(rec)}")
    for seg in report.segments:
        bad = [c for c in seg.chunks if c.status != "authentic"]
        click.echo(
            f"  segment {seg.recording_id} #{seg.segment_index}: {seg.status}"
            f"  {len(seg.chunks) - len(bad)}/{len(seg.chunks)} chunks authentic"
            + (f"  {seg.detail}" if seg.detail else "")
        )
        for c in bad:
            click.echo(f"    chunk {c.chunk} ({c.kind}): {c.status} {c.detail}".rstrip())
    for f in report.findings:
        where = f" [{f.file}]" if f.file else ""
        click.echo(f"  {f.kind}: {f.detail}{where}")
    from bwv.verify_log import print_log

    print_log(report.log)
    click.echo(
        "VERIFIED: authentic and complete" if report.ok else "NOT VERIFIED: see the findings above"
    )
