"""The simulated dock visit: the camera goes into its dock after the raid.

A real dock runs on its own machine; here it is the same dock server on loopback, with its
store in ``dock_dir``. The simulated technician enrolls the device once (a one-time token,
the dock key pinned in the device's key folder: the TLS handshake and every answer are
checked against it), then the device's shipper sends its
finished segments, oldest first, and deletes each one only after the dock's signed receipt
for its exact hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from capture.clock import Clock, MonotonicClock
from crypto.durable import write_atomic
from crypto.evidence import EvidenceSink
from crypto.identity import load_dock_public_key
from dock.agency import pin_agency_key
from dock.client import DeviceCredentials, DockClient, TimeSync, enroll
from dock.clocksync import ClockKeeper, ClockPolicy, shipper_on_time
from dock.device_report import DrainingBattery, Reporter
from dock.enroll import issue_token
from dock.server import ServerThread, create_app, open_dock, wall_clock_us
from dock.shipper import ChainOutbox, Shipper
from dock.tls import ensure_tls_files
from simulator.device import SimDevice

DOCK_PUB = "dock.pub"


@dataclass
class DockVisit:
    url: str
    receipts: list[dict] = field(default_factory=list)
    shipped: int = 0
    problems: list[str] = field(default_factory=list)
    time_offset_us: int | None = None
    clock_warnings: list[str] = field(default_factory=list)  # corrections the device refused


@dataclass
class _DeviceClock:
    """The simulated device's capture clock, as a ``Clock``."""

    dev: SimDevice

    def now_us(self) -> int:
        return self.dev.now_us


def visit_dock(
    dev: SimDevice,
    dock_dir: Path,
    clock: Clock | None = None,
    *,
    tsa_ca_pem: bytes | None = None,
) -> DockVisit:
    """``tsa_ca_pem``: the TSA CA the device pinned (a clock step over 5 s needs it)."""
    assert dev.keys is not None, "the device must record evidence to ship it"
    dock_dir.mkdir(parents=True, exist_ok=True)
    # the dock knows the agency's key from the agency, not from the camera
    pin_agency_key(dock_dir, bytes(dev.keys.agency_private().public_key))
    if dev.keys.tpm_ca_certs:  # the simulated TPM maker's CA: the dock trusts it
        from dock.tpm_trust import save_tpm_cas

        save_tpm_cas(dock_dir, dev.keys.tpm_ca_certs)
    dock = open_dock(dock_dir, clock=wall_clock_us)
    tls = ensure_tls_files(dock_dir, dock.key)  # over HTTPS, as a real dock
    server = ServerThread(create_app(dock), tls=tls).start()
    try:
        visit = DockVisit(server.url)
        ident = dev.keys.identity
        pinned = dev.keys.device_pub_path.parent / DOCK_PUB
        if pinned.exists():
            dock_key = bytes(load_dock_public_key(pinned))
        else:  # first visit: the technician enrolls the device and pins the dock's key
            token = issue_token(dock.store, wall_clock_us(), device_id=ident.device_id).token
            got = enroll(
                server.url,
                ident.device_id,
                ident,
                ident.public_key,
                token,
                wall_clock=wall_clock_us,
                expected_dock_key=dock.public_key,
                attestor=dev.keys.attestor,
            )
            dock_key = got.dock_public_key
            write_atomic(pinned, dock_key.hex().encode() + b"\n")
        creds = DeviceCredentials(ident.device_id, ident, dock_key)
        outbox = ChainOutbox(dev.storage.root)
        assert isinstance(dev.sink, EvidenceSink)
        device_wall = lambda: dev.wall.wall_us(dev.now_us)  # noqa: E731 - the device's clock
        with DockClient(server.url, creds, wall_clock=device_wall) as client:
            keeper = ClockKeeper(
                dev.sink.chain,
                dev.wall,
                _DeviceClock(dev),
                ClockPolicy(tsa_ca_pem=tsa_ca_pem),
                warn=lambda msg: visit.clock_warnings.append(msg) if msg else None,
            )

            def on_time(sync: TimeSync) -> None:
                visit.time_offset_us = sync.offset_us
                shipper_on_time(keeper, client)(sync)

            # HTTP happens in real time, so the shipper's backoff does too
            # the twin's battery: full at power-on, draining on the device's clock
            battery = DrainingBattery(lambda: dev.now_us, full_at_us=0)
            shipper = Shipper(
                outbox,
                client,
                clock or MonotonicClock(),
                on_time=on_time,
                witnesses=_pinned(dev),
                reporter=Reporter(outbox, battery=battery),
            )
            for report in shipper.drain():
                if report.action == "shipped":
                    visit.shipped += 1
                elif report.action in ("failed", "refused"):
                    visit.problems.append(f"{report.action} {report.segment}: {report.detail}")
                    if report.action == "failed":
                        break
        for p in sorted(outbox.receipts.glob("*.json")):
            visit.receipts.append(json.loads(p.read_text()))
        return visit
    finally:
        server.stop()
        dock.store.close()


def _pinned(dev: SimDevice):
    """The witness keys the camera pinned (``keys/witnesses``): it deletes a segment only
    once a checkpoint they cosigned includes its record. None: it pinned none."""
    from dock.log_proof import load_policy

    assert dev.keys is not None
    path = dev.keys.device_pub_path.parent / "witnesses"
    return load_policy(path, 1) if path.is_file() else None
