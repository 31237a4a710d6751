"""Time on the device, the technician's side: `bwv provision --tsa-ca` pins the TSA's CA;
a refused correction shows in `bwv status`; the chain takes the shipper's time records and
the recorder's manifests from two threads without handing a sequence number out twice."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from bwv.provision_cmd import provision
from bwv.status_cmd import status
from crypto.manifest import Chain, ChainState, end_fields, time_sync_fields
from crypto.testing import device_identity
from crypto.time_answer import time_answer
from dock.client import DeviceCredentials, DockClient, DockUnavailable
from dock.clockstate import CLOCK_STATE, write_clock_state
from dock.protocol import H_DOCK_SIGNATURE, H_NONCE, b64e, canonical_json, key_id, sign_response


def _config(tmp: Path) -> Path:
    storage = tmp / "var"
    storage.mkdir(exist_ok=True)
    cfg = tmp / "bwv.toml"
    cfg.write_text(
        "\n".join(
            [
                'device_id = "cam-time-01"',
                "[storage]",
                f'dir = "{storage}"',
                "[keys]",
                f'device_key = "{tmp / "keys" / "device.key"}"',
                f'agency_public_key = "{tmp / "agency.pub"}"',
                f'dock_public_key = "{tmp / "dock.pub"}"',
                f'tsa_ca = "{tmp / "keys" / "tsa-ca.pem"}"',
            ]
        )
        + "\n"
    )
    return cfg


def test_provision_pins_the_tsa_ca_and_refuses_what_is_no_certificate(tmp_path):
    from tsa.init import init_state

    cfg = _config(tmp_path)
    agency = tmp_path / "from-agency.pub"
    agency.write_text(bytes(PrivateKey.generate().public_key).hex() + "\n")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    base = ["--config", str(cfg), "--agency-pub", str(agency)]
    r = CliRunner().invoke(provision, [*base, "--tsa-ca", str(not_pem)])
    assert r.exit_code == 2 and "not a PEM certificate" in r.output
    assert not (tmp_path / "keys" / "device.key").exists()  # checked before anything changed
    ca = init_state(tmp_path / "tsa").state.dir / "ca.pem"
    r = CliRunner().invoke(provision, [*base, "--tsa-ca", str(ca)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "keys" / "tsa-ca.pem").read_bytes() == ca.read_bytes()
    # the fingerprint `bwv tsa init` printed for that CA: the technician compares the two
    assert init_state(tmp_path / "tsa").ca_fingerprint in r.output


def test_a_refused_correction_is_a_warning_in_bwv_status(tmp_path):
    cfg = _config(tmp_path)
    r = CliRunner().invoke(status, ["--config", str(cfg)])
    assert "clock:" not in r.output
    write_clock_state(
        tmp_path / "var" / CLOCK_STATE,
        {
            "time_sync_seq": 7,
            "applied": False,
            "offset_us": -249_868_800_000_000,
            "dock_time_us": 1_546_300_800_000_000,
            "refused": "clock kept: the dock's time is -2892.0 days from this camera's; no token",
        },
    )
    r = CliRunner().invoke(status, ["--config", str(cfg)])
    assert "clock: clock kept: the dock's time is -2892.0 days" in r.output


def test_the_chain_takes_records_from_two_threads(tmp_path):
    ident = device_identity()
    chain = Chain(tmp_path / "chain", tmp_path / "state.json", ident, ident.public_key)
    errors: list[BaseException] = []

    def sync_records() -> None:
        try:
            for i in range(60):
                chain.append(
                    "time_sync",
                    time_sync_fields(
                        capture_us=i,
                        device_wall_us=i,
                        nonce="ab" * 16,
                        dock_time_us=i,
                        dock_key_id="cd" * 8,
                        dock_signature="ef" * 64,
                        offset_us=0,
                        applied=True,
                        tsa_token=None,
                    ),
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def end_records() -> None:
        try:
            for i in range(60):
                chain.append(
                    "end",
                    end_fields(
                        firmware_version="t",
                        recording_id=f"r{i}",
                        reason="stopped",
                        end_us=i,
                        segment_count=0,
                        recovered=False,
                    ),
                )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=sync_records), threading.Thread(target=end_records)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # every record on disk, once, each naming the one before it: the chain rebuilds whole
    rebuilt = Chain(tmp_path / "chain", tmp_path / "other-state.json", ident, ident.public_key)
    assert rebuilt.state.next_seq == 120 == chain.state.next_seq
    assert rebuilt.state.prev_sha256 == chain.state.prev_sha256
    assert isinstance(rebuilt.state, ChainState)


def _dock_answering(dock_key, answer_for):
    """A transport standing in for a dock that signs every answer (its HTTP signature is
    right): ``answer_for(request body)`` gives the time answer it signs into the body."""

    def handle(request: httpx.Request) -> httpx.Response:
        a = answer_for(json.loads(request.content))
        body = canonical_json(
            {
                "answer": a,
                "signature": b64e(dock_key.sign(canonical_json(a)).signature),
                "tsa_token": None,
            }
        )
        sig = sign_response(dock_key, 200, request.headers[H_NONCE], body)
        return httpx.Response(200, content=body, headers={H_DOCK_SIGNATURE: sig})

    return httpx.MockTransport(handle)


def test_an_answer_to_another_nonce_is_no_answer(tmp_path):
    """A dock replaying an old answer (an old token with it) cannot have it taken: the
    answer must be signed over the nonce this camera just sent."""
    dock_key = SigningKey(b"k" * 32)
    ident = device_identity()
    creds = DeviceCredentials(ident.device_id, ident, bytes(dock_key.verify_key))
    kid = key_id(bytes(dock_key.verify_key))

    def honest(req):
        return time_answer(ident.device_id, req["nonce"], req["device_time_us"], 5, kid)

    def replayed(req):
        return time_answer(ident.device_id, "0" * 32, req["device_time_us"], 5, kid)

    with DockClient(
        "https://d", creds, wall_clock=lambda: 1, transport=_dock_answering(dock_key, honest)
    ) as c:
        sync = c.sync_time()
        assert sync.dock_time_us == 5 and len(sync.nonce) == 32 and sync.nonce != "0" * 32
    with (
        DockClient(
            "https://d", creds, wall_clock=lambda: 1, transport=_dock_answering(dock_key, replayed)
        ) as c,
        pytest.raises(DockUnavailable, match="not for this request"),
    ):
        c.sync_time()
