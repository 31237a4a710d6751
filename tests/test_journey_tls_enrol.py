"""Issue 12, points 2, 3 and 6: the admin side is apart, enrollment cannot be stolen, and a bad
signature gets the same answer for an unknown id as for an enrolled one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bwv.cli import main
from crypto.identity import DeviceIdentity
from dock.client import DockRefused, enroll
from dock.protocol import sign_request
from dock.testing import DockHarness, OutboxDevice


def _now() -> int:
    return time.time_ns() // 1000


@pytest.fixture
def harness(tmp_path: Path):
    h = DockHarness(tmp_path / "dock")
    yield h
    h.close()


# -- point 2: the admin side apart ---------------------------------------------------------------


def test_the_cameras_side_never_accepts_the_admin_token(harness):
    bearer = {"Authorization": f"Bearer {harness.dock.admin_token}"}
    with harness.http() as cameras:
        for method, path, body in (
            ("POST", "/v1/admin/tokens", {"device_id": "cam-x-01"}),
            ("GET", "/v1/admin/devices", None),
            ("GET", "/v1/admin/log", None),
        ):
            r = cameras.request(method, path, json=body, headers=bearer)
            assert r.status_code == 404, (path, r.status_code)
        assert not [p for p in cameras.get("/openapi.json").json()["paths"] if "admin" in p]
    # the same token works where the admin side listens (loopback here; a Unix socket by
    # default in `bwv dock serve`)
    r = httpx.post(
        harness.admin_url + "/v1/admin/tokens", json={"device_id": "cam-x-01"}, headers=bearer
    )
    assert r.status_code == 201 and r.json()["device_id"] == "cam-x-01"


def test_serve_refuses_an_admin_side_on_the_network(tmp_path):
    r = CliRunner().invoke(
        main,
        ["dock", "serve", "--store", str(tmp_path / "s"), "--admin-listen", "0.0.0.0:8444"],
    )
    assert r.exit_code == 2 and "this machine only" in r.output
    assert not (tmp_path / "s").exists()  # refused before anything was made


# -- point 3: enrollment that cannot be stolen ---------------------------------------------------


def test_every_token_is_bound_to_one_device_id(harness):
    bearer = {"Authorization": f"Bearer {harness.dock.admin_token}"}
    r = httpx.post(harness.admin_url + "/v1/admin/tokens", json={}, headers=bearer)
    assert r.status_code == 422  # no device id: no token
    r = CliRunner().invoke(
        main,
        ["dock", "token", "--store", str(harness.store_dir)],
    )
    assert r.exit_code == 2 and "--device" in r.output


def _signed_enrollment(harness: DockHarness, dev: OutboxDevice, token: str) -> tuple[bytes, dict]:
    """An enrollment request exactly as the camera sends it (a fresh challenge, signed)."""
    with harness.http() as http:
        challenge = http.post("/v1/enroll/challenge").json()["challenge"]
    body = json.dumps(
        {
            "device_id": dev.device_id,
            "public_key": dev.public_key.hex(),
            "token": token,
            "challenge": challenge,
        }
    ).encode()
    signed = sign_request(dev.identity, "POST", "/v1/enroll", body, dev.device_id, _now(), "a" * 32)
    return body, {**signed.as_dict(), "Content-Type": "application/json"}


def test_a_replayed_enrollment_is_worthless(harness, tmp_path):
    """Someone records the camera's enrollment request and sends it again (or sends it
    first, before the camera): it enrols nothing but the camera's own key, once."""
    dev = OutboxDevice(tmp_path / "dev", "cam-replay-01")
    token = harness.token(dev.device_id)
    body, headers = _signed_enrollment(harness, dev, token)
    with harness.http() as http:
        first = http.post("/v1/enroll", content=body, headers=headers)
        again = http.post("/v1/enroll", content=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 401 and again.json()["code"] == "replayed"
    assert "challenge" in again.json()["detail"]
    assert harness.dock.store.get_device(dev.device_id).public_key == dev.public_key


def test_a_seen_token_cannot_enrol_another_key(harness, tmp_path):
    """The token alone is worth nothing: with a fresh challenge but another key, the request
    must be signed by the key being enrolled; with the camera's key named in the body, the
    impostor cannot sign; and a challenge is good once."""
    dev = OutboxDevice(tmp_path / "dev", "cam-steal-01")
    thief = DeviceIdentity.from_seed(dev.device_id, b"\x07" * 32)
    token = harness.token(dev.device_id)
    body, headers = _signed_enrollment(harness, dev, token)
    # the thief re-signs the camera's body (its key named) with its own key
    forged = sign_request(thief, "POST", "/v1/enroll", body, dev.device_id, _now(), "b" * 32)
    with harness.http() as http:
        r = http.post(
            "/v1/enroll",
            content=body,
            headers={**forged.as_dict(), "Content-Type": "application/json"},
        )
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    # its own key, its own fresh challenge: the token is bound to the camera's id, not to a
    # key, so this is the one way left, and it needs the token before the camera used it
    with pytest.raises(DockRefused):
        enroll(
            harness.url,
            dev.device_id,
            thief,
            thief.public_key,
            "bwv-enroll-" + "x" * 32,
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )
    # a challenge the dock never gave is refused, even with the right token and key
    body2 = json.loads(body)
    body2["challenge"] = "0" * 64
    raw = json.dumps(body2).encode()
    signed = sign_request(dev.identity, "POST", "/v1/enroll", raw, dev.device_id, _now(), "c" * 32)
    with harness.http() as http:
        r = http.post(
            "/v1/enroll",
            content=raw,
            headers={**signed.as_dict(), "Content-Type": "application/json"},
        )
    assert r.status_code == 401 and r.json()["code"] == "replayed"
    assert harness.dock.store.get_device(dev.device_id) is None  # the token is still unused


def test_a_challenge_expires(harness):
    from dock.enroll import CHALLENGE_TTL_S, Challenges

    c = Challenges()
    value = c.issue(0)
    assert not c.take(value, CHALLENGE_TTL_S * 1_000_000)
    value = c.issue(0)
    assert c.take(value, 1) and not c.take(value, 2)


# -- point 6: no enumeration -------------------------------------------------------------------


def test_unknown_and_enrolled_ids_get_the_same_answer_on_a_bad_signature(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "dev", "cam-known-01")
    harness.enroll(dev)
    forger = DeviceIdentity.from_seed("x", b"\x09" * 32)
    answers = []
    for device_id in (dev.device_id, "cam-nobody-01"):
        signed = sign_request(forger, "GET", "/v1/status", b"", device_id, _now(), "d" * 32)
        with harness.http() as http:
            r = http.get("/v1/status", headers=signed.as_dict())
        answers.append((r.status_code, r.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and b"bad_signature" in answers[0][1]


def test_bwv_dock_serve_speaks_https_to_cameras_and_keeps_its_admin_side_local(tmp_path):
    """The real command: the cameras' port answers only TLS with the dock's key, the admin
    side is a Unix socket only the dock's user may open, and it answers there alone."""
    import socket
    import stat

    from tests.test_journey_dock_serve import dock_process

    store = tmp_path / "s"
    with dock_process(store) as served:
        sock = store / "admin.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
        admin = (store / "admin.token").read_text().strip()
        with served.admin() as http:
            r = http.get("/v1/admin/devices", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200 and r.json() == []
        with httpx.Client(verify=served.verify()) as cameras:
            r = cameras.get(
                served.url + "/v1/admin/devices", headers={"Authorization": f"Bearer {admin}"}
            )
        assert r.status_code == 404
        host, port = served.url.removeprefix("https://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as plain:
            plain.sendall(b"GET /v1/dock HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = plain.recv(4096)
        assert b"dock_public_key" not in answer  # no plain-HTTP answer where cameras connect
    assert "dock fingerprint:" in served.stdout and "admin side on    unix:" in served.stdout
