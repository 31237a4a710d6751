"""The recordings as the console's people see them (``Catalog``), behind the firewall for
sensitive recordings.

- A supervisor marks a recording of a camera they answer for sensitive (``mark_sensitive``,
  with a reason: "victim or witness present"); from then on its metadata beyond its id and
  times, and any export, are only for accounts granted access to it (``grant``, with a
  reason; the marker is granted). Listing and search show such a recording to others as its
  id and times only (``restricted``), and a search by camera, category or status never
  matches it (that would leak what it is).
- Every look at a recording (``detail``), granted or refused, and every change and export is
  a custody event naming the account; a refusal is written before ``Forbidden`` is raised.
- The mark is lifted by two supervisors: one asks (``request_lift``), another approves
  (``approve_lift``).
- Categories (from the retention policy) and legal holds decide retention
  (console/retention.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.catalog_db import Key, Marks
from console.catalog_views import (
    CatalogError,
    Forbidden,
    NotFound,
    RecordingDetail,
    RecordingQuery,
    RecordingRow,
    build_detail,
    build_row,
    matches,
)
from console.core import Account, Console
from console.object_lock import apply_one
from console.recording_facts import RecordingFacts, all_recordings, one_recording
from console.redact import make_redactor
from console.retention_policy import RetentionPolicy, load_policy
from dock.store import LogEntry

__all__ = [
    "Catalog",
    "CatalogError",
    "Forbidden",
    "NotFound",
    "RecordingDetail",
    "RecordingQuery",
    "RecordingRow",
]


def _default_account_exists(console: Console) -> Callable[[str], bool]:
    try:
        from console.accounts import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            AccountStore,
        )
    except ImportError:
        return lambda name: bool(name)
    store = AccountStore(console.db)
    return lambda name: store.get(name) is not None


@dataclass
class Catalog:
    console: Console
    policy: RetentionPolicy | None = None
    account_exists: Callable[[str], bool] | None = None
    marks: Marks = field(init=False)

    def __post_init__(self) -> None:
        self.marks = Marks(self.console.db)
        if self.policy is None:
            self.policy = load_policy(self.console.store_dir)
        if self.account_exists is None:
            self.account_exists = _default_account_exists(self.console)

    @property
    def store(self) -> Any:
        return self.console.dock.store

    # ------------------------------------------------------------------ the firewall

    def may_see(self, account: Account, device_id: str, recording_id: str) -> bool:
        """Whether the account may see the recording's metadata (not sensitive, or granted);
        roles are checked apart."""
        key = (device_id, recording_id)
        if account.disabled:
            return False
        if key not in self.marks.sensitive():
            return True
        return key in self.marks.granted(account.name)

    def _refuse(self, account: Account | None, key: Key, attempt: str, why: str) -> Forbidden:
        """Write ``access_refused`` (the attempt, why); the exception to raise."""
        self.console.custody(
            account,
            "access_refused",
            recording_id=key[1],
            device_id=key[0],
            detail={"attempt": attempt, "why": why},
        )
        return Forbidden(f"not allowed: {why}")

    def _check(
        self,
        account: Account,
        key: Key,
        attempt: str,
        permission: str,
        *,
        see: bool = True,
        own: bool = False,
    ) -> None:
        """Refuse (``Forbidden``, in the custody log) unless the account has ``permission``,
        may see the recording (``see``) and answers for its camera (``own``)."""
        if not account.may(permission):
            raise self._refuse(account, key, attempt, f"{account.name} lacks {permission}")
        # restricted before "not your camera": that refusal, on the page, names the camera
        if see and not self.may_see(account, *key):
            raise self._refuse(
                account, key, attempt, "restricted: sensitive, and no access granted"
            )
        if own and not account.answers_for(key[0]):
            raise self._refuse(
                account, key, attempt, f"{account.name} does not answer for camera {key[0]}"
            )

    def _facts(self, key: Key) -> RecordingFacts:
        facts = one_recording(self.store, *key)
        if facts is None:
            raise NotFound(f"no recording {key[1]!r} of camera {key[0]!r} at this dock")
        return facts

    def resolve(self, ref: str) -> Key:
        """The (device_id, recording_id) of a listing's ``ref``."""
        key = self.marks.key_of(ref)
        if key is None:
            raise NotFound(f"no recording {ref!r}")
        return key

    # ------------------------------------------------------------------ reading

    def list(
        self, account: Account, q: RecordingQuery | None = None, *, log: bool = True
    ) -> list[RecordingRow]:
        """The recordings the dock holds (or deleted under retention), as this account may
        see them, newest first; ``q`` filters. One ``viewed`` custody event for the listing
        (``log``)."""
        q = q or RecordingQuery()
        if not account.may("recordings.view"):
            raise self._refuse(account, ("", ""), "list recordings", "lacks recordings.view")
        facts = all_recordings(self.store)
        cats, sens, holds = self.marks.categories(), self.marks.sensitive(), self.marks.holds()
        granted = self.marks.granted(account.name)
        refs = self.marks.refs([(f.device_id, f.recording_id) for f in facts])
        rows = []
        for f in facts:
            key = (f.device_id, f.recording_id)
            assert self.policy is not None
            row = build_row(
                f, refs[key], cats.get(key, []), key in sens, key in sens and key not in granted,
                key in holds, self.policy,
            )  # fmt: skip
            if matches(row, q):
                rows.append(row)
        # newest first, by time alone: grouped by camera, a restricted row's place would
        # tell its camera
        rows.sort(key=lambda r: (r.t0_us is None, -(r.t0_us or 0), r.recording_id))
        if log:
            self.console.custody(
                account,
                "viewed",
                detail={"what": "recordings", "query": q.to_json(), "shown": len(rows)},
            )
        return rows

    def detail(self, account: Account, device_id: str, recording_id: str) -> RecordingDetail:
        """One recording in full: ``viewed`` in the custody log; a restricted one (or an
        account without recordings.view) gets ``access_refused`` and ``Forbidden``."""
        key = (device_id, recording_id)
        facts = self._facts(key)
        self._check(account, key, "view", "recordings.view")
        self.console.custody(
            account, "viewed", recording_id=recording_id, device_id=device_id, detail={}
        )
        assert self.policy is not None
        sens = self.marks.sensitive().get(key)
        return build_detail(
            self.console,
            facts,
            self.marks.refs([key])[key],
            self.marks.categories().get(key, []),
            sens,
            self.marks.holds().get(key),
            self.marks.grants(key) if sens else [],
            self.marks.lift_request(key),
            self.policy,
        )

    # ------------------------------------------------------------------ changes

    def set_categories(
        self,
        account: Account,
        device_id: str,
        recording_id: str,
        categories: builtins.list[str],
    ) -> str | None:
        """Set the categories; on an S3 store the objects are then locked as they ask
        (console/object_lock.py). Returns what the object store failed to do, or None."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "categorise", "recordings.change", own=True)
        assert self.policy is not None
        wanted = sorted(set(c.strip() for c in categories if c.strip()))
        unknown = [c for c in wanted if c not in self.policy.periods]
        if unknown:
            raise CatalogError(
                f"unknown category {', '.join(unknown)} (the policy has "
                f"{', '.join(self.policy.categories)})"
            )
        before = self.marks.categories().get(key, [])
        self.console.custody(
            account,
            "categorised",
            recording_id=recording_id,
            device_id=device_id,
            detail={"categories": wanted, "before": before},
        )
        self.marks.set_categories(key, wanted, account.name, self.console.now_us())
        return self._lock(account, key, "categorised")

    def mark_sensitive(
        self, account: Account, device_id: str, recording_id: str, reason: str
    ) -> None:
        """Only a supervisor who answers for the camera; the marker is granted access."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "mark sensitive", "recordings.change", own=True)
        reason = _reason(reason)
        if key in self.marks.sensitive():
            raise CatalogError("the recording is already marked sensitive")
        self.console.custody(
            account,
            "marked_sensitive",
            recording_id=recording_id,
            device_id=device_id,
            detail={"reason": reason},
        )
        self.marks.mark(key, reason, account.name, self.console.now_us())

    def grant(
        self, account: Account, device_id: str, recording_id: str, grantee: str, reason: str
    ) -> None:
        """Access to a sensitive recording for ``grantee``, by a supervisor who answers for
        the camera and has access themselves."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "grant access", "recordings.change", own=True)
        reason = _reason(reason)
        if key not in self.marks.sensitive():
            raise CatalogError("the recording is not marked sensitive: no grant is needed")
        assert self.account_exists is not None
        if not self.account_exists(grantee):
            raise CatalogError(f"no account {grantee!r}")
        self.console.custody(
            account,
            "access_granted",
            recording_id=recording_id,
            device_id=device_id,
            detail={"grantee": grantee, "reason": reason},
        )
        self.marks.grant(key, grantee, reason, account.name, self.console.now_us())

    def request_lift(
        self, account: Account, device_id: str, recording_id: str, reason: str
    ) -> None:
        """The first of the two supervisors who lift a sensitive mark."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "request lift", "recordings.change", own=True)
        reason = _reason(reason)
        if key not in self.marks.sensitive():
            raise CatalogError("the recording is not marked sensitive")
        self.console.custody(
            account,
            "sensitive_lift_requested",
            recording_id=recording_id,
            device_id=device_id,
            detail={"reason": reason},
        )
        self.marks.request_lift(key, account.name, reason, self.console.now_us())

    def approve_lift(self, account: Account, device_id: str, recording_id: str) -> None:
        """The second supervisor (not the one who asked) lifts the mark."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "approve lift", "recordings.change", own=True)
        asked = self.marks.lift_request(key)
        if asked is None:
            raise CatalogError("no one has asked to lift the mark: request it first")
        if asked.who == account.name:
            raise self._refuse(
                account,
                key,
                "approve lift",
                "the supervisor who asked cannot approve: lifting needs a second supervisor",
            )
        self.console.custody(
            account,
            "sensitive_lifted",
            recording_id=recording_id,
            device_id=device_id,
            detail={"requested_by": asked.who, "request_reason": asked.reason},
        )
        self.marks.lift(key)

    def set_hold(
        self, account: Account, device_id: str, recording_id: str, reason: str
    ) -> str | None:
        """A legal hold: retention never deletes the recording while it holds (on an S3
        store its objects' legal hold is set too). Returns what the object store failed to
        do, or None."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "set legal hold", "recordings.change")
        reason = _reason(reason)
        self.console.custody(
            account,
            "legal_hold_set",
            recording_id=recording_id,
            device_id=device_id,
            detail={"reason": reason},
        )
        self.marks.hold(key, reason, account.name, self.console.now_us())
        return self._lock(account, key, "legal_hold_set")

    def release_hold(
        self, account: Account, device_id: str, recording_id: str, reason: str
    ) -> str | None:
        """End a legal hold (and its objects' legal hold on an S3 store); returns what the
        object store failed to do, or None."""
        key = (device_id, recording_id)
        self._facts(key)
        self._check(account, key, "release legal hold", "recordings.change")
        reason = _reason(reason)
        if key not in self.marks.holds():
            raise CatalogError("the recording is not on legal hold")
        self.console.custody(
            account,
            "legal_hold_released",
            recording_id=recording_id,
            device_id=device_id,
            detail={"reason": reason},
        )
        self.marks.release(key)
        return self._lock(account, key, "legal_hold_released")

    def _lock(self, account: Account, key: Key, reason: str) -> str | None:
        """The objects' lock after a change (nothing on a directory store): the object
        store's failure as a message for the page; the next retention job tries again."""
        assert self.policy is not None
        got = apply_one(self.console, key, self.policy, account, reason)
        if got.error is None:
            return None
        return f"{got.error}; the next retention job tries again"

    # ------------------------------------------------------------------ export

    def export(self, account: Account, device_id: str, recording_id: str, out_dir: Path) -> Path:
        """The recording's exhibit as a zip in ``out_dir`` (never decrypted: the dock has no
        agency key); the dock's ``exported`` custody entry names the account."""
        from dock.export import ExportError, export_recording

        key = (device_id, recording_id)
        facts = self._facts(key)
        self._check(account, key, "export", "recordings.export")
        if facts.deleted:
            raise NotFound(f"recording {recording_id} was deleted under retention")
        out = Path(out_dir) / f"{device_id}_{recording_id}"
        try:
            got = export_recording(
                self.console.store_dir,
                recording_id,
                out,
                None,
                device_id=device_id,
                replace=True,
                zip_to=True,
                clock=self.console.now_us,
                actor=account.actor,
            )
        except ExportError as exc:
            raise CatalogError(str(exc)) from None
        assert got.zipped is not None
        return got.zipped

    # ------------------------------------------------------------------ custody rows

    def redactor(self, account: Account) -> Callable[[LogEntry], dict[str, Any]]:
        """``redact_entry`` for many entries: the restricted recordings looked up once."""
        restricted = set(self.marks.sensitive()) - self.marks.granted(account.name)
        return make_redactor(self.store, restricted)

    def redact_entry(self, account: Account, entry: LogEntry) -> dict[str, Any]:
        """A custody entry as ``account`` may see it: about a recording restricted to them,
        only its index, time, actor, action and the recording id (``redacted`` True)."""
        return self.redactor(account)(entry)


def _reason(reason: str) -> str:
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise CatalogError("give a reason")
    if len(reason) > 500:
        raise CatalogError("the reason is too long (500 characters at most)")
    return reason
