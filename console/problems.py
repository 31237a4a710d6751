"""Everything at the dock that needs a person, on one page (``/problems``): what, where (a
link to the page that shows it) and since when.

- ``gap``: a camera's chain misses records (footage recorded and never received), or a
  recording misses a segment or its chain breaks (``dock.holdings``).
- the store against its witnessed log (``dock.log_audit.audit_store`` with the witness keys
  the dock is configured with, as ``bwv dock status --verify`` does): ``withheld`` (a leaf the
  witness saw that the store no longer holds, unexplained), ``altered``, ``equivocation``...
- ``rejected``: uploads that failed the dock's verification and were never received since;
  ``failed``: a recording whose stored bytes no longer check out (only when re-verified: it
  reads every stored byte).
- ``not_docked``: a camera whose last report had footage queued and that has not docked for
  ``ConsoleConfig.not_docked_hours`` (the camera's report: ``store.device_report``).
- ``retention_due``: recordings whose retention has run out (``console.retention.due``).
- ``disk``: free space under the store below ``ConsoleConfig.disk_warn_fraction``.

The firewall holds here too: a problem about a recording the account may not see says only
the recording's id ("restricted"), never its camera, state or categories.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from console.core import Account, Console
from console.custody_log import all_entries
from crypto.verify.timecheck import utc
from dock.store import LogEntry

GAP = "gap"
REJECTED = "rejected"
FAILED = "failed"
NOT_DOCKED = "not_docked"
RETENTION_DUE = "retention_due"
DISK = "disk"
RESTRICTED = "restricted"  # a problem about a recording this account may not see

TITLES = {
    GAP: "Footage missing at the dock",
    "withheld": "Withheld from the witnessed log",
    "altered": "Altered",
    "equivocation": "Two histories",
    "time_inconsistent": "Time inconsistent",
    REJECTED: "Uploads that failed verification",
    FAILED: "Stored bytes that no longer verify",
    NOT_DOCKED: "Cameras with footage not docked",
    RETENTION_DUE: "Retention deletions due",
    DISK: "Disk space",
    RESTRICTED: "Restricted recordings needing attention",
}


@dataclass(frozen=True)
class Problem:
    kind: str  # one of TITLES' keys (a store check's finding kind otherwise)
    what: str  # one line a person reads
    where: str | None  # a link into the console (a path)
    since_us: int | None  # when it began, when known
    device_id: str | None = None
    recording_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "where": self.where,
            "since_us": self.since_us,
            "device_id": self.device_id,
            "recording_id": self.recording_id,
        }


@dataclass
class ProblemReport:
    problems: list[Problem] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what was checked and how it went

    def groups(self) -> list[tuple[str, str, list[Problem]]]:
        """(kind, title, problems) in the order of ``TITLES``, then any other kind."""
        kinds = list(TITLES) + sorted({p.kind for p in self.problems} - set(TITLES))
        out = []
        for k in kinds:
            mine = [p for p in self.problems if p.kind == k]
            if mine:
                out.append((k, TITLES.get(k, k.replace("_", " ").capitalize()), mine))
        return out


def recording_link(device_id: str, recording_id: str) -> str:
    """Until ``_linked`` gives it the recording's page: the recordings list."""
    return "/recordings"


def camera_link(device_id: str) -> str:
    return f"/recordings?camera={quote(device_id, safe='')}"


# --------------------------------------------------------------------------- the firewall


def _guarded(console: Console, account: Account, found: list[Problem]) -> list[Problem]:
    """The problems as ``account`` may read them: each about a recording links to its page
    (by the catalog's opaque reference, which names no camera); about a recording the
    account may not see, only its id is said."""
    try:
        from console.catalog import Catalog
    except ImportError:  # pragma: no cover - the catalog lands with the firewall
        return found
    catalog = Catalog(console)
    keys = [(p.device_id, p.recording_id) for p in found if p.device_id and p.recording_id]
    refs = catalog.marks.refs(list(dict.fromkeys(keys))) if keys else {}
    restricted_ids = {r for _, r in set(catalog.marks.sensitive()) - catalog.marks.granted(
        account.name)}  # fmt: skip
    out = []
    hidden: dict[str, Problem] = {}
    for p in found:
        if p.recording_id is not None and p.device_id is None:
            if p.recording_id in restricted_ids:  # a finding naming it, not its camera
                hidden[p.recording_id] = _restricted(p.recording_id, "/recordings")
            else:
                out.append(p)
            continue
        if p.device_id is None or p.recording_id is None:
            out.append(p)
            continue
        ref = refs.get((p.device_id, p.recording_id))
        where = f"/recordings/{quote(ref, safe='')}" if ref else p.where
        if catalog.may_see(account, p.device_id, p.recording_id):
            out.append(replace(p, where=where if p.where == "/recordings" else p.where))
            continue
        hidden.setdefault(p.recording_id, _restricted(p.recording_id, where))
    # one line per restricted recording, by id: how many problems it has, and of which
    # kind (the checks' order), would tell what is wrong with it
    return out + [hidden[r] for r in sorted(hidden)]


def _restricted(recording_id: str, where: str | None) -> Problem:
    return Problem(
        RESTRICTED,
        f"recording {recording_id} needs attention (restricted: only accounts granted "
        "access see why)",
        where,
        None,
        None,
        recording_id,
    )


# --------------------------------------------------------------------------- the checks


def gaps(console: Console, entries: list[LogEntry] | None = None) -> list[Problem]:
    """Records missing from each camera's chain, and recordings with a gap or a break."""
    from dock.holdings import GAP as HOLDINGS_GAP
    from dock.holdings import scan_recordings
    from dock.store import chain_report

    store = console.dock.store
    recordings, holdings = scan_recordings(store)  # type: ignore[arg-type]
    since = _gap_entries(all_entries(console) if entries is None else entries)
    out = []
    for dev, h in holdings.items():
        chain = chain_report([r.held for r in h.records] + h.unreadable)
        for a, b in chain.gaps:
            seqs = str(a) if a == b else f"{a}..{b}"
            out.append(
                Problem(
                    GAP,
                    f"camera {dev}: chain record {seqs} not at the dock (recorded, never received)",
                    camera_link(dev),
                    _noticed(since, dev, a, b),
                    dev,
                )
            )
    for r in recordings:
        if r.state == HOLDINGS_GAP:
            out.append(
                Problem(
                    GAP,
                    f"recording {r.recording_id} (camera {r.device_id}): {r.detail}",
                    recording_link(r.device_id, r.recording_id),
                    _noticed(since, r.device_id, r.first_seq, r.last_seq) or r.wall_start_us,
                    r.device_id,
                    r.recording_id,
                )
            )
    return out


def _gap_entries(entries: list[LogEntry]) -> dict[tuple[str, int, int], int]:
    """(device, first and last missing seq) -> when the dock first logged the gap."""
    out: dict[tuple[str, int, int], int] = {}
    for e in entries:
        if e.action == "gap" and e.device_id:
            a, b = e.detail.get("missing_from_seq"), e.detail.get("missing_to_seq")
            if isinstance(a, int) and isinstance(b, int):
                out.setdefault((e.device_id, a, b), e.at_us)
    return out


def _noticed(since: dict[tuple[str, int, int], int], dev: str, lo: int, hi: int) -> int | None:
    """When the dock first logged a gap of ``dev`` among seqs ``lo..hi``."""
    got = [t for (d, a, b), t in since.items() if d == dev and a <= hi and b >= lo]
    return min(got, default=None)


def rejected(console: Console, entries: list[LogEntry] | None = None) -> list[Problem]:
    """Per camera: uploads the dock rejected (failed verification) and never received since."""
    open_: dict[tuple[str, str], Any] = {}
    for e in all_entries(console) if entries is None else entries:
        if not e.device_id or not e.segment_id:
            continue
        if e.action == "rejected":
            open_.setdefault((e.device_id, e.segment_id), e)
        elif e.action == "received":
            open_.pop((e.device_id, e.segment_id), None)
    by_dev: dict[str, list[Any]] = {}
    for (dev, _), e in open_.items():
        by_dev.setdefault(dev, []).append(e)
    out = []
    for dev, entries in sorted(by_dev.items()):
        last = max(entries, key=lambda e: e.index)
        reasons = "; ".join(str(x) for x in last.detail.get("reasons") or []) or "no reason given"
        n = len(entries)
        out.append(
            Problem(
                REJECTED,
                f"camera {dev}: {n} upload{'s' if n != 1 else ''} failed verification "
                f"(last: {reasons})",
                f"/custody?camera={quote(dev, safe='')}",
                min(e.at_us for e in entries),
                dev,
            )
        )
    return out


def failed(console: Console) -> list[Problem]:
    """Recordings whose stored bytes or records no longer verify (reads every stored byte)."""
    from dock.export import verify_recording
    from dock.holdings import recording_records, scan_recordings
    from dock.verify import reverified_state

    store = console.dock.store
    recordings, holdings = scan_recordings(store)  # type: ignore[arg-type]
    out = []
    for r in recordings:
        recs = recording_records(holdings[r.device_id].records, r.recording_id)
        report, _ = verify_recording(store, r.device_id, recs)  # type: ignore[arg-type]
        state, detail = reverified_state(report, r.recording_id)
        if state == FAILED:
            out.append(
                Problem(
                    FAILED,
                    f"recording {r.recording_id} (camera {r.device_id}): {detail}",
                    recording_link(r.device_id, r.recording_id),
                    None,
                    r.device_id,
                    r.recording_id,
                )
            )
    return out


def store_check(console: Console, trust: Any = None) -> tuple[list[Problem], str]:
    """The store against its witnessed log, with ``trust`` (``LogTrust``) or the witnesses
    the dock is configured with (their keys, the newest kept checkpoint they cosigned); the
    problems found and one line saying what was checked."""
    from dock.checkpoints import load_log_config
    from dock.log_audit import audit_store

    if trust is None:
        try:
            witnesses = load_log_config(console.store_dir).witnesses
        except ValueError as exc:
            return [], f"store against its witnessed log: not checked ({exc})"
        if not witnesses:
            return [], "store against its witnessed log: not checked (no witness configured)"
        trust = _newest_witnessed(console, tuple(w.vkey for w in witnesses))
    try:
        audit = audit_store(console.store_dir, trust)
    except Exception as exc:  # noqa: BLE001 - an unreadable log: said, not raised
        return [
            Problem("withheld", f"the store's log cannot be read: {exc}", "/custody", None)
        ], "store against its witnessed log: could not check"
    devices = {rec: r.get("device_id") for rec, r in audit.recordings.items()}
    out = []
    for f in audit.findings:
        dev = devices.get(f.recording_id) if f.recording_id else None
        dev = dev if isinstance(dev, str) else None
        where = recording_link(dev, str(f.recording_id)) if dev else "/custody"
        out.append(Problem(f.kind, f.detail, where, None, dev, f.recording_id))
    cp = audit.checkpoint
    size = f" (witnessed size {cp.size})" if cp is not None else ""
    verdict = "every leaf the witness saw is held or explained" if audit.ok else "NOT VERIFIED"
    return out, f"store against its witnessed log{size}: {verdict}"


def _newest_witnessed(console: Console, vkeys: tuple[str, ...]) -> Any:
    """The trust to check the store with: the newest kept checkpoint a witness cosigned (the
    latest may await its cosignature a moment; the latest one, to be found unwitnessed, if
    none was ever cosigned)."""
    from console.witnessed import newest_cosigned
    from crypto.verify.log import LogTrust
    from dock.checkpoints import checkpoint_store

    got = newest_cosigned(checkpoint_store(console.store_dir, console.dock.store), vkeys)
    return LogTrust(vkeys, got.note if got is not None else None)


def witness_away(console: Console) -> list[Problem]:
    """A witness the dock's log could not reach lately: the entries since it last cosigned
    wait for it (the dock's own record of its witnesses: ``DockLog.health``)."""
    dlog = getattr(console.dock, "translog", None)
    if dlog is None:
        return []
    out = []
    for name, st in dlog.health.witnesses.items():
        if st.last_error:
            out.append(
                Problem(
                    "unwitnessed",
                    f"the witness {name} has not cosigned the dock's log since its first "
                    f"{st.size} entries: {st.last_error}",
                    None,
                    None,
                )
            )
    return out


def not_docked(
    console: Console, now_us: int, entries: list[LogEntry] | None = None
) -> list[Problem]:
    """Cameras whose last report had footage queued and that have not docked since
    ``not_docked_hours`` (the camera's report, ``store.device_report``: none, no problem).
    A camera reports at the start of each round, then ships: segments the dock received
    after the report count against what it said was queued."""
    store = console.dock.store
    report_of = getattr(store, "device_report", None)
    if report_of is None:
        return []
    limit_us = int(console.config.not_docked_hours * 3600e6)
    received: dict[str, list[int]] = {}
    for e in all_entries(console) if entries is None else entries:
        if e.action == "received" and e.device_id:
            received.setdefault(e.device_id, []).append(e.at_us)
    out = []
    for dev in store.list_devices():
        if dev.revoked:
            continue
        try:
            report = report_of(dev.device_id)
        except Exception:  # noqa: BLE001 - an unreadable report is no report
            report = None
        if not report or not int(report.get("queued_segments") or 0):
            continue
        seen = report.get("received_at_us")
        if not isinstance(seen, int) or now_us - seen < limit_us:
            continue
        n, size = int(report["queued_segments"]), int(report.get("queued_bytes") or 0)
        shipped = received.get(dev.device_id, [])
        if sum(1 for t in shipped if t > seen) >= n:  # it shipped them after reporting
            continue
        seen = max([seen, *shipped])
        oldest = report.get("oldest_queued_wall_us")
        hours = (now_us - seen) / 3600e6
        out.append(
            Problem(
                NOT_DOCKED,
                f"camera {dev.device_id}: {n} segment{'s' if n != 1 else ''} "
                f"({_size(size)}) recorded and not at the dock; last docked {utc(seen)} UTC "
                f"({hours:.0f} h ago)",
                "/cameras",
                oldest if isinstance(oldest, int) else seen,
                dev.device_id,
            )
        )
    return out


def retention_due(console: Console, now_us: int) -> list[Problem]:
    """Recordings whose retention has run out (``console.retention.due``)."""
    try:
        from console.retention import due
    except ImportError:  # pragma: no cover - retention lands with the catalog
        return []
    out = []
    for d in due(console, now_us):
        dev, rec = getattr(d, "device_id", None), getattr(d, "recording_id", None)
        until = getattr(d, "retention_until_us", None) or getattr(d, "due_at_us", None)
        cats = ", ".join(getattr(d, "categories", None) or []) or "no category"
        out.append(
            Problem(
                RETENTION_DUE,
                f"recording {rec} (camera {dev}, {cats}): retention ran out; the next "
                "retention job deletes it",
                "/retention",
                until if isinstance(until, int) else None,
                dev,
                rec,
            )
        )
    return out


def disk(console: Console) -> list[Problem]:
    """Free space under the store below ``disk_warn_fraction`` of its disk."""
    try:
        st = os.statvfs(console.store_dir)
    except OSError as exc:
        return [Problem(DISK, f"the store's disk cannot be read: {exc.strerror}", None, None)]
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    if total <= 0 or free / total >= console.config.disk_warn_fraction:
        return []
    return [
        Problem(
            DISK,
            f"{_size(free)} free of {_size(total)} ({100 * free / total:.1f} %) under "
            f"{console.store_dir}: below {100 * console.config.disk_warn_fraction:.0f} %; "
            "uploads stop when it is full",
            "/healthz",
            None,
        )
    ]


def _size(n: int) -> str:
    x = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if x < 1000 or unit == "TB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1000
    return f"{n} B"  # pragma: no cover


def collect(
    console: Console, account: Account, *, reverify: bool = False, trust: Any = None
) -> ProblemReport:
    """Every problem ``account`` may read (``reverify``: also re-check every stored byte)."""
    now = console.now_us()
    rep = ProblemReport()
    try:  # the custody log, read once for the checks below (unreadable: each says so)
        entries: list[LogEntry] | None = all_entries(console)
    except Exception:  # noqa: BLE001 - the checks then read it themselves, and fail each
        entries = None
    steps: list[tuple[str, Callable[[], list[Problem]]]] = [
        ("gaps in the cameras' chains", lambda: gaps(console, entries)),
        ("uploads rejected", lambda: rejected(console, entries)),
        ("cameras not docked", lambda: not_docked(console, now, entries)),
        ("retention due", lambda: retention_due(console, now)),
        ("disk space", lambda: disk(console)),
        ("witnesses away", lambda: witness_away(console)),
    ]
    if reverify:
        steps.insert(2, ("stored bytes re-verified", lambda: failed(console)))
    for name, step in steps:
        try:
            found = step()
        except Exception as exc:  # noqa: BLE001 - one check failing must not hide the others
            rep.checks.append(f"{name}: could not check ({exc})")
            continue
        rep.problems += found
        # counted as the account reads them: one about a restricted recording is not
        # counted under its check (that would say what is wrong with it)
        seen = sum(1 for p in _guarded(console, account, found) if p.kind != RESTRICTED)
        rep.checks.append(f"{name}: {seen or 'none'}")
    try:
        found, line = store_check(console, trust)
    except Exception as exc:  # noqa: BLE001
        found, line = [], f"store against its witnessed log: could not check ({exc})"
    rep.problems += found
    rep.checks.append(line)
    if not reverify:
        rep.checks.append("stored bytes: not re-verified (it reads every stored byte)")
    rep.problems = _guarded(console, account, rep.problems)
    return rep
