"""Issue 12, points 4 and 8: hundreds of stalled connections (loopback only) do not keep a
camera from uploading, nor ``/v1/dock`` from answering within a second; the dock cuts the
ones that never finish their headers, and refuses unauthenticated bodies without reading
them. The systemd unit gives the dock the file descriptors its connection cap needs."""

from __future__ import annotations

import configparser
import resource
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from dock.protocol import segment_id_for
from dock.server import DockConfig
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.wall import WallLimits

STALLED = 300  # connections that stop inside their headers
UNSIGNED = 100  # connections that announce 8 MiB bodies, unsigned, and stop
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * (STALLED + UNSIGNED) + 256  # both ends are in this process
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"needs {want} file descriptors (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def wait_closed(s: socket.socket, deadline: float) -> bool:
    """True once the dock has closed ``s`` (answers read past), False at ``deadline``."""
    s.setblocking(False)
    while True:  # (at least one look, even past the deadline)
        try:
            got = s.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):  # (an SSL socket says the latter)
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
            continue
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True  # a TCP reset, or TCP closed under the TLS session: closed
        if not got:
            return True


def test_stalled_connections_do_not_keep_a_camera_out(tmp_path, fds):
    limits = WallLimits(header_timeout_s=3.0, body_timeout_s=3.0)
    h = DockHarness(tmp_path / "dock", config=DockConfig(wall=limits))
    sockets: list[socket.socket] = []
    try:
        dev = OutboxDevice(tmp_path / "dev", "cam-slow")
        creds = h.enroll(dev)
        # each connection completes its TLS handshake first: the wall's header timer starts
        # once the dock's HTTP protocol has the connection, i.e. after the handshake
        held_from = time.monotonic()  # no header timer was armed before this
        for i in range(STALLED):
            s = h.raw_connection(timeout=5)
            s.sendall(b"GET /v1/dock HTTP/1.1\r\nHost: dock\r\nX-Slow-" + str(i).encode())
            sockets.append(s)
        stalled_by = time.monotonic()  # every stalled connection had stalled by this
        unsigned = []
        for _ in range(UNSIGNED):
            s = h.raw_connection(timeout=5)
            s.sendall(
                b"PATCH /v1/segments/" + b"a" * 64 + b" HTTP/1.1\r\nHost: dock\r\n"
                b"Content-Length: 8388608\r\n\r\n" + b"x" * 4096
            )
            unsigned.append(s)

        # while they are all held, /v1/dock answers within a second and a camera uploads
        t0 = time.monotonic()
        r = httpx.get(f"{h.url}/v1/dock", timeout=5, verify=h.verify)
        assert r.status_code == 200
        assert time.monotonic() - t0 < 1.0
        blob = segment_bytes(200_000, 3)
        rec = dev.add_segment(blob)
        sid = segment_id_for(rec.line)
        with h.client(creds) as c:
            c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
            c.append(sid, 0, blob)
            receipt = c.complete(sid)
        assert receipt.receipt.segment_id == sid
        assert time.monotonic() - held_from < limits.header_timeout_s  # all that while held

        # the unsigned bodies were refused without being read, their connections closed
        deadline = time.monotonic() + 5
        assert all(wait_closed(s, deadline) for s in unsigned)
        # the stalled headers are cut after header_timeout_s
        deadline = time.monotonic() + limits.header_timeout_s + 8
        assert all(wait_closed(s, deadline) for s in sockets)
        assert time.monotonic() - stalled_by >= limits.header_timeout_s * 0.9
        sockets.extend(unsigned)
    finally:
        for s in sockets:
            s.close()
        h.close()


def test_the_dock_unit_has_descriptors_for_its_connection_cap():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "systemd" / "bwv-dock.service")
    nofile = int(unit["Service"]["LimitNOFILE"])
    assert nofile >= 2 * WallLimits().max_connections + 1024


def test_connections_past_the_cap_are_closed_on_arrival(tmp_path):
    limits = WallLimits(header_timeout_s=60.0, max_connections=20)
    h = DockHarness(tmp_path / "dock", config=DockConfig(wall=limits))
    sockets: list[socket.socket] = []
    try:
        # the TLS handshake done (the dock's HTTP protocol, where the cap is, sees a
        # connection only then), and nothing sent
        sockets = [h.raw_connection(timeout=5) for _ in range(30)]
        deadline = time.monotonic() + 3  # far less than header_timeout_s: the cap did it
        cut = [s for s in sockets if wait_closed(s, deadline)]
        assert len(cut) == 10
        for s in sockets:
            s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the dock sees them go, and has room again
            try:
                if httpx.get(f"{h.url}/v1/dock", timeout=1, verify=h.verify).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(f"{h.url}/v1/dock", timeout=1, verify=h.verify).status_code == 200
    finally:
        for s in sockets:
            s.close()
        h.close()


def test_a_client_stalled_in_the_tls_handshake_is_cut_too(tmp_path):
    """A connection that never sends its ClientHello is closed after header_timeout_s, as a
    connection stalled in its headers is (not after asyncio's 60 s default), and meanwhile
    a camera still gets its answer."""
    limits = WallLimits(header_timeout_s=2.0)
    h = DockHarness(tmp_path / "dock", config=DockConfig(wall=limits))
    sockets: list[socket.socket] = []
    try:
        addr = (h.server.host, h.server.port)
        held_from = time.monotonic()
        sockets = [socket.create_connection(addr, timeout=5) for _ in range(20)]  # no TLS
        assert httpx.get(f"{h.url}/v1/dock", verify=h.verify, timeout=5).status_code == 200
        early = time.monotonic() + limits.header_timeout_s * 0.5
        assert not any(wait_closed(s, early) for s in sockets[:1])  # not cut at once
        deadline = held_from + limits.header_timeout_s + 8
        assert all(wait_closed(s, deadline) for s in sockets)
        assert time.monotonic() - held_from >= limits.header_timeout_s * 0.9
    finally:
        for s in sockets:
            s.close()
        h.close()
