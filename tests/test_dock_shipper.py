"""The device's shipper against a real dock on loopback: nothing lost, nothing twice.

Time for backoff is a VirtualClock the tests move; nothing here sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from capture.clock import MonotonicClock, VirtualClock
from dock.client import DeviceCredentials, DockClient
from dock.custody import verify_custody_log
from dock.protocol import (
    H_DOCK_SIGNATURE,
    H_NONCE,
    KeySigner,
    canonical_json,
    segment_id_for,
    sign_response,
)
from dock.receipts import SignedReceipt, sign_receipt
from dock.server import DockConfig
from dock.shipper import ChainOutbox, Shipper, ShipperConfig, ShipperThread
from dock.testing import (
    DockHarness,
    Fault,
    FaultProxy,
    OutboxDevice,
    declared_digest,
    segment_bytes,
)
from dock.tls import pinned_to

FAST = ShipperConfig(chunk_bytes=8 << 10, jitter=0.0, backoff_initial_s=1.0, backoff_max_s=30.0)
_ids = iter(range(10**6))


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"), config=DockConfig(max_chunk_bytes=1 << 20))
    yield h
    h.close()


def new_device(harness, root: Path, segments=3, size=20_000, seed=0, end=True):
    dev = OutboxDevice(root / "outbox", f"cam-{next(_ids):05d}")
    dev.creds = harness.enroll(dev)
    for i in range(segments):
        dev.add_segment(segment_bytes(size + i * 997, seed + i))
    if end:
        dev.end_recording()
    return dev


def shipper_for(dev, url, clock, config=FAST, timeout=5.0, client_cls=DockClient):
    client = client_cls(url, dev.creds, wall_clock=_wall, timeout=timeout)
    return Shipper(ChainOutbox(dev.root), client, clock, config=config)


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def run_until_idle(shipper, clock, max_steps=400):
    reports = []
    for _ in range(max_steps):
        r = shipper.step()
        reports.append(r)
        if r.action == "idle":
            return reports
        if r.retry_at_us is not None:
            clock.set(max(clock.now_us(), r.retry_at_us))
    raise AssertionError(f"shipper did not finish: {reports[-5:]}")


def assert_shipped_exactly_once(harness, dev):
    store = harness.dock.store
    held = store.held_segments(dev.device_id)
    assert [h.seq for h in held] == [r.seq for r in dev.records]
    for h, rec in zip(held, dev.records, strict=True):
        assert h.manifest_sha256 == rec.sha256 == h.segment_id
    received = [
        e
        for e in store.custody_log(limit=100_000)
        if e.action == "received" and e.device_id == dev.device_id
    ]
    assert sorted(e.segment_id for e in received) == sorted(h.segment_id for h in held)
    # the device kept a receipt for each and deleted every stored blob
    receipts = {p.stem for p in (dev.root.parent / "receipts").glob("*.json")}
    assert receipts == {h.segment_id for h in held}
    assert not list(dev.root.glob("segments/*.bwvseg"))
    # only the newest chain record stays (the chain state can be rebuilt from it)
    assert [p.name for p in (dev.root / "chain").iterdir()] == [
        f"{dev.records[-1].seq:012d}.{dev.records[-1].type}.json"
    ]


# --------------------------------------------------------------------------- basics


def test_ships_oldest_first_and_deletes_only_after_receipts(harness, tmp_path):
    dev = new_device(harness, tmp_path)
    clock = VirtualClock()
    sh = shipper_for(dev, harness.url, clock)
    syncs = []
    sh.on_time = syncs.append
    reports = run_until_idle(sh, clock)
    assert len(syncs) == 1 and abs(syncs[0].offset_us) < 5_000_000
    shipped = [r.segment for r in reports if r.action == "shipped"]
    assert shipped == [f"{r.seq:012d}.{r.type}.json" for r in dev.records]
    assert_shipped_exactly_once(harness, dev)
    assert (
        verify_custody_log(harness.dock.store.custody_log(limit=100_000), harness.public_key) == []
    )


def test_backs_off_exponentially_while_the_dock_is_away(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=1, end=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    clock = VirtualClock()
    sh = shipper_for(dev, dead, clock)
    delays = []
    for _ in range(7):
        r = sh.step()
        assert r.action == "failed"
        assert sh.step().action == "waiting"  # not before it is due
        delays.append((r.retry_at_us - clock.now_us()) / 1e6)
        clock.set(r.retry_at_us)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert list(dev.root.glob("segments/*.bwvseg"))  # nothing deleted
    sh.client = DockClient(harness.url, dev.creds, wall_clock=_wall)
    run_until_idle(sh, clock)
    assert_shipped_exactly_once(harness, dev)
    assert sh.state.failures == 0


def test_resumes_where_it_stopped_after_a_dock_restart(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=1, size=100_000, end=False)
    rec = dev.records[0]
    blob = (dev.root / "segments" / rec.record["file"]).read_bytes()
    sid = segment_id_for(rec.line)
    with harness.client(dev.creds) as c:  # an upload broken off at 40 000 bytes
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        c.append(sid, 0, blob[:40_000])
    harness.restart()
    clock = VirtualClock()
    sh = shipper_for(dev, harness.url, clock)
    run_until_idle(sh, clock)
    assert sh.state.bytes_sent == len(blob) - 40_000
    assert_shipped_exactly_once(harness, dev)


def test_chunks_shrink_to_what_the_dock_takes(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=1, size=1_500_000, end=False)
    clock = VirtualClock()
    big = ShipperConfig(chunk_bytes=4 << 20, jitter=0.0)  # the dock takes 1 MiB at most
    reports = run_until_idle(shipper_for(dev, harness.url, clock, config=big), clock)
    assert [r.action for r in reports] == ["shipped", "idle"]
    assert_shipped_exactly_once(harness, dev)


def test_a_receipt_for_other_bytes_deletes_nothing(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=2, end=False)
    first = {}

    class WrongReceipts(DockClient):
        def append(self, segment_id, offset, chunk, sha256=None):
            got = super().append(segment_id, offset, chunk, sha256)
            if got.receipt is None:
                return got
            # the last chunk's answer: always with the first segment's receipt
            return dataclasses.replace(got, receipt=first.setdefault("r", got.receipt))

    clock = VirtualClock()
    sh = shipper_for(dev, harness.url, clock, client_cls=WrongReceipts)
    assert sh.step().action == "shipped"
    r = sh.step()
    assert r.action == "failed" and "receipt refused" in r.detail
    assert len(list(dev.root.glob("segments/*.bwvseg"))) == 1  # the second is still there


def test_a_dock_that_is_not_the_pinned_one_gets_nothing_deleted(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=1, end=False)
    dev.creds = dev.credentials(bytes(SigningKey.generate().verify_key))
    clock = VirtualClock()
    r = shipper_for(dev, harness.url, clock).step()
    # refused in the TLS handshake: the dock's certificate does not hold the pinned key
    assert r.action == "failed" and "pinned dock key" in r.detail
    assert list(dev.root.glob("segments/*.bwvseg"))


class ForgedReceipts(httpx.BaseTransport):
    """Between the device and the real dock: each receipt in an answer is re-signed with a
    key that is not the dock's, and the answer itself signed again with the dock's own key
    (a dock whose answers check out but whose receipts do not)."""

    def __init__(self, dock_key: SigningKey) -> None:
        self.inner = httpx.HTTPTransport(verify=pinned_to(bytes(dock_key.verify_key)))
        self.dock_key = dock_key
        self.forged = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        body = resp.read()
        resp.close()
        try:
            obj = json.loads(body)
        except ValueError:
            return httpx.Response(resp.status_code, headers=resp.headers, content=body)
        if isinstance(obj, dict) and isinstance(obj.get("receipt"), dict):
            if "signature" in obj:  # the receipt itself (complete)
                obj = self._forge(obj)
            else:  # an upload's state that carries it
                obj["receipt"] = self._forge(obj["receipt"])
            body = canonical_json(obj)
        dropped = ("content-length", H_DOCK_SIGNATURE.lower())
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in dropped}
        nonce = request.headers.get(H_NONCE, "")
        headers[H_DOCK_SIGNATURE] = sign_response(self.dock_key, resp.status_code, nonce, body)
        return httpx.Response(resp.status_code, headers=headers, content=body)

    def _forge(self, obj: dict) -> dict:
        self.forged += 1
        r = SignedReceipt.from_json(obj).receipt
        return sign_receipt(SigningKey.generate(), r).to_json()


def test_a_receipt_whose_own_signature_is_bad_deletes_nothing(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=1, end=False)
    proxy = ForgedReceipts(harness.dock.key)
    client = DockClient(harness.url, dev.creds, wall_clock=_wall, transport=proxy)
    clock = VirtualClock()
    sh = Shipper(ChainOutbox(dev.root), client, clock, config=FAST)
    for _ in range(2):  # the receipt of /complete, then the one an upload's state carries
        r = sh.step()
        assert r.action == "failed", r
        assert "receipt refused: not signed by the pinned dock key" in r.detail
        clock.set(r.retry_at_us)
    assert proxy.forged == 2
    assert len(list(dev.root.glob("segments/*.bwvseg"))) == 1
    assert not list((dev.root.parent / "receipts").glob("*.json"))
    # the dock does hold it: the real receipt, at the next attempt, lets it go
    sh.client = DockClient(harness.url, dev.creds, wall_clock=_wall)
    assert sh.step().action == "shipped"
    assert not list(dev.root.glob("segments/*.bwvseg"))


def test_a_segment_changed_on_the_camera_after_its_upload_is_kept(harness, tmp_path, caplog):
    dev = new_device(harness, tmp_path, segments=1, end=False)
    blob = dev.root / "segments" / dev.records[0].record["file"]

    class ChangesTheFile(DockClient):
        def append(self, segment_id, offset, chunk, sha256=None):
            if offset + len(chunk) == blob.stat().st_size:  # the last chunk read: all is up
                data = bytearray(blob.read_bytes())
                data[100] ^= 0xFF
                blob.write_bytes(bytes(data))
            return super().append(segment_id, offset, chunk, sha256)

    clock = VirtualClock()
    sh = shipper_for(dev, harness.url, clock, client_cls=ChangesTheFile)
    with caplog.at_level(logging.ERROR, logger="bwv.shipper"):
        r = sh.step()
    assert r.action == "failed" and "names other stored bytes" in r.detail
    assert blob.exists()
    assert f"{blob.name} changed on the camera since its upload" in caplog.text
    assert [h.seq for h in harness.dock.store.held_segments(dev.device_id)] == [0]
    # it stays at later attempts too (the dock refuses bytes the manifest does not name)
    sh.client = DockClient(harness.url, dev.creds, wall_clock=_wall)
    clock.set(r.retry_at_us)
    assert sh.step().action == "refused"
    assert blob.exists()


@pytest.mark.parametrize("how", ["revoked", "unknown", "forged"])
def test_a_refused_device_deletes_nothing(harness, tmp_path, how):
    dev = new_device(harness, tmp_path, segments=2, end=False)
    if how == "revoked":
        harness.dock.store.revoke(dev.device_id, "stolen", "technician", _wall())
    elif how == "unknown":
        dev.creds = DeviceCredentials("cam-never-enrolled", dev.identity, harness.public_key)
    else:  # requests signed by a key the dock does not know for this device
        impostor = KeySigner(SigningKey.generate())
        dev.creds = DeviceCredentials(dev.device_id, impostor, harness.public_key)
    clock = VirtualClock()
    sh = shipper_for(dev, harness.url, clock)
    for _ in range(3):
        r = sh.step()
        assert r.action == "failed" and r.detail
        clock.set(r.retry_at_us)
    assert len(list(dev.root.glob("segments/*.bwvseg"))) == 2
    assert not (dev.root.parent / "receipts").exists()
    assert harness.dock.store.held_segments(dev.device_id) == []


def test_a_segment_deleted_on_the_device_shows_as_a_gap(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=3, end=False)
    gone = dev.records.pop(1)
    (dev.root / "segments" / gone.record["file"]).unlink()
    (dev.root / "chain" / f"{gone.seq:012d}.manifest.json").unlink()
    clock = VirtualClock()
    run_until_idle(shipper_for(dev, harness.url, clock), clock)
    assert_shipped_exactly_once(harness, dev)
    with harness.client(dev.creds) as c:
        chain = c.status()["chain"]
    assert chain["gaps"] == [{"from_seq": 1, "to_seq": 1}]
    gap = [
        e
        for e in harness.dock.store.custody_log(limit=100_000)
        if e.action == "gap" and e.device_id == dev.device_id
    ]
    assert [e.detail for e in gap] == [{"missing_from_seq": 1, "missing_to_seq": 1}]
    receipt = (dev.root.parent / "receipts" / f"{dev.records[1].sha256}.json").read_text()
    assert '"gap_before":true' in receipt


@pytest.mark.parametrize(
    "damage, why",
    [
        # another size: refused when the upload is made (the manifest names the size)
        (lambda data: b"not what was signed", "is not the manifest's"),
        # the same size, one byte flipped: refused when its last chunk is in, verified
        (lambda data: data[:-5] + bytes([data[-5] ^ 1]) + data[-4:], "failed verification"),
    ],
)
def test_a_refused_segment_stays_on_the_device_and_the_rest_ship(harness, tmp_path, damage, why):
    dev = new_device(harness, tmp_path, segments=3, end=False)
    damaged = dev.root / "segments" / dev.records[1].record["file"]
    damaged.write_bytes(damage(damaged.read_bytes()))
    clock = VirtualClock()
    reports = run_until_idle(shipper_for(dev, harness.url, clock), clock)
    refused = [r for r in reports if r.action == "refused"]
    assert len(refused) == 1 and why in refused[0].detail
    assert damaged.exists()
    held = harness.dock.store.held_segments(dev.device_id)
    assert [h.seq for h in held] == [0, 2]


def test_duplicate_and_out_of_order_uploads_end_up_exactly_once(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=3, end=True)
    with harness.client(dev.creds) as c:
        for rec in (dev.records[2], dev.records[0], dev.records[2]):  # late, early, again
            blob = (dev.root / "segments" / rec.record["file"]).read_bytes()
            sid = segment_id_for(rec.line)
            c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
            state = c.upload_state(sid)
            if not state.complete:
                c.append(sid, 0, blob)
            c.complete(sid)
    clock = VirtualClock()
    run_until_idle(shipper_for(dev, harness.url, clock), clock)
    assert_shipped_exactly_once(harness, dev)
    gaps = [
        (e.action, e.detail)
        for e in harness.dock.store.custody_log(limit=100_000)
        if e.device_id == dev.device_id and e.action.startswith("gap")
    ]
    assert gaps == [
        ("gap", {"missing_from_seq": 0, "missing_to_seq": 1}),  # 2 came first
        ("gap_filled", {"seq": 0}),
        ("gap_filled", {"seq": 1}),
    ]


def test_two_shippers_racing_on_one_outbox_ship_each_segment_once(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=4, size=30_000)
    errors = []

    def run():
        clock = VirtualClock()
        try:
            run_until_idle(shipper_for(dev, harness.url, clock), clock)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert_shipped_exactly_once(harness, dev)


def test_shipper_thread_ships_in_the_background(harness, tmp_path):
    dev = new_device(harness, tmp_path, segments=2)
    client = DockClient(harness.url, dev.creds, wall_clock=_wall)
    sh = Shipper(ChainOutbox(dev.root), client, MonotonicClock(), config=FAST)
    done = threading.Event()
    thread = ShipperThread(sh).start()
    try:
        for _ in range(500):
            thread.wake()
            if sh.state.shipped == len(dev.records) or done.wait(0.02):
                break
    finally:
        thread.stop()
    assert_shipped_exactly_once(harness, dev)


# --------------------------------------------------------------------------- random faults

# offsets into all the bytes each way: three segments of up to 40 kB go up, ~0.5 kB per
# answer comes down; a fault with restart=True also restarts the dock right after the cut
restart = st.sampled_from([False, False, False, True])
faults = st.lists(
    st.one_of(
        st.builds(Fault, direction=st.just("up"), at_byte=st.integers(0, 130_000), restart=restart),
        st.builds(
            Fault, direction=st.just("down"), at_byte=st.integers(0, 12_000), restart=restart
        ),
    ),
    max_size=6,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=faults, sizes=st.lists(st.integers(200, 40_000), min_size=1, max_size=3))
def test_connections_cut_at_random_points_and_dock_restarts_lose_nothing(harness, schedule, sizes):
    with tempfile.TemporaryDirectory() as tmp:
        dev = OutboxDevice(Path(tmp) / "outbox", f"cam-{next(_ids):05d}")
        dev.creds = harness.enroll(dev)
        for i, n in enumerate(sizes):
            dev.add_segment(segment_bytes(n, i))
        dev.end_recording()
        upstream = ("127.0.0.1", harness.server.port)
        with FaultProxy(upstream, schedule, on_restart=harness.restart) as proxy:
            clock = VirtualClock()
            sh = shipper_for(dev, proxy.url, clock, timeout=5.0)
            run_until_idle(sh, clock, max_steps=1000)
            sh.client.close()
        assert_shipped_exactly_once(harness, dev)
        assert sh.state.failures == 0
