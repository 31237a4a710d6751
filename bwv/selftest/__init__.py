"""The checks of ``bwv selftest``: a camera checked before it goes out, one line per check.

Checks, in order: the configuration; the device key (present and loadable), the pinned
agency key, the pinned dock key (missing: a warning); the storage directory (free space at
least the low-space threshold, and writable: a probe file written, fsync'd and removed); the
clocks (the capture clock advances; the wall clock is plausible); the camera (started for
about 2 s of its own clock: frames and at least one keyframe, stamped on the capture clock);
the microphone (about 1 s: packets, and their decoded RMS level); the button, LEDs and
haptic motor (each output blinked once, the button and dock-detect levels read); the dock,
if ``dock.url`` is set (``GET /v1/dock``: its key must be the pinned one, and its answer
signed by it; then a signed ``GET /v1/status``: the camera must be enrolled there and not
revoked). Without the GPIO library (RPi.GPIO) the camera and microphone are still tested and
the missing library is named on a line of its own.

The hardware comes from ``hardware_factory`` (:func:`capture.hardware.build_hardware` on the
device), so the same checks run against simulated backends in the tests. The camera, the
microphone and the pins are exclusive: while the daemon runs they are not tested (stop it:
``sudo systemctl stop bwv``). Exit status 0 only if nothing FAILed (warnings allowed).

Where each check lives: :mod:`bwv.selftest.setup_checks` (configuration, keys, storage,
clocks), :mod:`bwv.selftest.sources` (camera, microphone), :mod:`bwv.selftest.hardware`
(setting the hardware up, the button, LEDs and haptic motor), :mod:`bwv.selftest.dock_check`
(the dock), :mod:`bwv.selftest.report` (what the user reads); :mod:`bwv.selftest.run` runs
them in order, :mod:`bwv.selftest_cmd` is the command.
"""

from bwv.selftest.model import Check, SelftestOptions, Status
from bwv.selftest.run import run_selftest

__all__ = ["Check", "SelftestOptions", "Status", "run_selftest"]
