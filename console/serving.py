"""What ``bwv dock serve`` needs to serve the console beside the dock: the console and its app
over the served dock (``console_app``), its HTTPS files (console/tls.py), and the retention
job run in a thread every ``ConsoleConfig.retention_interval_s`` (``RetentionRunner``).

The dock never imports the console: bwv builds the app here and hands it to
``dock.server.run_dock(..., extra=[(app, sock, tls)])``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.core import Console, ConsoleConfig, open_console
from dock.instance import Dock

log = logging.getLogger("bwv.dock")


def console_app(dock: Dock, store_dir: Path, config: ConsoleConfig | None = None) -> Any:
    """The console over ``dock`` and its ASGI app (``app.state.console`` is the console)."""
    from console.app import create_console_app

    return create_console_app(open_console(dock, Path(store_dir), config))


def default_job() -> Callable[[Console], Any] | None:
    """The retention job (console/retention.py), run as the console itself (no account)."""
    try:
        from console.retention import run_job
    except ImportError:  # not in this build
        return None
    return lambda console: run_job(console, None)


class RetentionRunner:
    """Runs ``job(console)`` at start and then every ``interval_s`` until ``stop``; a failure
    is logged in one line and the next run tries again."""

    def __init__(
        self,
        console: Console,
        job: Callable[[Console], Any] | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.console = console
        self.job = job if job is not None else default_job()
        self.interval_s = interval_s or console.config.retention_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def run_once(self) -> None:
        if self.job is None:
            return
        try:
            self.job(self.console)
        except Exception as exc:  # the dock keeps serving; the job's page shows its runs
            self.failures += 1
            log.error("retention job failed: %s", exc)
        finally:
            self.runs += 1

    def start(self) -> RetentionRunner:
        if self.job is None or self._thread is not None:
            return self

        def loop() -> None:
            self.run_once()
            while not self._stop.wait(self.interval_s):
                self.run_once()

        self._thread = threading.Thread(target=loop, name="bwv-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
