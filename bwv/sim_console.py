"""``bwv sim console``: a raid's dock with its console, on loopback, in one command.

    bwv sim console                      # the raid in sim-out (`make sim`), or a new one there
    bwv sim console --out /tmp/raid --listen 127.0.0.1:0

Serves the console over the raid's dock store (OUT/dock) with the raid's witness and TSA
back on loopback (simulator/raid_serve.py), makes one demo account per role with a new
one-time password each start (the passwords are printed: a demonstration on this machine,
never a dock), and prints the URL. Ctrl-C stops. Each refusal is one line, exit 2.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from bwv.dock_common import DockUsageError, now_us

# (name, role): the README's people
DEMO_ACCOUNTS = (
    ("tess", "technician"),
    ("sam", "supervisor"),
    ("ivan", "investigator"),
    ("aud", "auditor"),
)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
ACTOR = "technician"  # as `bwv dock account`: whoever sits at the machine


def parse_loopback(value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port_s.isdigit() or int(port_s) > 65535:
        raise click.BadParameter(
            f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8445", param_hint="--listen"
        )
    if host not in LOOPBACK:
        raise click.BadParameter(
            f"{host}: the demo console listens on this machine only (127.0.0.1 or ::1): "
            "its passwords are printed",
            param_hint="--listen",
        )
    return host, int(port_s)


def demo_accounts(console: Any) -> list[tuple[str, str, str]]:
    """One account per role, each with a new password (made, or its password replaced and
    its sessions ended); each a custody event as with `bwv dock account`."""
    from console.accounts import AccountStore
    from console.core import ConsoleConfig
    from console.sessions import Sessions

    accounts = AccountStore(console.db)
    store = console.dock.store
    out = []
    for name, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        at = now_us()
        if accounts.get(name) is None:
            accounts.add(name, password, (role,), (), now_us=at)
            store.log(ACTOR, "account_added", at, detail={"account": name, "roles": [role]})
        else:
            accounts.set_password(name, password, at)
            ended = Sessions(console.db, ConsoleConfig()).end_all(name)
            detail = {"account": name, "sessions_ended": ended}
            store.log(ACTOR, "password_changed", at, detail=detail)
        out.append((name, role, password))
    return out


def _run_raid_first(out: Path) -> None:
    """OUT missing or empty: a raid there first, as `make sim` runs it (in its own process:
    the raid's dock must let go of the store before the console opens it)."""
    import subprocess

    click.echo(f"bwv sim console: no raid in {out} yet: running one (`bwv sim raid`)", err=True)
    cmd = [sys.executable, "-m", "bwv.cli", "sim", "raid", "--out", str(out)]
    done = subprocess.run([*cmd, "--pre-record", "10", "--record", "15"], check=False)
    if done.returncode != 0:
        raise DockUsageError(f"the raid in {out} did not complete (exit {done.returncode})")
    click.echo()


def _announce(url: str, cert_fp: str, people: list[tuple[str, str, str]], out: Path) -> None:
    click.echo(f"The dock console of the raid in {out}, on this machine:")
    click.echo(f"  {url}/")
    click.echo(f"  its own certificate: SHA-256 {cert_fp}")
    click.echo("  (the browser warns about it: compare the fingerprint, then accept it)")
    click.echo("Sign in as (one-time passwords: new ones each start):")
    for name, role, password in people:
        click.echo(f"  {name:<5} {role:<13} {password}")
    click.echo("Ctrl-C stops.")
    sys.stdout.flush()


def _stop_on_signal() -> list[int]:
    """A list Ctrl-C (or SIGTERM) appends to, installed before the URL is printed. (Not a
    threading.Event: its set() in a signal handler can deadlock on the lock its wait() holds
    at that moment.)"""
    stopped: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopped.append(signum))
    return stopped


def serve_raid_console(out: Path, listen: str) -> None:
    from bwv.dock_serve import console_for_serving, open_for_serving
    from console.serving import RetentionRunner
    from dock.server import ServerThread
    from dock.translog import background_sync
    from simulator.raid_serve import NotARaidError, raid_authorities

    host, port = parse_loopback(listen)
    stop = _stop_on_signal()
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        _run_raid_first(out)
    try:
        with contextlib.ExitStack() as stack:
            served = stack.enter_context(raid_authorities(out))
            dock = open_for_serving(out / "dock")
            stack.callback(dock.store.close)
            if dock.translog is not None:
                stack.callback(dock.translog.close)
            app, files, cert_fp = console_for_serving(out / "dock", dock, host, None, None)
            people = demo_accounts(app.state.console)
            stack.callback(app.state.console.db.close)
            try:
                server = ServerThread(app, host, port, tls=files)
            except OSError as exc:
                raise DockUsageError(
                    f"cannot listen on {host}:{port}: {exc.strerror} (choose another --listen)"
                ) from None
            stack.enter_context(server)
            stack.callback(background_sync(dock.translog))
            stack.callback(RetentionRunner(app.state.console).start().stop)
            for note in served.notes:
                click.echo(f"note: {note}", err=True)
            _announce(server.url, cert_fp, people, out)
            while not stop:
                time.sleep(0.2)
    except NotARaidError as exc:
        raise DockUsageError(str(exc)) from None
    click.echo("bwv sim console: stopped")


@click.command("console")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("sim-out"),
    show_default=True,
    help="The raid's folder (`bwv sim raid --out`); missing or empty: a raid is run there first.",
)
@click.option(
    "--listen",
    default="127.0.0.1:8445",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the console listens: this machine only (port 0: any free port).",
)
def sim_console(out: Path, listen: str) -> None:
    """The dock console over a raid's dock, on this machine, in one command.

    Serves the console over OUT/dock (the raid's witness and TSA running again beside it),
    with one demo account per role (tess technician, sam supervisor, ivan investigator,
    aud auditor) and new one-time passwords, all printed with the URL. Ctrl-C stops.
    """
    serve_raid_console(out, listen)
