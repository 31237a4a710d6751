"""The witness over HTTP (Starlette on uvicorn, as the dock).

- ``POST /add-checkpoint``                 C2SP tlog-witness (witness/core.py)
- ``GET  /<sha256(origin) hex>/checkpoint``  C2SP tlog-witness monitoring: the latest
                                           cosigned checkpoint, 404 if none
- ``GET  /checkpoint/<urlencoded origin>`` the same, by origin (bwv's own path)
- ``GET  /vkey``                           the witness's cosignature/v1 vkey

Plain HTTP: the cosignature is the security (a TLS front is the operator's choice).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from witness.core import SIZE_CONTENT_TYPE, Witness

MAX_BODY = 64 << 10  # 63 proof lines and a checkpoint with many signatures fit many times
CHECKPOINT_TYPE = "text/plain; charset=utf-8"


def create_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request body too large\n", status_code=413)
        answer = await run_in_threadpool(witness.add_checkpoint, bytes(body))
        # the content type exactly as given (text/x.tlog.size takes no charset parameter)
        headers = {"Content-Type": answer.content_type}
        return Response(answer.body.encode(), answer.status, headers=headers)

    def latest_answer(origin: str | None) -> Response:
        note = None if origin is None else witness.latest(origin)
        if note is None:
            return PlainTextResponse("no checkpoint cosigned for this log\n", status_code=404)
        return Response(note, 200, media_type=CHECKPOINT_TYPE)

    async def by_origin(request: Request) -> Response:
        return await run_in_threadpool(latest_answer, request.path_params["origin"])

    async def by_hash(request: Request) -> Response:
        h = request.path_params["origin_hash"]
        hashes = {hashlib.sha256(o.encode()).hexdigest(): o for o in witness.known_origins()}
        return await run_in_threadpool(latest_answer, hashes.get(h))

    async def vkey(request: Request) -> Response:
        return PlainTextResponse(witness.vkey + "\n")

    routes = [
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/checkpoint/{origin:path}", by_origin, methods=["GET"]),
        Route("/vkey", vkey, methods=["GET"]),
        Route("/{origin_hash:str}/checkpoint", by_hash, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(witness: Witness, **kw: Any) -> uvicorn.Server:
    options: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "off",
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 << 10,
        "timeout_graceful_shutdown": 2,
        **kw,
    }
    return uvicorn.Server(uvicorn.Config(create_app(witness), **options))


def serve(witness: Witness, sock: socket.socket, **kw: Any) -> None:
    """Serve until SIGINT or SIGTERM."""
    make_server(witness, **kw).run(sockets=[sock])


class WitnessServerThread:
    """A real server in a thread on ``host:port`` (port 0: any free port), for tests."""

    def __init__(self, witness: Witness, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = listener(host, port)
        self.url = url_of(self.sock)
        self.server = make_server(witness)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> WitnessServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("witness server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> WitnessServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["SIZE_CONTENT_TYPE", "WitnessServerThread", "create_app", "listener", "serve"]
