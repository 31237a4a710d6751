"""Issue 12, point 7: the API is exactly its schema. Booleans are not integers, strings are
not numbers, a JSON key given twice is refused, every header a request carries is in the
OpenAPI description (``Upload-Checksum`` with its format, the signing headers), and a method
a path does not take is answered with that path's whole ``Allow``."""

from __future__ import annotations

import re
import secrets
import time

import httpx
import pytest

from dock.protocol import sign_request
from dock.testing import DockHarness, OutboxDevice


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    dev = OutboxDevice(tmp_path_factory.mktemp("dev"), "cam-schema")
    dev.creds = h.enroll(dev)
    yield h, dev
    h.close()


def post_time(env, body: bytes) -> httpx.Response:
    h, dev = env
    signed = sign_request(
        dev.identity,
        "POST",
        "/v1/time",
        body,
        dev.device_id,
        time.time_ns() // 1000,
        secrets.token_hex(16),
    )
    headers = {**signed.as_dict(), "Content-Type": "application/json"}
    return httpx.post(f"{h.url}/v1/time", content=body, headers=headers, verify=h.verify)


@pytest.mark.parametrize(
    "body",
    [
        b'{"device_time_us": false}',
        b'{"device_time_us": true}',
        b'{"device_time_us": "1800000000000000"}',
        b'{"device_time_us": 1.5}',
        b'{"device_time_us": 1, "device_time_us": 2}',
        b'{"device_time_us": NaN}',
    ],
)
def test_a_time_request_of_the_wrong_type_or_with_a_key_twice_is_refused(env, body):
    r = post_time(env, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid"
    assert env[0].dock.store.get_device("cam-schema").time_offset_us is None


def test_a_well_formed_time_request_is_taken(env):
    body = b'{"device_time_us": %d, "nonce": "%s"}' % (time.time_ns() // 1000, b"0" * 32)
    r = post_time(env, body)
    assert r.status_code == 200, r.text
    assert r.json()["answer"]["nonce"] == "0" * 32  # the answer is bound to the nonce sent


def test_every_request_header_is_in_the_schema(env):
    schema = httpx.get(f"{env[0].url}/openapi.json", verify=env[0].verify).json()
    patch = schema["paths"]["/v1/segments/{segment_id}"]["patch"]
    headers = {p["name"]: p for p in patch["parameters"] if p["in"] == "header"}
    assert set(headers) >= {
        "Upload-Offset",
        "Upload-Checksum",
        "Bwv-Device",
        "Bwv-Timestamp",
        "Bwv-Nonce",
        "Content-Digest",
        "Bwv-Signature",
    }
    checksum = headers["Upload-Checksum"]["schema"]["pattern"]
    assert re.fullmatch(checksum, "sha256 " + "A" * 43 + "=")
    assert not re.fullmatch(checksum, "md5 abc")
    assert re.fullmatch(
        headers["Content-Digest"]["schema"]["pattern"], "sha-256=:" + "A" * 43 + "=:"
    )
    for path, ops in schema["paths"].items():
        if path.startswith("/v1/segments") or path in ("/v1/time", "/v1/status"):
            for op in ops.values():
                names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
                assert "Bwv-Signature" in names and "Content-Digest" in names, path


def test_options_and_wrong_methods_get_the_whole_allow(env):
    url = env[0].url
    r = httpx.options(f"{url}/v1/segments/{'a' * 64}", verify=env[0].verify)
    assert r.status_code == 204
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, PATCH, POST, PUT"
    r = httpx.delete(f"{url}/v1/dock", verify=env[0].verify)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
