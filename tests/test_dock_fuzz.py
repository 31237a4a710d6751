"""Fuzz the dock's OpenAPI description (schemathesis) on loopback: no answer is a 5xx.

Valid and invalid requests (schemathesis' positive and negative modes) for every operation.

Half the requests are signed by an enrolled device (and admin calls carry the admin token),
so the fuzzer gets past authentication into the handlers; the rest go unsigned.
"""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from dock.protocol import sign_request
from dock.server import DockConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes

EXAMPLES = 40  # per operation, each sent signed and unsigned


class Signed(requests.auth.AuthBase):
    """Sign what requests will send: method, path with query, body bytes."""

    def __init__(self, device: OutboxDevice, admin_token: str) -> None:
        self.device = device
        self.admin_token = admin_token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):
            return r  # a streamed body: leave it unsigned
        if r.path_url.startswith("/v1/admin/"):
            r.headers["Authorization"] = f"Bearer {self.admin_token}"
        else:
            signed = sign_request(
                self.device.identity,
                r.method or "GET",
                r.path_url,
                body,
                self.device.device_id,
                time.time_ns() // 1000,
                secrets.token_hex(16),
            )
            r.headers.update(signed.as_dict())
        return r


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    harness = DockHarness(
        tmp_path_factory.mktemp("dock"), config=DockConfig(max_chunk_bytes=32 << 10)
    )
    dev = OutboxDevice(tmp_path_factory.mktemp("dev"), "cam-fuzz")
    harness.enroll(dev)
    dev.add_segment(segment_bytes(1000, 1))  # something real to find
    signed = requests.Session()
    signed.verify = str(harness.cert_path)  # over the dock's TLS, its certificate trusted
    signed.auth = Signed(dev, harness.dock.admin_token or "")
    yield harness, signed
    harness.close()


def fuzz_operation(op, base_url: str, signed: requests.Session, cafile: str) -> None:
    cases = st.one_of(
        op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case):
        for session in (signed, None):
            response = case.call(base_url=base_url, session=session, verify=cafile)
            assert response.status_code < 500, (op.label, response.status_code, response.text[:300])

    fuzz()


def test_no_request_makes_the_dock_fail(fuzz_env):
    harness, signed = fuzz_env
    spec = httpx.get(f"{harness.url}/openapi.json", verify=harness.verify).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 9  # the cameras' side (the admin side is apart)
    for op in operations:
        fuzz_operation(op, harness.url, signed, str(harness.cert_path))
