"""The TSA over HTTP (RFC 3161 3.4), with the standard library's server.

``POST /`` with ``Content-Type: application/timestamp-query`` and a body of at most
``MAX_QUERY_BYTES`` is answered ``200`` with ``application/timestamp-reply`` (a granted token,
or a refusal with its PKIStatus, as ``openssl ts -reply`` made it: bytes that are no query
get a rejection, badDataFormat). A wrong type ``415``; too long ``413``; another method ``405``;
``GET /`` says what this is. Errors are one line of text, never a traceback.

Replies are made one at a time (``Authority.reply`` holds a lock); a client that stalls is cut
after ``IO_TIMEOUT_S``.
"""

from __future__ import annotations

import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tsa.authority import Authority, ReplyError
from tsa.client import QUERY_TYPE, REPLY_TYPE

log = logging.getLogger("bwv.tsa")

MAX_QUERY_BYTES = 16 * 1024  # a TimeStampReq with a SHA-512 imprint is about 100 bytes
IO_TIMEOUT_S = 10.0
ABOUT = (
    b"bwv RFC 3161 time-stamping authority: POST a TimeStampReq here with "
    b"Content-Type: application/timestamp-query\n"
)


class _Handler(BaseHTTPRequestHandler):
    server: TsaHttpServer
    protocol_version = "HTTP/1.1"
    timeout = IO_TIMEOUT_S
    server_version = "bwv-tsa"
    sys_version = ""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path not in ("/", ""):
            return self._text(404, "no such path: POST to /")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != QUERY_TYPE:
            return self._text(415, f"expected Content-Type: {QUERY_TYPE}")
        length_s = self.headers.get("Content-Length", "")
        if not length_s.isdigit():
            return self._text(411, "a Content-Length is required")
        length = int(length_s)
        if length > MAX_QUERY_BYTES:
            return self._text(413, f"a time-stamp query is at most {MAX_QUERY_BYTES} bytes")
        query = self.rfile.read(length)
        if len(query) != length:
            return self._text(400, "the query was cut short")
        try:
            reply = self.server.authority.reply(query)
        except (ReplyError, OSError) as exc:
            log.error("no reply: %s", exc)
            return self._text(500, "the TSA could not make a reply (its log says why)")
        self._send(200, REPLY_TYPE, reply)

    def do_GET(self) -> None:  # noqa: N802
        if self.path not in ("/", ""):
            return self._text(404, "no such path")
        self._send(200, "text/plain; charset=utf-8", ABOUT)

    def _not_allowed(self) -> None:
        self._text(405, "only POST (and GET /)", allow="GET, POST")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def _text(self, status: int, message: str, allow: str | None = None) -> None:
        self.close_connection = status >= 400
        extra = {"Allow": allow} if allow else {}
        self._send(status, "text/plain; charset=utf-8", (message + "\n").encode(), extra)

    def _send(
        self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002
        log.info("%s %s", self.address_string(), format % args)


class TsaHttpServer(ThreadingHTTPServer):
    """An HTTP server answering from ``authority`` (whose state folder it locks)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, authority: Authority, host: str, port: int) -> None:
        if ":" in host:
            import socket

            self.address_family = socket.AF_INET6
        self.authority = authority
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"

    def handle_error(self, request: object, client_address: object) -> None:
        """One line (a client that went away is no error of ours); the traceback only at
        debug level (``bwv -vv``)."""
        exc = sys.exc_info()[1]
        level = logging.INFO if isinstance(exc, ConnectionError) else logging.ERROR
        log.log(level, "request from %s failed: %s", client_address, exc)
        log.debug("where it failed", exc_info=True)


def open_server(state_dir: Path, host: str, port: int) -> TsaHttpServer:
    """The server for ``state_dir``, bound and with the folder locked (not yet serving)."""
    authority = Authority(state_dir)
    authority.lock()
    try:
        return TsaHttpServer(authority, host, port)
    except BaseException:
        authority.unlock()
        raise


class ServerThread:
    """A TSA served from a thread (tests, and a process that runs a TSA beside itself)."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = open_server(state_dir, host, port)
        self.url = self.server.url
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
        self.server.authority.unlock()
