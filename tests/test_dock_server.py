"""The dock server on loopback: enrollment, time, uploads, receipts, and every refusal.

Each refusal is a 4xx with a message that says what is wrong, and leaves nothing stored.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from nacl.signing import SigningKey

from dock.client import DockRefused, DockUnavailable, check_answer, enroll
from dock.custody import verify_custody_log
from dock.protocol import (
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    KeySigner,
    b64e,
    chunk_checksum_header,
    segment_id_for,
    sign_request,
)
from dock.server import DockConfig
from dock.store_sqlite import INDEX_FILE
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.verify import ChainRecordVerifier


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(
        tmp_path_factory.mktemp("dock"),
        config=DockConfig(max_chunk_bytes=64 << 10, max_json_bytes=256 << 10),
    )
    yield h
    h.close()


@pytest.fixture
def device(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "dev", f"cam-{secrets.token_hex(4)}")
    dev.creds = harness.enroll(dev)
    return dev


def _now() -> int:
    import time

    return time.time_ns() // 1000


def raw(
    harness,
    method,
    path,
    *,
    signer=None,
    device_id="cam-x",
    body=b"",
    headers=None,
    ts=None,
    nonce=None,
    sign_path=None,
):
    """A hand-made signed request (to forge, replay and misbehave)."""
    nonce = nonce or secrets.token_hex(16)
    ts = _now() if ts is None else ts
    hdrs = dict(headers or {})
    if signer is not None:
        hdrs.update(
            sign_request(signer, method, sign_path or path, body, device_id, ts, nonce).as_dict()
        )
    with harness.http() as http:
        return http.request(method, path, content=body, headers=hdrs)


def stored_nothing(harness, device_id):
    objects = harness.store_dir / "objects" / device_id
    return (
        not (objects.exists() and any(objects.iterdir()))
        and harness.dock.store.held_segments(device_id) == []
    )


def _upload(client, rec, blob, chunk=20_000):
    sid = segment_id_for(rec.line)
    state = client.create_upload(sid, rec.line, len(blob), declared_digest(blob))
    while state.offset < len(blob):
        state = client.append(sid, state.offset, blob[state.offset : state.offset + chunk])
    return sid, client.complete(sid)


# --------------------------------------------------------------------------- happy path


def test_upload_verify_store_log_and_receipt(harness, device):
    blob = segment_bytes(70_000, 1)
    rec = device.add_segment(blob)
    with harness.client(device.creds) as c:
        sync = c.sync_time()
        sid, receipt = _upload(c, rec, blob)
        assert receipt.verify(harness.public_key)
        r = receipt.receipt
        assert (r.device_id, r.segment_id, r.seq) == (device.device_id, sid, 0)
        assert r.stored_digest == declared_digest(blob) and r.manifest_sha256 == rec.sha256
        # asking again gives the same receipt: complete is idempotent
        assert c.complete(sid) == receipt
        assert c.upload_state(sid).complete
        status = c.status()
    assert abs(sync.offset_us) < 5_000_000
    assert status["chain"] == {"held": 1, "first_seq": 0, "last_seq": 0, "gaps": [], "breaks": []}
    assert status["time_offset_us"] == sync.offset_us
    objects = harness.store_dir / "objects" / device.device_id
    assert (objects / f"{sid}.blob").read_bytes() == blob
    assert (objects / f"{sid}.manifest").read_bytes() == rec.line
    log = harness.dock.store.custody_log()
    received = [e for e in log if e.action == "received" and e.segment_id == sid]
    assert len(received) == 1 and received[0].sha256 == declared_digest(blob)
    assert received[0].actor == f"device:{device.device_id}"
    assert received[0].entry_hash == r.log_entry_hash
    assert verify_custody_log(log, harness.public_key) == []


def test_end_records_ship_as_empty_uploads(harness, device):
    blob = segment_bytes(1000, 2)
    rec0 = device.add_segment(blob)
    end = device.end_recording()
    with harness.client(device.creds) as c:
        _upload(c, rec0, blob)
        _, receipt = _upload(c, end, b"")
        assert receipt.receipt.seq == 1 and receipt.receipt.stored_size == 0
        assert c.status()["chain"]["gaps"] == []


def test_the_openapi_description_lists_the_protocol(harness):
    spec = httpx.get(harness.url + "/openapi.json", verify=harness.verify).json()
    paths = spec["paths"]
    for p in (
        "/v1/enroll",
        "/v1/time",
        "/v1/segments/{segment_id}",
        "/v1/segments/{segment_id}/complete",
        "/v1/status",
    ):
        assert p in paths
    assert not [p for p in paths if p.startswith("/v1/admin")]  # the admin side is apart
    assert set(paths["/v1/segments/{segment_id}"]) == {"get", "post", "patch", "put"}


# --------------------------------------------------------------------------- refusals


def test_unsigned_forged_and_unknown_are_refused(harness, device):
    path = "/v1/status"
    r = raw(harness, "GET", path)
    assert r.status_code == 401 and "missing header" in r.json()["detail"]
    assert r.json()["code"] == "unsigned"
    forger = KeySigner(SigningKey.generate())
    r = raw(harness, "GET", path, signer=forger, device_id=device.device_id)
    assert r.status_code == 401 and "signature does not verify" in r.json()["detail"]
    assert r.json()["code"] == "bad_signature"
    known = r.json()
    r = raw(harness, "GET", path, signer=forger, device_id="cam-nobody")
    assert r.status_code == 401 and r.json() == known  # an unknown id: the same answer
    # signed for another path: the signature covers the path
    r = raw(
        harness,
        "GET",
        path,
        signer=device.identity,
        device_id=device.device_id,
        sign_path="/v1/time",
    )
    assert r.status_code == 401


def test_replayed_and_stale_requests_are_refused(harness, device):
    nonce = secrets.token_hex(16)
    args = {"signer": device.identity, "device_id": device.device_id, "nonce": nonce}
    first = raw(harness, "GET", "/v1/status", ts=_now(), **args)
    assert first.status_code == 200
    again = raw(harness, "GET", "/v1/status", ts=_now(), **args)
    assert again.status_code == 401 and "replayed" in again.json()["detail"]
    assert again.json()["code"] == "replayed"
    old = raw(
        harness,
        "GET",
        "/v1/status",
        signer=device.identity,
        device_id=device.device_id,
        ts=_now() - 3_600_000_000,
    )
    assert old.status_code == 401 and "window" in old.json()["detail"]
    assert old.json()["code"] == "stale_timestamp"


def test_the_device_rejects_answers_not_signed_by_its_pinned_dock(harness, device):
    impostor = device.credentials(bytes(SigningKey.generate().verify_key))
    # another key pinned: the TLS handshake itself is refused, before any request is sent
    with harness.client(impostor) as c, pytest.raises(DockUnavailable, match="pinned dock key"):
        c.sync_time()
    # and an answer to another request (its nonce) does not count either
    r = raw(harness, "GET", "/v1/status", signer=device.identity, device_id=device.device_id)
    r.request.headers["Bwv-Nonce"] = secrets.token_hex(16)
    with pytest.raises(DockUnavailable):
        check_answer(r, harness.public_key)


def test_revoked_device_is_refused_and_logged(harness, device):
    admin = {"Authorization": f"Bearer {harness.dock.admin_token}"}
    blob = segment_bytes(200, 3)
    rec = device.add_segment(blob)
    r = httpx.post(
        f"{harness.admin_url}/v1/admin/devices/{device.device_id}/revoke",
        json={"reason": "lost in the field"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["revoked"]
    with harness.client(device.creds) as c, pytest.raises(DockRefused) as e:
        c.create_upload(segment_id_for(rec.line), rec.line, len(blob), declared_digest(blob))
    assert e.value.status == 403 and "revoked" in e.value.detail
    assert stored_nothing(harness, device.device_id)
    entry = [x for x in harness.dock.store.custody_log() if x.action == "revoked"][-1]
    assert entry.device_id == device.device_id and entry.actor == "technician"
    # revoked stays revoked: the id cannot be enrolled again
    with pytest.raises(DockRefused, match="revoked"):
        enroll(
            harness.url,
            device.device_id,
            device.identity,
            device.public_key,
            harness.token(device.device_id),
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )


def test_admin_api_needs_the_admin_token(harness):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = httpx.post(f"{harness.admin_url}/v1/admin/tokens", json={}, headers=headers)
        assert r.status_code == 401 and "admin token" in r.json()["detail"]
    r = httpx.post(
        f"{harness.admin_url}/v1/admin/tokens",
        json={"device_id": "cam-new"},
        headers={"Authorization": f"Bearer {harness.dock.admin_token}"},
    )
    assert r.status_code == 201 and r.json()["token"].startswith("bwv-enroll-")


def test_enrollment_needs_a_fresh_token_and_the_key_itself(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "d", "cam-enrol")
    token = harness.token("cam-enrol")
    # a request signed by another key cannot enrol this key
    other = KeySigner(SigningKey.generate())
    with pytest.raises(DockRefused, match="not signed by the key"):
        enroll(
            harness.url,
            "cam-enrol",
            other,
            dev.public_key,
            token,
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )
    with pytest.raises(DockRefused, match="unknown, used or expired"):
        enroll(
            harness.url,
            "cam-enrol",
            dev.identity,
            dev.public_key,
            "bwv-enroll-guess",
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )
    got = enroll(
        harness.url,
        "cam-enrol",
        dev.identity,
        dev.public_key,
        token,
        wall_clock=_now,
        trust_first_dock=True,
    )
    assert got.dock_public_key == harness.public_key
    with pytest.raises(DockRefused, match="unknown, used or expired"):
        enroll(
            harness.url,
            "cam-enrol",
            dev.identity,
            dev.public_key,
            token,
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )


@pytest.mark.parametrize(
    "segment_path",
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "A" * 64,
        "a" * 63,
        "a" * 64 + "%00",
        "a" * 64 + "/../b",
        "*",
    ],
)
def test_path_tricks_in_segment_ids_are_refused(harness, device, segment_path):
    path = f"/v1/segments/{segment_path}"
    r = raw(
        harness,
        "POST",
        path,
        signer=device.identity,
        device_id=device.device_id,
        body=b'{"manifest":"AA==","size":1,"sha256":"' + b"a" * 64 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]
    assert stored_nothing(harness, device.device_id)
    assert not any((harness.store_dir / "staging").glob("**/*etc*"))


def test_device_path_tricks_in_admin_urls_are_refused(harness):
    admin = {"Authorization": f"Bearer {harness.dock.admin_token}"}
    for p in ("..", "..%2F..", "a%2Fb", ".hidden"):
        r = httpx.get(f"{harness.admin_url}/v1/admin/devices/{p}", headers=admin)
        assert 400 <= r.status_code < 500


def test_wrong_chunk_checksum_appends_nothing(harness, device):
    blob = segment_bytes(5000, 4)
    rec = device.add_segment(blob)
    with harness.client(device.creds) as c:
        sid = segment_id_for(rec.line)
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        r = raw(
            harness,
            "PATCH",
            f"/v1/segments/{sid}",
            signer=device.identity,
            device_id=device.device_id,
            body=blob[:1000],
            headers={
                H_UPLOAD_OFFSET: "0",
                H_UPLOAD_CHECKSUM: chunk_checksum_header(b"something else"),
            },
        )
        assert r.status_code == 460 and "checksum mismatch" in r.json()["detail"]
        assert r.json()["code"] == "checksum_mismatch"
        assert c.upload_state(sid).offset == 0
        with pytest.raises(DockRefused) as e:
            c.append(sid, 1000, blob[1000:2000])
        assert e.value.status == 409 and "offset mismatch" in e.value.detail
        assert c.upload_state(sid).offset == 0


def test_oversized_bodies_are_refused_before_they_are_read(harness, device):
    big = segment_bytes(harness.dock.config.max_chunk_bytes + 1, 5)
    rec = device.add_segment(big)
    with harness.client(device.creds) as c:
        sid = segment_id_for(rec.line)
        c.create_upload(sid, rec.line, len(big), declared_digest(big))
        with pytest.raises(DockRefused) as e:
            c.append(sid, 0, big)
        assert e.value.status == 413 and "larger than" in e.value.detail
        assert e.value.code == "body_too_large"
        assert c.upload_state(sid).offset == 0

    # a chunked body without Content-Length is counted as it arrives
    def gen():
        for _ in range(20):
            yield b"x" * 60_000

    with harness.http() as http:
        r = http.post("/v1/enroll", content=gen())  # (a device route: unsigned, so 401 first)
    assert r.status_code == 413
    # a JSON body over the limit
    r = httpx.post(
        f"{harness.url}/v1/enroll",
        verify=harness.verify,
        content=b"{" + b" " * (300 << 10) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_a_manifest_of_another_device_is_refused(harness, device, tmp_path):
    other = OutboxDevice(tmp_path / "o", "cam-other")
    blob = segment_bytes(200, 6)
    rec = other.add_segment(blob)
    with harness.client(device.creds) as c, pytest.raises(DockRefused) as e:
        c.create_upload(segment_id_for(rec.line), rec.line, len(blob), declared_digest(blob))
    assert e.value.status == 403 and "another device" in e.value.detail
    assert stored_nothing(harness, device.device_id)


def test_upload_declaring_other_bytes_than_the_manifest_is_refused(harness, device):
    blob = segment_bytes(200, 7)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    with harness.client(device.creds) as c:
        with pytest.raises(DockRefused, match="stored digest"):
            c.create_upload(sid, rec.line, len(blob), "0" * 64)
        with pytest.raises(DockRefused, match="SHA-256 of the manifest"):
            c.create_upload("0" * 64, rec.line, len(blob), declared_digest(blob))
        with pytest.raises(DockRefused, match="size"):
            c.create_upload(sid, rec.line, len(blob) + 1, declared_digest(blob))
    assert stored_nothing(harness, device.device_id)


def test_a_blob_that_does_not_match_its_manifest_is_refused_at_completion(harness, device):
    blob = segment_bytes(3000, 8)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    bad = bytes([blob[0] ^ 1]) + blob[1:]  # checksummed chunks, but not the signed bytes
    with harness.client(device.creds) as c:
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        with pytest.raises(DockRefused) as e:  # the last chunk completes the upload
            c.append(sid, 0, bad)
        assert e.value.status == 422 and "not the one the manifest signs" in e.value.detail
        assert c.upload_state(sid) is None  # dropped: the device starts again
    assert stored_nothing(harness, device.device_id)
    rejected = [x for x in harness.dock.store.custody_log() if x.action == "rejected"][-1]
    assert rejected.segment_id == sid and "manifest signs" in rejected.detail["reasons"][0]


def test_a_tampered_manifest_is_refused(harness, device):
    blob = segment_bytes(200, 9)
    rec = device.add_segment(blob)
    forged = rec.line.replace(b'"firmware_version":"test"', b'"firmware_version":"evil"')
    assert forged != rec.line
    sid = segment_id_for(forged)
    with harness.client(device.creds) as c, pytest.raises(DockRefused) as e:
        c.create_upload(sid, forged, len(blob), declared_digest(blob))  # refused at creation
    assert e.value.status == 422 and "does not verify" in e.value.detail
    assert stored_nothing(harness, device.device_id)
    assert harness.dock.store.open_uploads(device.device_id) == (0, 0)


def test_a_sequence_number_cannot_be_used_twice(harness, device, tmp_path):
    blob = segment_bytes(200, 10)
    rec = device.add_segment(blob)
    with harness.client(device.creds) as c:
        _upload(c, rec, blob)
        # the same key signs another record with seq 0 (a device that lost its chain state)
        twin = OutboxDevice(tmp_path / "twin", device.device_id)
        twin.identity = device.identity
        from crypto.manifest import Chain

        twin.chain = Chain(
            tmp_path / "twin" / "c", tmp_path / "twin" / "s", device.identity, device.public_key
        )
        blob2 = segment_bytes(200, 11)
        rec2 = twin.add_segment(blob2)
        with pytest.raises(DockRefused) as e:
            c.create_upload(
                segment_id_for(rec2.line), rec2.line, len(blob2), declared_digest(blob2)
            )
        assert e.value.status == 409 and "never reused" in e.value.detail
    assert len(harness.dock.store.held_segments(device.device_id)) == 1


def test_index_and_keys_are_not_readable_by_others(harness):
    import stat

    for name in ("dock.key", "admin.token"):
        assert stat.S_IMODE((harness.store_dir / name).stat().st_mode) == 0o600
    assert (harness.store_dir / INDEX_FILE).exists()


def test_verifier_reads_crypto_chain_records(tmp_path):
    dev = OutboxDevice(tmp_path, "cam-v")
    blob = segment_bytes(300, 1)
    rec = dev.add_segment(blob)
    v = ChainRecordVerifier()
    f = v.parse(rec.line)
    assert (f.record_type, f.seq, f.stored_digest) == (
        "manifest",
        0,
        declared_digest(blob),
    )
    import io

    ok = v.verify(dev.public_key, rec.line, io.BytesIO(blob), None)
    assert ok.ok and not ok.gap
    rec1 = dev.add_segment(blob)
    assert v.verify(dev.public_key, rec1.line, io.BytesIO(blob), None).gap
    broken = v.verify(dev.public_key, rec1.line, io.BytesIO(blob), "e" * 64)
    assert not broken.ok and "chain break" in broken.problems[0]


def test_bad_json_and_headers_get_clear_4xx(harness, device):
    sid = "a" * 64
    r = raw(
        harness,
        "POST",
        f"/v1/segments/{sid}",
        signer=device.identity,
        device_id=device.device_id,
        body=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"]
    r = raw(
        harness,
        "POST",
        f"/v1/segments/{sid}",
        signer=device.identity,
        device_id=device.device_id,
        body=b'{"manifest":"!!!","size":1,"sha256":"' + b"a" * 64 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "base64" in r.json()["detail"]
    r = raw(
        harness,
        "PATCH",
        f"/v1/segments/{sid}",
        signer=device.identity,
        device_id=device.device_id,
        body=b"x",
        headers={H_UPLOAD_OFFSET: "-1", H_UPLOAD_CHECKSUM: "sha256 " + b64e(b"x" * 32)},
    )
    assert r.status_code == 422 and "Upload-Offset" in r.json()["detail"]


def test_lost_staged_bytes_ask_for_the_upload_again(harness, device):
    blob = segment_bytes(2000, 12)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    with harness.client(device.creds) as c:
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        c.append(sid, 0, blob[:1000])
        (harness.store_dir / "staging" / device.device_id / f"{sid}.part").unlink()
        with pytest.raises(DockRefused) as e:
            c.append(sid, 1000, blob[1000:])
        assert e.value.status == 409 and e.value.code == "upload_lost"
        assert c.upload_state(sid) is None
        _, receipt = _upload(c, rec, blob)
        assert receipt.verify(harness.public_key)


def test_admin_lists_devices_with_their_chains(harness, device):
    admin = {"Authorization": f"Bearer {harness.dock.admin_token}"}
    r = httpx.get(f"{harness.admin_url}/v1/admin/devices", headers=admin)
    assert r.status_code == 200
    mine = [d for d in r.json() if d["device_id"] == device.device_id]
    assert mine and mine[0]["chain"]["held"] == 0 and not mine[0]["revoked"]


def test_a_chunk_stuck_on_a_slow_disk_holds_up_no_other_camera(harness, device, tmp_path):
    """The staged file is written off the event loop: while one camera's chunk waits on the
    disk, another camera is answered."""
    import threading

    import dock.upload_live as upload_live

    other = OutboxDevice(tmp_path / "other", f"cam-{secrets.token_hex(4)}")
    other.creds = harness.enroll(other)
    blob = segment_bytes(50_000, 21)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    entered, release = threading.Event(), threading.Event()
    real = upload_live.ChunkWriter.write

    def slow_disk(self, block):
        entered.set()
        assert release.wait(30), "the test never let the disk go on"
        return real(self, block)

    upload_live.ChunkWriter.write = slow_disk
    results: list = []
    try:
        with harness.client(device.creds) as c:
            c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
            t = threading.Thread(target=lambda: results.append(c.append(sid, 0, blob)))
            t.start()
            assert entered.wait(30)
            with harness.client(other.creds, timeout=10) as o:  # answered while A waits
                assert o.status()["device_id"] == other.device_id
            release.set()
            t.join(30)
    finally:
        release.set()
        upload_live.ChunkWriter.write = real
    assert results and results[0].complete and results[0].receipt is not None
