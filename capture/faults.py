"""One fault reporter for the capture sources (camera, microphone).

A source's threads never raise a fault into their caller: the first fault is kept (the
source's ``fault``) and handed once to the daemon's ``on_fault`` callback; every fault is
logged. A callback that itself fails is logged, never raised into the source's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

FaultCallback = Callable[[str], None]


class FaultReporter:
    """Keeps a source's first fault and reports it once."""

    def __init__(
        self, source: str, log: logging.Logger, on_fault: FaultCallback | None = None
    ) -> None:
        self.source = source
        self.on_fault = on_fault
        self._log = log
        self.fault: str | None = None

    def report(self, reason: str) -> None:
        self._log.error("%s fault: %s", self.source, reason)
        if self.fault is not None:
            return
        self.fault = reason
        if self.on_fault is None:
            return
        try:
            self.on_fault(reason)
        except Exception:
            self._log.exception("on_fault callback failed")
