"""The dock's HTTP server: FastAPI app factory, ``serve()``, and a server thread for tests.

Endpoints (all under ``/v1``; the OpenAPI description is at ``/openapi.json``):

- ``GET  /v1/dock``                      the dock's public key (to pin at provisioning)
- ``POST /v1/enroll``                    bind a device id to its key with a one-time token
- ``POST /v1/time``                      the dock's time; the device's offset is recorded
- ``POST /v1/segments/{segment_id}``     create (or find) an upload: manifest, size, hash
- ``GET  /v1/segments/{segment_id}``     upload state: offset, complete, receipt
- ``PATCH /v1/segments/{segment_id}``    append a chunk at ``Upload-Offset`` with its checksum
- ``POST /v1/segments/{segment_id}/complete``  verify, store, log, answer with a receipt
- ``GET  /v1/status``                    the calling device's status (chain, gaps, revocation)
- ``POST /v1/device/report``             the device's report: firmware, battery, storage, queue
- ``GET  /v1/log/checkpoint``            the transparency log's latest checkpoint (public)
- ``GET  /v1/log/proof/{index}``         a leaf's inclusion proof in it (public)

The cameras' side is HTTPS only (TLS 1.3, the dock's own key: dock/tls.py). The admin side
(``/v1/admin/...``: tokens, revocation, device status, custody log, with
``Authorization: Bearer <store/admin.token>``) is another app on another listener, by default
a Unix socket in the store (``create_admin_app``): the cameras' app has no admin route at all.

Device requests are signed (dock/protocol.py); every answer carries the dock's signature over
its status, body and the request's nonce. Refusals are 4xx with ``{"detail": "..."}``.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Scope

from dock.gate import BODIES, DeviceGate
from dock.instance import Dock, DockConfig, open_dock, wall_clock_us
from dock.middleware import BodyLimit, SignResponses, add_exception_handlers
from dock.pages import mount_pages
from dock.refusals import LogRefusals
from dock.routes import admin, enrollment, report, status, unsigned, uploads, verify_page, whole
from dock.routes import log as log_routes
from dock.routes import time as time_routes
from dock.strict import method_not_allowed
from dock.tls import TlsFiles, ensure_tls_files
from dock.verify import SegmentVerifier
from dock.wall import WallLimits, uvicorn_options

__all__ = [
    "Dock",
    "DockConfig",
    "ServerThread",
    "create_admin_app",
    "create_app",
    "open_dock",
    "serve",
    "wall_clock_us",
]

log = logging.getLogger("bwv.dock")

ROUTERS = (
    enrollment.router,  # GET /v1/dock, POST /v1/enroll
    time_routes.router,  # POST /v1/time
    uploads.router,  # /v1/segments/{segment_id}[/complete]
    whole.router,  # PUT /v1/segments/{segment_id}: a whole segment in one request
    unsigned.router,  # /v1/segments/{segment_id}/unsigned
    status.router,  # GET /v1/status
    report.router,  # POST /v1/device/report
    log_routes.router,  # GET /v1/log/checkpoint, /v1/log/proof/{index} (public)
    verify_page.router,  # GET /verify.html: the offline verifier page (public)
)
ADMIN_ROUTERS = (admin.router,)  # /v1/admin/...: on the admin listener only


def create_admin_app(dock: Dock) -> FastAPI:
    """The admin side (``/v1/admin/...``), served apart from the cameras' side."""
    app = FastAPI(
        title="bwv dock admin",
        version="1",
        description="Enrollment tokens, revocation, devices and the custody log.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.dock = dock
    app.add_middleware(LogRefusals)
    add_exception_handlers(app)
    for router in ADMIN_ROUTERS:
        app.include_router(router)
    return app


def create_app(dock: Dock) -> FastAPI:
    """The cameras' ASGI application for ``dock`` (no module-level state: the routers get the
    dock from ``app.state.dock`` through ``Depends(dock.routes.deps.get_dock)``)."""
    cfg = dock.config
    app = FastAPI(
        title="bwv dock",
        version="1",
        description="Receives signed, chained segments from body-worn cameras, "
        "verifies them, keeps a custody log and signs receipts.",
        docs_url=None,  # dock.pages serves /docs and /redoc from local files
        redoc_url=None,
    )
    app.state.dock = dock

    def limit_for(scope: Scope) -> int:
        if scope.get("method") in BODIES and scope.get("path", "").startswith("/v1/segments/"):
            return cfg.max_chunk_bytes
        return cfg.max_json_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(DeviceGate, dock=dock)  # authenticate before reading (dock/gate.py)
    app.add_middleware(SignResponses, key=dock.key)
    app.add_middleware(LogRefusals)  # outermost: sees every refusal, whoever made it
    add_exception_handlers(app)
    app.add_exception_handler(HTTPException, method_not_allowed)  # the whole Allow
    mount_pages(app, dock.key_id)
    for router in ROUTERS:
        app.include_router(router)
    return app


# --------------------------------------------------------------------------- running


def _config(app: ASGIApp, tls: TlsFiles | None, **kw: Any) -> uvicorn.Config:
    """A loaded uvicorn config; with ``tls``, HTTPS with TLS 1.3 only. h11, with the slow
    clients cut and connections capped (dock/wall.py), unless ``kw`` says otherwise."""
    config = uvicorn.Config(
        app,
        loop="asyncio",  # DockServer bounds the TLS handshake through asyncio's create_server
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
        **{**uvicorn_options(_limits_of(app)), **kw},
    )
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_3
    return config


def _limits_of(app: ASGIApp) -> WallLimits:
    dock = getattr(getattr(app, "state", None), "dock", None)
    return dock.config.wall if isinstance(dock, Dock) else WallLimits()


class DockServer(uvicorn.Server):
    """uvicorn's server, with the TLS handshake bounded: a client that stalls in it is cut
    after ``handshake_timeout_s`` (uvicorn leaves asyncio's 60 s default, and its protocol,
    where dock/wall.py cuts slow headers and caps connections, only sees a connection once
    the handshake is done)."""

    def __init__(self, config: uvicorn.Config, handshake_timeout_s: float) -> None:
        super().__init__(config)
        self.handshake_timeout_s = handshake_timeout_s

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.handshake_timeout_s
        base = type(loop).create_server  # the loop's own method, whatever else is patched

        async def bounded(*args: Any, **kw: Any) -> asyncio.Server:
            if kw.get("ssl") is not None:
                kw.setdefault("ssl_handshake_timeout", timeout)
            return await base(loop, *args, **kw)

        # for uvicorn's call in startup only; servers starting side by side in one loop
        # (cameras' and admin side) each call the loop's own method, so none wraps another
        loop.create_server = bounded  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            if vars(loop).get("create_server") is bounded:
                del loop.create_server


class _QuietServer(DockServer):
    """A server among others in one loop: ``run_dock`` handles the signals, for all."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def unix_listener(path: Path) -> socket.socket:
    """A Unix socket at ``path`` that only the dock's user can connect to (mode 0600)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    return sock


def tcp_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer waits ~40 ms on Nagle and delayed ACKs
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def run_dock(
    dock: Dock,
    camera_sock: socket.socket,
    admin_sock: socket.socket | None,
    tls: TlsFiles,
    *,
    extra: Sequence[tuple[ASGIApp, socket.socket, TlsFiles | None]] = (),
    **uvicorn_kw: Any,
) -> None:
    """Serve the cameras (HTTPS) on ``camera_sock`` and the admin side (plain HTTP, local
    only) on ``admin_sock`` until interrupted; and each ``extra`` app on its own socket (HTTPS
    with its own files, or plain with None: e.g. the console, which the caller builds, since
    the dock knows nothing of it). One stopping stops them all."""
    handshake_s = dock.config.wall.header_timeout_s
    servers = [
        (_QuietServer(_config(create_app(dock), tls, **uvicorn_kw), handshake_s), camera_sock)
    ]
    if admin_sock is not None:
        servers.append(
            (
                _QuietServer(_config(create_admin_app(dock), None, **uvicorn_kw), handshake_s),
                admin_sock,
            )
        )
    for app, sock, files in extra:
        servers.append((_QuietServer(_config(app, files, **uvicorn_kw), handshake_s), sock))

    def stop() -> None:
        for server, _ in servers:
            if server.should_exit:  # a second Ctrl-C: do not wait for open connections
                server.force_exit = True
            server.should_exit = True

    async def serve_all() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()  # one stopped (or failed): stop the other too
        await asyncio.gather(*tasks)

    asyncio.run(serve_all())


def serve(
    store_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8443,
    *,
    verifier: SegmentVerifier | None = None,
    config: DockConfig | None = None,
    log_level: str = "info",
    **uvicorn_kw: Any,
) -> None:
    """Run the dock on ``store_dir`` until interrupted: cameras on HTTPS ``host:port``, the
    admin side on the Unix socket ``store_dir/admin.sock``."""
    dock = open_dock(Path(store_dir), verifier=verifier, config=config)
    tls = ensure_tls_files(Path(store_dir), dock.key)
    log.info("dock key %s, store %s, listening on %s:%d", dock.key_id, store_dir, host, port)
    run_dock(
        dock,
        tcp_listener(host, port),
        unix_listener(Path(store_dir) / ADMIN_SOCKET_FILE),
        tls,
        log_level=log_level,
        **uvicorn_kw,
    )


ADMIN_SOCKET_FILE = "admin.sock"


class ServerThread:
    """A real uvicorn server in a thread, bound before it starts (port 0: any free port);
    with ``tls``, HTTPS (TLS 1.3 only); with ``unix``, on that Unix socket instead."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: TlsFiles | None = None,
        unix: Path | None = None,
        limits: WallLimits | None = None,
    ) -> None:
        self.unix = unix
        if unix is not None:
            self.sock = unix_listener(unix)
            self.host, self.port = "localhost", 0
        else:
            self.sock = tcp_listener(host, port)
            self.host, self.port = self.sock.getsockname()[:2]
        self.scheme = "https" if tls is not None else "http"
        config = _config(
            app,
            tls,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            **uvicorn_options(limits or _limits_of(app)),
        )
        self.server = DockServer(config, (limits or _limits_of(app)).header_timeout_s)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="dock-server", daemon=True
        )

    @property
    def url(self) -> str:
        if self.unix is not None:
            return "http://localhost"  # with httpx.HTTPTransport(uds=...)
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("dock server did not start")
            time.sleep(0.005)
        return self

    def stop(self, force: bool = False) -> None:
        """Stop; with ``force``, without waiting for open connections (a dock going down:
        a TLS connection cut mid-way may otherwise hold the shutdown for seconds)."""
        self.server.should_exit = True
        self.server.force_exit = force
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
