"""``bwv witness``: an independent witness of the dock's transparency log (C2SP tlog-witness).

Run by someone other than the agency (a watchdog, a court service): it cosigns a dock's
checkpoint only when it is consistent with the last one it cosigned, refuses rollbacks and
forks, and keeps the evidence of a fork (STATE/forks/). Its state folder is described in
witness/state.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bwv.errors import EXIT_FOUND_WANTING, CannotCheck

STATE_OPTION = click.option(
    "--state",
    "state",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The witness's state folder (its key, the logs it witnesses, what it cosigned).",
)


def _state_error(exc: Exception) -> CannotCheck:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return CannotCheck(f"{where}{exc.strerror}")
    return CannotCheck(" ".join(str(exc).split()))


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit() or int(port_s) > 65535:
        raise click.BadParameter(
            f"{value!r}: expected HOST:PORT (port 0: any free port)", param_hint="--listen"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_s)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def witness() -> None:
    """An independent witness of a dock's log: cosigns only consistent checkpoints.

    \b
    For a watchdog (STATE is the witness's folder, e.g. /var/lib/bwv-witness):
      bwv witness keygen  --state STATE --name witness.example.org/w1
      bwv witness add-log --state STATE --dock-pub dock.pub    (or --origin O --vkey VKEY)
      bwv witness serve   --state STATE --listen 0.0.0.0:8480
      bwv witness vkey    --state STATE          the key docks and verifiers pin
      bwv witness latest  --url URL --log ORIGIN the latest checkpoint it cosigned
    """


@witness.command()
@STATE_OPTION
@click.option("--name", required=True, help="The witness's key name, e.g. witness.example.org/w1.")
def keygen(state: Path, name: str) -> None:
    """Make the witness's Ed25519 key: STATE/witness.key (mode 0600) and STATE/witness.vkey.

    An existing key is never replaced (exit 2)."""
    from witness.state import StateError
    from witness.state import keygen as make_key

    try:
        signer = make_key(state, name)
    except (StateError, OSError) as exc:
        raise _state_error(exc) from None
    click.echo(f"witness key: {state / 'witness.key'}   (mode 0600: SECRET)")
    click.echo(f"vkey:        {signer.vkey}")


@witness.command()
@STATE_OPTION
def vkey(state: Path) -> None:
    """Print the witness's vkey (give it to the docks and verifiers that pin this witness)."""
    from witness.state import StateError, read_vkey

    try:
        click.echo(read_vkey(state))
    except StateError as exc:
        raise _state_error(exc) from None


@witness.command("add-log")
@STATE_OPTION
@click.option("--origin", help="The log's origin line (a dock's is bwv-dock/<dock key id>).")
@click.option("--vkey", "log_vkey", help="The log's Ed25519 note vkey.")
@click.option(
    "--dock-pub",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Instead of --origin/--vkey: the dock's public key file (dock.pub); its log's "
    "origin and vkey are derived from it.",
)
def add_log(state: Path, origin: str | None, log_vkey: str | None, dock_pub: Path | None) -> None:
    """Witness a log: its checkpoints must be signed by its key."""
    from witness.state import StateError
    from witness.state import add_log as add

    if dock_pub is not None:
        if origin or log_vkey:
            raise click.UsageError("give either --dock-pub or --origin with --vkey")
        origin, log_vkey = dock_log_key(dock_pub)
    elif not (origin and log_vkey):
        raise click.UsageError("give --origin and --vkey (or --dock-pub)")
    try:
        added = add(state, origin, log_vkey)
    except (StateError, OSError) as exc:
        raise _state_error(exc) from None
    click.echo(f"{'witnessing' if added else 'already witnessing'} {origin} ({log_vkey})")


def dock_log_key(dock_pub: Path) -> tuple[str, str]:
    """The origin and the note vkey of the log of the dock whose key is in ``dock_pub``."""
    from crypto.identity import IdentityError, key_id_of, load_dock_public_key
    from tlog.note import NoteVerifier

    try:
        pub = bytes(load_dock_public_key(dock_pub))
    except IdentityError as exc:
        raise _state_error(exc) from None
    origin = f"bwv-dock/{key_id_of(pub)}"
    return origin, NoteVerifier(origin, pub).vkey


@witness.command()
@STATE_OPTION
@click.option(
    "--listen",
    default="127.0.0.1:8480",
    show_default=True,
    help="HOST:PORT to serve on (port 0: any free port, printed at start).",
)
def serve(state: Path, listen: str) -> None:
    """Serve the witness (C2SP tlog-witness) until interrupted.

    \b
    POST /add-checkpoint                  cosign a checkpoint (the dock calls it)
    GET  /checkpoint/<urlencoded origin>  the latest checkpoint it cosigned for a log
    GET  /<sha256 of origin>/checkpoint   the same (the C2SP monitoring path)
    GET  /vkey                            the witness's vkey
    """
    from witness.core import Witness
    from witness.server import listener, url_of
    from witness.server import serve as run
    from witness.state import StateError, StateLock

    host, port = parse_listen(listen)
    try:
        Witness(state)  # the key and the state are usable: say why not before anything
        lock = StateLock(state)
        w = Witness(state)  # read again under the lock
    except (StateError, OSError) as exc:
        raise _state_error(exc) from None
    try:
        sock = listener(host, port)
    except OSError as exc:
        raise CannotCheck(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    logs = ", ".join(w.known_origins()) or "none yet (bwv witness add-log)"
    click.echo(f"witness {w.vkey}")
    click.echo(f"logs: {logs}")
    click.echo(f"listening on {url_of(sock)}", nl=True)
    sys.stdout.flush()
    try:
        run(w, sock)
    finally:
        lock.release()


@witness.command()
@click.option("--url", help="The witness's URL (http://HOST:PORT).")
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    help="Instead of --url: the witness's state folder, read directly.",
)
@click.option("--log", "origin", required=True, help="The log's origin.")
def latest(url: str | None, state: Path | None, origin: str) -> None:
    """Print the latest checkpoint the witness cosigned for a log (exit 1 if none)."""
    if (url is None) == (state is None):
        raise click.UsageError("give either --url or --state")
    if url is not None:
        from witness.client import WitnessClient, WitnessRefused

        try:
            with WitnessClient(url) as client:
                note = client.latest(origin)
        except WitnessRefused as exc:
            raise CannotCheck(str(exc)) from None
    else:
        from witness.core import Witness
        from witness.state import StateError

        try:
            note = Witness(state).latest(origin)  # type: ignore[arg-type]
        except (StateError, OSError) as exc:
            raise _state_error(exc) from None
    if note is None:
        click.echo(f"Error: the witness holds no checkpoint for {origin}", err=True)
        sys.exit(EXIT_FOUND_WANTING)
    sys.stdout.write(note.decode())
