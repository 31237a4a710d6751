"""``bwv agency``: the agency's own key pair, made once, on the agency's side.

Footage is sealed on the camera to the agency's X25519 **public** key (``agency.pub``, pinned
at provisioning); only the **private** key (``agency.key``) opens it, for ``bwv verify
--agency-key`` and ``bwv dock export --agency-key``. The private key is the one secret that
opens every camera's footage: it lives with the agency's investigators, offline, never on a
camera or a dock.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from crypto.durable import write_atomic
from crypto.identity import SECRET_MODE, key_id_of

PRIVATE_FILE = "agency.key"
PUBLIC_FILE = "agency.pub"
PUBLIC_MODE = 0o644
DIR_MODE = 0o700

WARNING = (
    "KEEP {key} SECRET AND OFFLINE. It opens the footage of every camera sealed to this "
    "agency. Keep it with the agency's investigators (an offline machine, or encrypted "
    "removable media), with a backup kept the same way: lost, the footage cannot be opened; "
    "copied, anyone can open it. Never put it on a camera or a dock. Cameras and docks get "
    "{pub} only: `bwv provision --agency-pub {pub}`."
)


class AgencyError(click.ClickException):
    """Nothing was made (exit 2): the text says why, in one line."""

    exit_code = 2


@click.group()
def agency() -> None:
    """The agency's key pair: footage is sealed to its public key, opened with its private
    key (`bwv verify --agency-key`, `bwv dock export --agency-key`)."""


@agency.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for agency.key (private, mode 0600) and agency.pub (made if missing).",
)
def keygen(out: Path) -> None:
    """Make the agency's X25519 key pair: OUT/agency.key and OUT/agency.pub.

    Run it once, on the agency's offline machine. agency.key (mode 0600) is the private key
    that opens the footage: keep it there, never on a camera or a dock. agency.pub is given
    to every camera at provisioning (`bwv provision --agency-pub agency.pub`). An existing
    key is never replaced: the command refuses.

    \b
    Exit status: 0  both files written
                 2  nothing written (a file exists, the folder cannot be written)
    """
    from nacl.public import PrivateKey

    key_path, pub_path = out / PRIVATE_FILE, out / PUBLIC_FILE
    for p in (key_path, pub_path):
        if os.path.lexists(p):
            raise AgencyError(
                f"{p} exists: not replacing an agency key (footage sealed to it could no "
                "longer be opened); choose another --out"
            )
    sk = PrivateKey.generate()
    pub = bytes(sk.public_key)
    try:
        if not out.exists():
            out.mkdir(mode=DIR_MODE, parents=True)
        write_atomic(key_path, bytes(sk).hex().encode() + b"\n", mode=SECRET_MODE, overwrite=False)
        try:
            write_atomic(pub_path, pub.hex().encode() + b"\n", mode=PUBLIC_MODE, overwrite=False)
        except BaseException:
            key_path.unlink(missing_ok=True)  # a private key without its public key: undo
            raise
    except FileExistsError as exc:
        raise AgencyError(f"{exc.filename or out} appeared meanwhile: nothing written") from None
    except OSError as exc:
        raise AgencyError(f"cannot write the agency key in {out}: {exc.strerror}") from None
    click.echo(f"agency key id:  {key_id_of(pub)}")
    click.echo(f"private key:    {key_path}   (mode 0600: SECRET)")
    click.echo(f"public key:     {pub_path}   (give it to every camera)")
    click.echo(
        "WARNING: " + WARNING.format(key=key_path, pub=pub_path),
        err=True,
    )
