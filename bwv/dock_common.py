"""What every ``bwv dock`` command shares: exit codes, the usage error, times as shown,
opening the store."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dock.export import ExportError, open_store

if TYPE_CHECKING:
    from dock.store_sqlite import DirectoryStore

EXIT_OK, EXIT_NOT_VERIFIED, EXIT_ERROR = 0, 1, 2


class DockUsageError(click.ClickException):
    """A problem with what was asked (missing store, unknown id, unreadable key): exit 2."""

    exit_code = EXIT_ERROR


def now_us() -> int:
    return time.time_ns() // 1000


def when(us: int | None) -> str:
    """A wall-clock time in microseconds as a user reads it (UTC), or ``-``."""
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def open_store_or_fail(store_dir: Path) -> DirectoryStore:
    """The existing dock store in ``store_dir``, or a DockUsageError saying why not."""
    try:
        return open_store(store_dir)
    except ExportError as exc:
        raise DockUsageError(str(exc)) from None
