"""``bwv dock account``: the console's named accounts, made on the dock machine.

    bwv dock account add tess --role technician --store DIR       (asks the password twice)
    bwv dock account add sam --role supervisor --device bwv-0042 --store DIR --password-stdin
    bwv dock account list --store DIR [--json]
    bwv dock account disable tess --store DIR
    bwv dock account passwd tess --store DIR [--password-stdin]

Works on the store directly (safe while the dock runs). Each change is a custody event in
the dock's transparency log (actor ``technician``: whoever sits at the dock machine). The
password is never printed, logged or stored: only its argon2id hash is kept.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bwv.dock_common import DockUsageError, now_us, open_store_or_fail
from bwv.dock_init import STORE_OPTION
from bwv.dock_log_cmd import checkpoint_now
from bwv.errors import fail
from console.accounts import MIN_PASSWORD, AccountError, AccountStore, check_devices, check_name
from console.core import ROLES, ConsoleConfig
from console.db import CONSOLE_DB_FILE, ConsoleDB
from console.sessions import Sessions

ACTOR = "technician"  # who changes accounts at the dock machine


@click.group("account", context_settings={"help_option_names": ["-h", "--help"]})
def account() -> None:
    """The dock console's accounts: who may sign in, with which roles.

    \b
    Roles:
      technician    cameras (enrol, revoke) and uploads
      supervisor    recordings' metadata: categories, sensitive marks, grants, legal holds
                    (--device: only their officers' cameras; none: every camera)
      investigator  exports (exhibits) of the recordings they may see
      auditor       reads everything, the custody log included; changes nothing
    """


def _password_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of stdin instead of asking for it.",
    )(f)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise DockUsageError("no password on stdin (--password-stdin reads its first line)")
        return password
    if not sys.stdin.isatty():
        raise DockUsageError("no terminal to ask the password on: give it with --password-stdin")
    return click.prompt(
        f"Password (at least {MIN_PASSWORD} characters)",
        hide_input=True,
        confirmation_prompt=True,
        err=True,
    )


class _Opened:
    """The dock store (for the custody log) and the console's accounts, opened together."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.store = open_store_or_fail(store_dir)
        try:
            self.db = ConsoleDB(store_dir / CONSOLE_DB_FILE)
            self.accounts = AccountStore(self.db)
        except Exception as exc:  # sqlite3.Error, OSError: a damaged or unreadable database
            self.store.close()
            raise DockUsageError(f"{store_dir / CONSOLE_DB_FILE}: cannot open ({exc})") from None

    def custody(self, action: str, name: str, **detail: object) -> None:
        self.store.log(ACTOR, action, now_us(), detail={"account": name, **detail})
        checkpoint_now(self.store_dir, self.store)

    def close(self) -> None:
        self.db.close()
        self.store.close()


@account.command("add")
@STORE_OPTION
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="A role (repeat for more than one).",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="DEVICE_ID",
    help="A camera this supervisor answers for (repeat; none: every camera).",
)
@_password_option
def add(
    store_dir: Path,
    name: str,
    roles: tuple[str, ...],
    devices: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Make an account NAME (lower-case letters, digits, '.', '_', '-')."""
    opened = _Opened(store_dir)
    try:
        check_name(name), check_devices(devices)  # before asking the password
        if opened.accounts.get(name) is not None:
            raise DockUsageError(f"an account named {name!r} exists already")
        password = _read_password(password_stdin)
        got = opened.accounts.add(name, password, roles, devices, now_us=now_us())
        opened.custody("account_added", name, roles=sorted(got.roles), devices=sorted(got.devices))
    except AccountError as exc:
        raise DockUsageError(str(exc)) from None
    finally:
        opened.close()
    click.echo(f"account {name} added ({', '.join(sorted(got.roles))}): it can sign in now")


@account.command("list")
@STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON.")
def list_accounts(store_dir: Path, as_json: bool) -> None:
    """The accounts: name, roles, cameras, disabled or not."""
    try:
        opened = _Opened(store_dir)
    except click.ClickException as exc:
        if not as_json:
            raise
        fail(exc.format_message(), as_json, exc.exit_code)
    try:
        rows: list[dict[str, Any]] = [
            {
                "name": a.name,
                "roles": sorted(a.roles),
                "devices": sorted(a.devices),
                "disabled": a.disabled,
            }
            for a in opened.accounts.list()
        ]
    finally:
        opened.close()
    if as_json:
        click.echo(json.dumps({"accounts": rows}, indent=2))
        return
    if not rows:
        click.echo("no accounts yet (bwv dock account add NAME --role ROLE --store DIR)")
    for r in rows:
        state = "  DISABLED" if r["disabled"] else ""
        cams = f"  cameras: {', '.join(r['devices'])}" if r["devices"] else ""
        click.echo(f"{r['name']:<24} {', '.join(r['roles'])}{cams}{state}")


@account.command("disable")
@STORE_OPTION
@click.argument("name")
def disable(store_dir: Path, name: str) -> None:
    """Disable account NAME: it cannot sign in, and its sessions end now. Its past actions
    stay in the custody log under its name (names are never reused)."""
    opened = _Opened(store_dir)
    try:
        before = opened.accounts.get(name)
        if before is None:
            raise DockUsageError(f"no account named {name!r} (`bwv dock account list`)")
        if before.disabled:
            click.echo(f"account {name} was already disabled")
            return
        opened.accounts.disable(name, now_us())
        ended = Sessions(opened.db, ConsoleConfig()).end_all(name)
        opened.custody("account_disabled", name, sessions_ended=ended)
    finally:
        opened.close()
    click.echo(f"account {name} disabled; {ended} session(s) ended")


@account.command("passwd")
@STORE_OPTION
@click.argument("name")
@_password_option
def passwd(store_dir: Path, name: str, password_stdin: bool) -> None:
    """Set a new password for account NAME (its sessions end: it signs in again)."""
    opened = _Opened(store_dir)
    try:
        if opened.accounts.get(name) is None:
            raise DockUsageError(f"no account named {name!r} (`bwv dock account list`)")
        password = _read_password(password_stdin)
        opened.accounts.set_password(name, password, now_us())
        ended = Sessions(opened.db, ConsoleConfig()).end_all(name)
        opened.custody("password_changed", name, sessions_ended=ended)
    except AccountError as exc:
        raise DockUsageError(str(exc)) from None
    finally:
        opened.close()
    click.echo(f"account {name}: password changed; {ended} session(s) ended")
