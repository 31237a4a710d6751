"""What a user sees when something goes wrong: one line on stderr, never a traceback, and
an exit status that means the same in every command:

    0  done, or checked and found in order
    1  checked and found wanting (not verified, a fault, a failed check)
    2  could not check: bad arguments or configuration, unreadable input, missing libraries

``--json`` means JSON on stdout on every path: errors too, as ``{"error": "..."}``.

``GuardedGroup`` is the ``bwv`` command group: whatever a command lets escape becomes one
line (``Error: ...``) and exit 2; ``-vv`` adds the traceback for a developer.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

EXIT_OK, EXIT_FOUND_WANTING, EXIT_CANNOT_CHECK = 0, 1, 2


class CannotCheck(click.ClickException):
    """Why a command could not do its check at all (exit 2)."""

    exit_code = EXIT_CANNOT_CHECK


def bad_configuration(exc: Exception) -> CannotCheck:
    return CannotCheck(f"bad configuration: {exc}")


def one_line(exc: BaseException) -> str:
    """A user's line for an exception no command caught, without its traceback."""
    from capture.config import ConfigError
    from crypto.identity import IdentityError

    if isinstance(exc, ConfigError):
        text = f"bad configuration: {exc}"
    elif isinstance(exc, IdentityError):
        text = str(exc)
    elif isinstance(exc, ModuleNotFoundError):
        text = f"the Python module {exc.name!r} is not installed"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        detail = str(exc)
        text = (
            f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
            "(a bug in bwv: please report it; -vv shows where it happened)"
        )
    return " ".join(text.split())


def echo_error(message: str, as_json: bool) -> None:
    """The one error line on stderr, and with ``--json`` the same as JSON on stdout."""
    message = " ".join(str(message).split())
    if as_json:
        click.echo(json.dumps({"error": message}))
    click.echo(f"Error: {message}", err=True)


def fail(message: str, as_json: bool, code: int = EXIT_CANNOT_CHECK) -> NoReturn:
    echo_error(message, as_json)
    sys.exit(code)


class GuardedGroup(click.Group):
    """A click group that lets no traceback reach the user (see the module's docstring)."""

    verbose = 0  # set by the group's callback from -v

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        GuardedGroup.verbose = 0
        self._as_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if not standalone_mode:
                raise
            if GuardedGroup.verbose >= 2:
                traceback.print_exc()
            fail(one_line(exc), self._as_json)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # click shows it on stderr; --json wants it on stdout
            if getattr(self, "_as_json", False):
                click.echo(json.dumps({"error": " ".join(exc.format_message().split())}))
            raise


class FiniteFloat(click.ParamType):
    """A number option that refuses nan, inf and values outside [low, high] (click's float
    takes "inf" and "nan", which later fail deep inside as an OverflowError)."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            self.fail(f"{value!r} is not between {self.low:g} and {self.high:g}", param, ctx)
        return number
