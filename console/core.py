"""One console (``Console``) over one dock: its database, configuration and clock, the
account a request acts as (``Account``), the roles and what each may do (``may``), and
``Console.custody``, which writes every view, download, export and change as a custody event
in the dock's transparency log, naming the account."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.db import CONSOLE_DB_FILE, ConsoleDB
from dock.instance import Dock
from dock.store import LogEntry

# roles (an account has one or more)
TECHNICIAN = "technician"  # cameras (enrol, revoke) and uploads
SUPERVISOR = "supervisor"  # recordings' metadata: categories, sensitive marks, grants, holds
INVESTIGATOR = "investigator"  # exports (exhibits) of the recordings they may see
AUDITOR = "auditor"  # reads everything, the custody log included; changes nothing
ROLES = (TECHNICIAN, SUPERVISOR, INVESTIGATOR, AUDITOR)

# what a role may do: permission -> the roles that have it
PERMISSIONS: dict[str, frozenset[str]] = {
    "cameras.view": frozenset({TECHNICIAN, SUPERVISOR, AUDITOR}),
    "cameras.change": frozenset({TECHNICIAN}),  # enrol (make a token), revoke
    "uploads.view": frozenset({TECHNICIAN, SUPERVISOR, AUDITOR}),
    "recordings.view": frozenset({SUPERVISOR, INVESTIGATOR, AUDITOR}),
    "recordings.change": frozenset({SUPERVISOR}),  # categories, sensitive, grants, legal hold
    "recordings.export": frozenset({INVESTIGATOR}),
    "custody.view": frozenset({SUPERVISOR, AUDITOR}),  # the full custody log and its export
    "retention.view": frozenset({SUPERVISOR, AUDITOR}),
    "retention.run": frozenset({SUPERVISOR}),
    "problems.view": frozenset(ROLES),
}


@dataclass(frozen=True)
class Account:
    """A named person with one or more roles. ``devices``: the cameras a supervisor answers
    for (their officers'); empty means every camera."""

    name: str
    roles: frozenset[str]
    devices: frozenset[str] = frozenset()
    disabled: bool = False

    @property
    def actor(self) -> str:
        """How custody events name the account."""
        return f"account:{self.name}"

    def may(self, permission: str) -> bool:
        return not self.disabled and bool(self.roles & PERMISSIONS[permission])

    def answers_for(self, device_id: str) -> bool:
        """A supervisor's own officers' camera (any camera when no list is set)."""
        return not self.devices or device_id in self.devices


@dataclass(frozen=True)
class ConsoleConfig:
    session_idle_s: int = 30 * 60  # a session unused this long ends
    session_max_s: int = 12 * 3600  # and any session ends after this
    not_docked_hours: float = 24.0  # a camera with footage unshipped this long is a problem
    stalled_upload_s: int = 60  # an upload that has not moved this long is stalled
    disk_warn_fraction: float = 0.10  # free space below this fraction of the disk: a problem
    retention_interval_s: int = 3600  # how often the retention job runs in `bwv dock serve`
    secure_cookies: bool = True  # False only for tests over plain HTTP


@dataclass
class Console:
    """One console over one dock."""

    dock: Dock
    store_dir: Path
    db: ConsoleDB
    config: ConsoleConfig = field(default_factory=ConsoleConfig)

    def now_us(self) -> int:
        return self.dock.clock()

    def custody(
        self,
        account: Account | None,
        action: str,
        *,
        recording_id: str | None = None,
        device_id: str | None = None,
        segment_id: str | None = None,
        sha256: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> LogEntry:
        """Write a custody event (a leaf of the transparency log), naming the account
        (``account:<name>``; ``console`` for the console's own jobs)."""
        d = dict(detail or {})
        if recording_id is not None:
            d["recording_id"] = recording_id
        return self.dock.store.log(
            account.actor if account is not None else "console",
            action,
            self.now_us(),
            device_id=device_id,
            segment_id=segment_id,
            sha256=sha256,
            detail=d,
        )


def open_console(dock: Dock, store_dir: Path, config: ConsoleConfig | None = None) -> Console:
    """The console over ``dock`` whose store is ``store_dir`` (its database made if missing)."""
    return Console(
        dock,
        Path(store_dir),
        ConsoleDB(Path(store_dir) / CONSOLE_DB_FILE),
        config or ConsoleConfig(),
    )
