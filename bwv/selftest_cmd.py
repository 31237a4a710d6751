"""``bwv selftest``: check a camera before it goes out, one PASS/WARN/FAIL line per check.

The checks are in :mod:`bwv.selftest`; this is the command: read the configuration, run them,
print them, exit 0 only if nothing FAILed (warnings allowed), 1 if something did, 2 if the
configuration could not be read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bwv.selftest import Check, run_selftest
from bwv.selftest.report import emit
from bwv.status_cmd import config_option
from capture.config import ConfigError, load


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def selftest(ctx: click.Context, config_path: Path, as_json: bool) -> None:
    """Check the camera: configuration, keys, storage, clock, camera, microphone, button,
    LEDs, haptic motor and dock. One PASS/WARN/FAIL line each, with the reason.

    Stop the daemon first (sudo systemctl stop bwv): the camera, microphone and pins can be
    used by one process at a time. The LEDs and the motor blink once each.

    \b
    Exit status: 0  nothing failed (warnings allowed)
                 1  something failed
    """
    inject = (ctx.obj or {}).get("selftest", {}) if isinstance(ctx.obj, dict) else {}
    try:
        cfg = load(config_path)
    except ConfigError as exc:
        from bwv.errors import bad_configuration

        emit([Check("config", "FAIL", str(exc), {"key": exc.key})], as_json)
        raise bad_configuration(exc) from None  # exit 2: nothing could be checked
    checks = run_selftest(
        cfg,
        inject.get("hardware_factory"),
        config_source=str(config_path),
        clock=inject.get("clock"),
        options=inject.get("options"),
    )
    emit(checks, as_json)
    sys.exit(0 if all(c.ok for c in checks) else 1)
