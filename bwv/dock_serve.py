"""``bwv dock serve``'s groundwork: the addresses it listens on, the store and its TLS
certificate made ready, and what it says at start (the fingerprint cameras pin, where the
admin side listens). Each refusal is one line (``DockUsageError``, exit 2)."""

from __future__ import annotations

import logging
import socket
import sys
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


def open_for_serving(store_dir: Path, log_config: Any = None):
    """The dock on ``store_dir`` (a new store if the folder is missing or empty), with
    DIR/dock.pub written, and its log's configuration kept when ``log_config`` is given, the
    log's lock taken; a DockUsageError, in one line, if it cannot be."""
    import sqlite3

    from crypto.durable import write_atomic
    from dock.checkpoints import LogConfigError
    from dock.keys import KeyFileError
    from dock.server import open_dock
    from dock.store import StoreError
    from dock.storedir import StoreDirError, check_store_dir

    try:
        check_store_dir(store_dir)
        if not store_dir.exists():
            store_dir.mkdir(mode=0o700, parents=True)
        if log_config is not None:
            from dock.checkpoints import save_log_config

            save_log_config(store_dir, log_config)
        dock = open_dock(store_dir)
        if dock.translog is not None and not dock.translog.acquire():
            raise DockUsageError(
                f"{store_dir}: another dock process holds this store's log "
                "(another `bwv dock serve` on this store?)"
            )
        text = dock.public_key.hex().encode() + b"\n"
        pub_path = store_dir / DOCK_PUB_FILE
        if not pub_path.exists() or pub_path.read_bytes() != text:
            write_atomic(pub_path, text, mode=0o644)
    except (StoreDirError, LogConfigError) as exc:
        raise DockUsageError(str(exc)) from None
    except KeyFileError as exc:
        raise DockUsageError(f"dock key: {exc}") from None
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


def tls_for_serving(store_dir: Path, served: Dock, tls_cert: Path | None) -> TlsFiles:
    from dock.keys import KeyFileError
    from dock.tls import ensure_tls_files

    try:
        return ensure_tls_files(store_dir, served.key, tls_cert)
    except KeyFileError as exc:
        raise DockUsageError(f"TLS certificate: {exc}") from None
    except OSError as exc:
        raise DockUsageError(f"TLS certificate: {exc.strerror} ({exc.filename})") from None


def serve_facts(
    store_dir: Path,
    served: Dock,
    host: str,
    port: int,
    admin_sock: Path | None,
    admin_host: str,
    admin_port: int,
) -> dict[str, str]:
    from dock.keys import ADMIN_TOKEN_FILE
    from dock.tls import fingerprint

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
        "admin_token_file": str((store_dir / ADMIN_TOKEN_FILE).resolve()),
        "url": f"https://{shown}:{port}",
        "admin": admin,
    }


def announce(facts: dict[str, str], log_format: str) -> dict[str, Any]:
    """Say what is served where (text on stdout, or a JSON log line); the log config."""
    from dock.logging_setup import log_config

    config = log_config(log_format)
    if log_format == "json":
        from logging.config import dictConfig

        dictConfig(config)
        logging.getLogger("bwv.dock").info(
            "dock store %s, key id %s, listening on %s, admin on %s",
            facts["store"],
            facts["dock_key_id"],
            facts["url"],
            facts["admin"],
            extra={"event": "start", **facts},
        )
        return config
    click.echo(f"dock store:      {facts['store']}")
    click.echo(f"dock key id:     {facts['dock_key_id']}")
    click.echo(f"dock fingerprint: {facts['dock_fingerprint']}")
    click.echo(
        "                 pin it on each camera: bwv provision --dock-key FINGERPRINT ... "
        f"(or give it {facts['dock_public_key']})"
    )
    click.echo(f"admin token:     {facts['admin_token_file']}  (mode 0600; for /v1/admin)")
    if "log_origin" in facts:
        from bwv.dock_log_cmd import echo_log_facts

        echo_log_facts(facts)
    click.echo(f"admin side on    {facts['admin']}  (this machine only)")
    click.echo(
        f"listening on     {facts['url']}  (HTTPS, TLS 1.3; Ctrl-C stops; "
        f"{facts['url']}/docs: the API)"
    )
    sys.stdout.flush()
    return config
