"""``bwv dock serve``'s groundwork: the addresses it listens on, the store and its TLS
certificate made ready, and what it says at start (the fingerprint cameras pin, where the
admin side listens). Each refusal is one line (``DockUsageError``, exit 2)."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bwv.dock_common import DockUsageError

if TYPE_CHECKING:
    from dock.instance import Dock
    from dock.tls import TlsFiles

DOCK_PUB_FILE = "dock.pub"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise click.BadParameter(
            f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8443 or [::]:8443",
            param_hint="--listen",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise click.BadParameter(f"port {port} is not in 1..65535", param_hint="--listen")
    return host, port


def check_bind(host: str, port: int) -> None:
    """Fail early, with a message, when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DockUsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise DockUsageError(
                f"cannot listen on {host}:{port}: {exc.strerror} "
                "(another dock running? choose another --listen)"
            ) from None


def open_for_serving(
    store_dir: Path,
    log_config: Any = None,
    agency_pub: Path | None = None,
    tpm_ca: Sequence[Path] = (),
):
    """The dock on ``store_dir`` (a new store if the folder is missing or empty), with
    DIR/dock.pub written, the agency key ``agency_pub`` pinned (dock/agency.py), the TPM CAs
    ``tpm_ca`` named in its dock.toml (when given: dock/tpm_trust.py), and its log's
    configuration kept when ``log_config`` is given, the log's lock taken; a DockUsageError,
    in one line, if it cannot be."""
    import sqlite3

    from crypto.durable import write_atomic
    from crypto.identity import IdentityError, load_agency_public_key
    from dock.agency import AgencyKeyError, pin_agency_key
    from dock.backends import BackendsError, load_backends
    from dock.checkpoints import LogConfigError
    from dock.keys import KeyFileError
    from dock.server import open_dock
    from dock.store import StoreError
    from dock.storedir import StoreDirError, check_store_dir
    from dock.tpm_trust import TpmCaError, load_cas, save_tpm_cas

    try:
        check_store_dir(store_dir)
        agency = bytes(load_agency_public_key(agency_pub)) if agency_pub else None
        load_cas(tpm_ca)  # each readable, before anything is made
        if not store_dir.exists():
            store_dir.mkdir(mode=0o700, parents=True)
        if log_config is not None:
            from dock.checkpoints import save_log_config

            save_log_config(store_dir, log_config)
        if tpm_ca:
            save_tpm_cas(store_dir, tpm_ca)
        dock = open_dock(store_dir)
        if agency is not None:  # pinned once the folder is a store
            dock.agency_key_id = pin_agency_key(store_dir, agency)
        shared = not load_backends(store_dir).embedded  # many docks: one holds the log
        if dock.translog is not None and not dock.translog.acquire() and not shared:
            raise DockUsageError(
                f"{store_dir}: another dock process holds this store's log "
                "(another `bwv dock serve` on this store?)"
            )
        text = dock.public_key.hex().encode() + b"\n"
        pub_path = store_dir / DOCK_PUB_FILE
        if not pub_path.exists() or pub_path.read_bytes() != text:
            write_atomic(pub_path, text, mode=0o644)
    except (StoreDirError, LogConfigError, BackendsError, TpmCaError) as exc:
        raise DockUsageError(str(exc)) from None
    except KeyFileError as exc:
        raise DockUsageError(f"dock key: {exc}") from None
    except (IdentityError, AgencyKeyError) as exc:
        raise DockUsageError(f"agency key: {exc}") from None
    except (sqlite3.Error, StoreError) as exc:
        raise DockUsageError(
            f"{store_dir}: cannot open the dock's index ({exc}); nothing was changed: "
            "restore the store from a backup"
        ) from None
    except OSError as exc:
        raise DockUsageError(f"{store_dir}: cannot set up the store ({exc.strerror})") from None
    return dock


def parse_admin_listen(value: str, store_dir: Path) -> tuple[Path | None, str, int]:
    """``unix:PATH`` (default: the store's admin.sock) or a loopback ``HOST:PORT``."""
    from dock.server import ADMIN_SOCKET_FILE

    if value in ("", "unix"):
        return store_dir / ADMIN_SOCKET_FILE, "", 0
    if value.startswith("unix:"):
        return Path(value[5:]), "", 0
    host, port = parse_listen(value)
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise click.BadParameter(
            f"{host}: the admin side listens on this machine only (a Unix socket, or "
            "127.0.0.1 / ::1): it speaks plain HTTP with the admin token",
            param_hint="--admin-listen",
        )
    return None, host, port


def admin_listener(sock_path: Path | None, host: str, port: int, shown: str) -> socket.socket:
    """The admin side's socket: a Unix socket at ``sock_path``, or loopback ``host:port``."""
    from dock.server import tcp_listener, unix_listener

    try:
        return unix_listener(sock_path) if sock_path is not None else tcp_listener(host, port)
    except OSError as exc:
        raise DockUsageError(
            f"cannot listen on {shown} for the admin side: {exc.strerror or exc} "
            "(choose another --admin-listen)"
        ) from None


def tls_for_serving(store_dir: Path, served: Dock, tls_cert: Path | None) -> TlsFiles:
    from dock.keys import KeyFileError
    from dock.tls import ensure_tls_files

    try:
        return ensure_tls_files(store_dir, served.key, tls_cert)
    except KeyFileError as exc:
        raise DockUsageError(f"TLS certificate: {exc}") from None
    except OSError as exc:
        raise DockUsageError(f"TLS certificate: {exc.strerror} ({exc.filename})") from None


def serve_until_stopped(
    served: Dock,
    at: tuple[str, int],
    admin_sock: socket.socket,
    tls: TlsFiles,
    console: ConsoleServing,
    config: dict[str, Any],
) -> None:
    """Serve cameras on ``at``, the admin side and the console, the log kept in step in the
    background (every dock of a shared store runs it: that is how one takes the log over),
    until stopped."""
    from dock.server import run_dock, tcp_listener
    from dock.translog import background_sync

    stop_sync = background_sync(served.translog)
    try:
        run_dock(
            served,
            tcp_listener(*at),
            admin_sock,
            tls,
            extra=console.start(),
            log_config=config,
            log_level="info",
        )
    finally:
        console.stop()
        stop_sync()
        if served.translog is not None:
            served.translog.close()


def serve_facts(
    store_dir: Path,
    served: Dock,
    host: str,
    port: int,
    admin_sock: Path | None,
    admin_host: str,
    admin_port: int,
) -> dict[str, str]:
    from dock.backends import load_backends
    from dock.keys import ADMIN_TOKEN_FILE
    from dock.tls import fingerprint
    from dock.tpm_trust import describe_cas

    shown = f"[{host}]" if ":" in host else host
    if admin_sock is not None:
        admin = f"unix:{admin_sock.resolve()}"
    else:
        admin = f"http://{f'[{admin_host}]' if ':' in admin_host else admin_host}:{admin_port}"
    return {
        "store": str(store_dir.resolve()),
        "dock_key_id": served.key_id,
        "dock_fingerprint": fingerprint(served.public_key),
        "dock_public_key": str((store_dir / DOCK_PUB_FILE).resolve()),
        "agency_key_id": served.agency_key_id or "",
        "tpm_cas": describe_cas(served.tpm_cas),
        "admin_token_file": str((store_dir / ADMIN_TOKEN_FILE).resolve()),
        "url": f"https://{shown}:{port}",
        "admin": admin,
        **{f"store_{k}": v for k, v in load_backends(store_dir).describe().items()},
    }


def announce(facts: dict[str, str], log_format: str) -> dict[str, Any]:
    """Say what is served where (text on stdout, or a JSON log line); the log config."""
    from dock.agency import NOT_CONFIGURED
    from dock.logging_setup import log_config

    config = log_config(log_format)
    if log_format == "json":
        from logging.config import dictConfig

        dictConfig(config)
        logging.getLogger("bwv.dock").info(
            "dock store %s, key id %s, listening on %s, admin on %s, console on %s",
            facts["store"],
            facts["dock_key_id"],
            facts["url"],
            facts["admin"],
            facts.get("console", "off"),
            extra={"event": "start", **facts},
        )
        return config
    click.echo(f"dock store:      {facts['store']}")
    if facts.get("store_objects", "").startswith("s3://"):
        click.echo(f"  objects in     {facts['store_objects']}  (S3 Object Lock)")
        click.echo(f"  index in       {facts['store_index']}  (shared by the store's docks)")
    click.echo(f"dock key id:     {facts['dock_key_id']}")
    click.echo(f"dock fingerprint: {facts['dock_fingerprint']}")
    click.echo(
        "                 pin it on each camera: bwv provision --dock-key FINGERPRINT ... "
        f"(or give it {facts['dock_public_key']})"
    )
    click.echo(f"agency key id:   {facts['agency_key_id'] or NOT_CONFIGURED}")
    click.echo(f"TPM keys from:   {facts['tpm_cas']}")
    click.echo(f"admin token:     {facts['admin_token_file']}  (mode 0600; for /v1/admin)")
    if "log_origin" in facts:
        from bwv.dock_log_cmd import echo_log_facts

        echo_log_facts(facts)
    click.echo(f"admin side on    {facts['admin']}  (this machine only)")
    echo_console_facts(facts)
    click.echo(
        f"listening on     {facts['url']}  (HTTPS, TLS 1.3; Ctrl-C stops; "
        f"{facts['url']}/docs: the API)"
    )
    sys.stdout.flush()
    return config


# --------------------------------------------------------------------------- the console

DEFAULT_CONSOLE_LISTEN = "127.0.0.1:8445"


def parse_console_listen(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (any address: the console has accounts), or ``off`` (None)."""
    if value.strip().lower() == "off":
        return None
    try:
        return parse_listen(value)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--console-listen") from None


def console_for_serving(
    store_dir: Path,
    served: Dock,
    host: str,
    cert: Path | None,
    key: Path | None,
) -> tuple[Any, TlsFiles, str]:
    """The console's app over ``served``, its HTTPS files (made in the store, or the given
    pair) and their certificate's fingerprint; a DockUsageError in one line if it cannot be."""
    from console.serving import console_app
    from console.tls import ConsoleTlsError, ensure_console_tls, fingerprint

    try:
        files = ensure_console_tls(store_dir, [host], given_cert=cert, given_key=key)
        return console_app(served, store_dir), files, fingerprint(files.cert)
    except ConsoleTlsError as exc:
        raise DockUsageError(f"console certificate: {exc}") from None
    except OSError as exc:
        raise DockUsageError(f"console: {exc.strerror or exc} ({exc.filename})") from None


def console_facts(host: str, port: int, cert_fingerprint: str) -> dict[str, str]:
    shown = f"[{host}]" if ":" in host else host
    return {"console": f"https://{shown}:{port}", "console_fingerprint": cert_fingerprint}


def echo_console_facts(facts: dict[str, str]) -> None:
    if "console" not in facts:
        why = facts.get("console_off")
        click.echo("console:         off" + (f" ({why})" if why else ""))
        return
    click.echo(f"console on       {facts['console']}  (HTTPS; sign in with an account: ")
    click.echo("                 bwv dock account add NAME --role technician --store DIR)")
    click.echo(f"console cert:    SHA-256 {facts['console_fingerprint']}")
    click.echo("                 compare it with what the browser shows before accepting it")


def console_options(f: Any) -> Any:
    """``--console-listen``, ``--console-cert``, ``--console-key`` (for ``bwv dock serve``)."""
    f = click.option(
        "--console-key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The private key (PEM) of --console-cert.",
    )(f)
    f = click.option(
        "--console-cert",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A certificate (PEM) for the console to serve instead of the one it makes itself "
        "(STORE/console.crt), e.g. one the agency's CA signed; with --console-key.",
    )(f)
    return click.option(
        "--console-listen",
        default=DEFAULT_CONSOLE_LISTEN,
        show_default=True,
        metavar="HOST:PORT|off",
        help="Where the console (web pages; accounts sign in) listens, HTTPS. Any address: "
        "0.0.0.0:8445 for tablets on the dock's network. `off`: no console.",
    )(f)


@dataclass
class ConsoleServing:
    """The console beside the dock: prepared before the dock announces itself, started
    (its listener, the retention job) with the servers, stopped after."""

    facts: dict[str, str] = field(default_factory=dict)
    app: Any = None
    tls: TlsFiles | None = None
    at: tuple[str, int] | None = None
    runner: Any = None

    @classmethod
    def prepare(
        cls,
        store_dir: Path,
        served: Dock,
        at: tuple[str, int] | None,
        cert: Path | None,
        key: Path | None,
        taken: Sequence[tuple[str, int]] = (),
    ) -> ConsoleServing:
        """The console ready to start at ``at`` (None: off). A refusal is a DockUsageError,
        except when the default address is in use: the cameras' side must come up whatever
        the console's port, so the dock then serves without a console and says so."""
        if at is None:
            return cls()
        if at in taken:
            raise DockUsageError(
                f"--console-listen {at[0]}:{at[1]} is taken by the dock itself: choose another"
            )
        try:
            check_bind(*at)
        except DockUsageError:
            if _given("console_listen"):
                raise
            return cls({"console_off": f"{at[0]}:{at[1]} is in use: give --console-listen"})
        app, files, cert_fp = console_for_serving(store_dir, served, at[0], cert, key)
        return cls(console_facts(at[0], at[1], cert_fp), app, files, at)

    def start(self) -> list[tuple[Any, socket.socket, TlsFiles | None]]:
        """The console's app, socket and files for ``run_dock(extra=...)``; the retention job
        started."""
        if self.app is None or self.at is None:
            return []
        from console.serving import RetentionRunner
        from dock.server import tcp_listener

        try:
            sock = tcp_listener(*self.at)
        except OSError as exc:
            said = f"cannot listen on {self.facts['console']} for the console: {exc.strerror}"
            if _given("console_listen"):
                raise DockUsageError(f"{said} (choose another --console-listen)") from None
            click.echo(f"warning: {said}: serving without the console", err=True)
            return []
        self.runner = RetentionRunner(self.app.state.console).start()
        return [(self.app, sock, self.tls)]

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()


def _given(param: str) -> bool:
    """The option was given on the command line (not its default)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source(param) is not ParameterSource.DEFAULT
