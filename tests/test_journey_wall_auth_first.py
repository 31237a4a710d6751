"""Issue 12, point 4: the dock authenticates a request by its headers before it reads the
body (the body's Content-Digest is signed), checks the body against that digest as it
streams in, cuts bodies that stall, lets a device send only so many chunks at once, and
forgets nonces once their timestamp window has passed."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import sqlite3
import ssl
import time

import pytest
from nacl.signing import SigningKey

from dock.client import DockRefused
from dock.protocol import (
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    KeySigner,
    chunk_checksum_header,
    content_digest,
    segment_id_for,
    sign_request,
    verify_request,
)
from dock.server import DockConfig
from dock.store_sqlite import INDEX_FILE
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.wall import WallLimits

MiB = 1 << 20


@pytest.fixture
def harness(tmp_path):
    limits = WallLimits(body_timeout_s=0.5, max_inflight_per_device=1)
    h = DockHarness(tmp_path / "dock", config=DockConfig(wall=limits))
    yield h
    h.close()


@pytest.fixture
def device(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "dev", "cam-wall")
    dev.creds = harness.enroll(dev)
    return dev


def connect(harness) -> socket.socket:
    """A raw connection to the dock, its TLS handshake done: the wall sees it from there."""
    return harness.raw_connection(timeout=5)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: dock", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_and_close(s: socket.socket, deadline_s: float = 5.0) -> tuple[int, bool]:
    """The status the dock answered with, and whether it then closed the connection (read
    until EOF or ``deadline_s``)."""
    s.settimeout(deadline_s)
    data = b""
    end = time.monotonic() + deadline_s
    closed = False
    while time.monotonic() < end:
        try:
            got = s.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            closed = True  # a TCP reset, or TCP closed under the TLS session: closed
            break
        if not got:
            closed = True
            break
        data += got
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data.split()[1]), closed


def signed_chunk_head(device, sid: str, body: bytes, *, length: int | None = None) -> bytes:
    path = f"/v1/segments/{sid}"
    signed = sign_request(
        device.identity,
        "PATCH",
        path,
        body,
        device.device_id,
        time.time_ns() // 1000,
        secrets.token_hex(16),
    )
    headers = {
        **signed.as_dict(),
        H_UPLOAD_OFFSET: "0",
        H_UPLOAD_CHECKSUM: chunk_checksum_header(body),
        "Content-Length": str(len(body) if length is None else length),
    }
    return head("PATCH", path, headers)


def open_upload(harness, device, size: int) -> tuple[str, bytes]:
    blob = segment_bytes(size, 7)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    with harness.client(device.creds) as c:
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
    return sid, blob


def test_an_unsigned_8mib_body_is_refused_at_its_headers_and_the_connection_closed(harness):
    sid = "a" * 64
    with connect(harness) as s:
        s.sendall(head("PATCH", f"/v1/segments/{sid}", {"Content-Length": str(8 * MiB)}))
        s.sendall(b"x" * 1000)  # and then nothing: the dock must not wait for the rest
        status, closed = answer_and_close(s)
    assert status == 401
    assert closed


def test_a_forged_signature_is_refused_before_the_body(harness, device):
    sid, blob = open_upload(harness, device, 4000)
    other = OutboxDevice(harness.store_dir.parent / "other", device.device_id)  # another key
    with connect(harness) as s:
        s.sendall(signed_chunk_head(other, sid, blob, length=8 * MiB))
        status, closed = answer_and_close(s)
    assert (status, closed) == (401, True)
    assert harness.dock.store.upload_state(device.device_id, sid).offset == 0


def test_a_body_that_is_not_its_signed_digest_appends_nothing(harness, device):
    sid, blob = open_upload(harness, device, 4000)
    with connect(harness) as s:
        s.sendall(signed_chunk_head(device, sid, blob))
        s.sendall(b"y" * len(blob))  # the right length, other bytes
        status, _ = answer_and_close(s, 2.0)
    assert status == 460
    assert harness.dock.store.upload_state(device.device_id, sid).offset == 0
    with harness.client(device.creds) as c:  # the real bytes still go
        assert c.append(sid, 0, blob).offset == len(blob)


def test_a_stalled_body_is_cut_and_nothing_is_appended(harness, device):
    sid, blob = open_upload(harness, device, 40_000)
    with connect(harness) as s:
        s.sendall(signed_chunk_head(device, sid, blob))
        s.sendall(blob[:10_000])  # then silence, past body_timeout_s (0.5 s)
        status, closed = answer_and_close(s)
    assert (status, closed) == (408, True)
    assert harness.dock.store.upload_state(device.device_id, sid).offset == 0
    staging = harness.store_dir / "staging" / device.device_id
    assert [p.name for p in staging.iterdir()] == [f"{sid}.part"]  # no spool left behind


def test_a_device_sends_only_so_many_chunks_at_once(tmp_path):
    limits = WallLimits(body_timeout_s=30, max_inflight_per_device=1)
    harness = DockHarness(tmp_path / "dock", config=DockConfig(wall=limits))
    try:
        device = OutboxDevice(tmp_path / "dev", "cam-busy")
        device.creds = harness.enroll(device)
        sid, blob = open_upload(harness, device, 40_000)
        live = harness.dock.store._live_uploads  # the chunks the dock is receiving

        def receiving() -> bool:
            entry = live.get((device.device_id, sid), 0)
            return entry is not None and entry.busy

        with connect(harness) as first:
            first.sendall(signed_chunk_head(device, sid, blob))
            first.sendall(blob[:1000])  # in flight, then silent
            deadline = time.monotonic() + 5
            while not receiving() and time.monotonic() < deadline:
                time.sleep(0.01)  # (waiting for a condition, with a deadline)
            assert receiving()
            with harness.client(device.creds) as c, pytest.raises(DockRefused) as e:
                c.append(sid, 0, blob)
            assert (e.value.status, e.value.code) == (429, "busy")
        # the first went away: the device goes on
        deadline = time.monotonic() + 5
        while receiving() and time.monotonic() < deadline:
            time.sleep(0.01)
        with harness.client(device.creds) as c:
            assert c.append(sid, 0, blob).offset == len(blob)
    finally:
        harness.close()


def test_nonces_expire_with_their_window_and_are_purged(tmp_path):
    now = [1_800_000_000_000_000]
    h = DockHarness(tmp_path / "dock", clock=lambda: now[0])
    try:
        dev = OutboxDevice(tmp_path / "dev", "cam-nonce")
        h.enroll(dev)
        store = h.dock.store
        window_us = h.dock.config.window_s * 1_000_000
        assert store.use_nonce("cam-nonce", "1" * 32, now[0], now[0] + 2 * window_us)
        assert not store.use_nonce("cam-nonce", "1" * 32, now[0], now[0] + 2 * window_us)
        now[0] += 2 * window_us + 61_000_000  # the window has passed
        assert store.use_nonce("cam-nonce", "2" * 32, now[0], now[0] + 2 * window_us)
        with sqlite3.connect(h.store_dir / INDEX_FILE) as db:
            kept = [n for (n,) in db.execute("SELECT nonce FROM nonces")]
        assert kept == ["2" * 32]
    finally:
        h.close()


def test_the_signature_covers_the_content_digest_so_headers_alone_authenticate():
    dev = KeySigner(SigningKey(bytes(range(32))))
    h = sign_request(dev, "PATCH", "/v1/segments/ab", b"chunk", "cam-1", 1, "0" * 32)
    assert h.as_dict()["Content-Digest"] == content_digest(b"chunk")
    assert verify_request(dev.public_key, h, "PATCH", "/v1/segments/ab", None)  # no body
    swapped = dataclasses.replace(h, content_digest=content_digest(b"other"))
    assert not verify_request(dev.public_key, swapped, "PATCH", "/v1/segments/ab", None)
    assert not verify_request(dev.public_key, h, "PATCH", "/v1/segments/ab", b"other")
