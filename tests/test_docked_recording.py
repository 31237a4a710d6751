"""Recording while docked: the shipper uploads finished segments in its own thread while
the camera keeps recording; no frame is lost, every segment reaches the dock once, and the
device deletes only what the dock receipted."""

from __future__ import annotations

from capture.clock import MonotonicClock
from capture.config import from_dict
from dock.client import DeviceCredentials, DockClient, enroll
from dock.enroll import issue_token
from dock.server import ServerThread, create_app, open_dock, wall_clock_us
from dock.shipper import ChainOutbox, Shipper, ShipperThread
from dock.tls import ensure_tls_files
from simulator.device import make_device
from tests.conftest import SMALL

S = 1_000_000


def test_uploads_while_recording_cost_no_frame(tmp_path):
    cfg = from_dict({**SMALL, "segments": {"seconds": 1.0}})
    dev = make_device(cfg, tmp_path / "device")
    dock = open_dock(tmp_path / "dock", clock=wall_clock_us)
    tls = ensure_tls_files(tmp_path / "dock", dock.key)  # over HTTPS, as a real dock
    server = ServerThread(create_app(dock), tls=tls).start()
    try:
        ident = dev.keys.identity
        token = issue_token(dock.store, wall_clock_us(), device_id=ident.device_id).token
        got = enroll(
            server.url,
            ident.device_id,
            ident,
            ident.public_key,
            token,
            wall_clock=wall_clock_us,
            expected_dock_key=dock.public_key,
        )
        creds = DeviceCredentials(ident.device_id, ident, got.dock_public_key)
        outbox = ChainOutbox(dev.storage.root)
        with DockClient(server.url, creds, wall_clock=wall_clock_us) as client:
            thread = ShipperThread(Shipper(outbox, client, MonotonicClock())).start()
            dev.button(down=True)
            dev.run_until(S)
            dev.button(down=False)
            for t in range(2, 12):  # ten seconds of recording, shipping as segments close
                dev.run_until(t * S)
                thread.wake()
            dev.shutdown()
            thread.stop()
            Shipper(outbox, client, MonotonicClock()).drain()  # what is left after the stop
        rec = dev.recorder.recordings[0]
        frames = [f for s in rec.segments for f in range(s.first_frame, s.last_frame + 1)]
        assert sum(s.frames for s in rec.segments) == len(frames)  # no frame lost
        assert frames == list(range(frames[0], frames[-1] + 1))
        assert len(rec.segments) >= 8
        held = dock.store.held_segments(ident.device_id)
        assert len(held) == len(rec.segments) + 1  # every manifest and the end record, once
        assert not list((dev.storage.root / "segments").glob("*.bwvseg"))
        receipts = list(outbox.receipts.glob("*.json"))
        assert len(receipts) == len(held)
    finally:
        server.stop()
        dock.store.close()
