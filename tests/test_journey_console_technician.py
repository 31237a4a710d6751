"""Issue 14, in a real browser (Debian's Chromium driven by Playwright): a technician signs in
to the console, enrols a camera from the cameras page (the token shown as text and as a QR
code that decodes to the same token; a simulated camera enrols with it and pins the dock by
the fingerprint the page shows), and watches that camera's upload move on the uploads page,
its progress bar growing chunk by chunk, to its receipt. A camera whose upload the dock
refused stands out with the reason. With JavaScript off the cameras and uploads pages still
read. Screenshots for the README: docs/console-cameras.png, docs/console-camera-token.png,
docs/console-uploads.png.

The camera's chunks go one at a time when the test lets them (a gate), and the test waits
for the page to show each step: no sleeps."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from console.core import ConsoleConfig
from console.testing import ConsoleHarness, browser, sign_in
from dock.client import DockClient, DockRefused, enroll
from dock.device_report import FixedBattery, Reporter
from dock.protocol import segment_id_for
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.tls import fingerprint

ROOT = Path(__file__).resolve().parents[1]
CAMERAS_PNG = ROOT / "docs" / "console-cameras.png"
UPLOADS_PNG = ROOT / "docs" / "console-uploads.png"
TOKEN_PNG = ROOT / "docs" / "console-camera-token.png"
CHUNK = 40_000
SIZE = 10 * CHUNK
WAIT_MS = 20_000

PROGRESS_AT_LEAST = """n => {
  const p = document.querySelector('#uploads-live .upload progress');
  return p !== null && Number(p.value) >= n;
}"""


class GatedClient(DockClient):
    """A camera's client that sends each chunk only when the test lets it (``gate``)."""

    def __init__(self, *args, gate: threading.Semaphore, **kw) -> None:
        super().__init__(*args, **kw)
        self.gate = gate

    def append(self, segment_id, offset, chunk, *rest):
        assert self.gate.acquire(timeout=60), "the test never let the next chunk go"
        return super().append(segment_id, offset, chunk, *rest)


@pytest.fixture
def site(tmp_path):
    dock = DockHarness(tmp_path / "store")
    h = ConsoleHarness(
        tmp_path / "store", dock=dock.dock, config=ConsoleConfig(secure_cookies=False)
    )
    password = h.add_account("tess", "technician")
    server = h.serve().start()
    yield dock, h, server, password
    server.stop(force=True)
    dock.close()
    h.console.db.close()


def decode_qr(png: bytes) -> str:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(img)
    return text


def enrol_from_the_page(page, url: str, device_id: str) -> tuple[str, str]:
    """The technician's form; the token (as text, checked against the QR code) and the dock
    fingerprint the page shows."""
    page.goto(f"{url}/cameras")
    page.fill("#device_id", device_id)
    page.click("#enrol")
    page.wait_for_selector("#token")
    token = page.text_content("#token").strip()
    assert token.startswith("bwv-enroll-")
    assert decode_qr(page.locator("svg.qr").screenshot()) == token
    return token, page.text_content("#dock-fingerprint").strip()


def failing_camera(dock: DockHarness, root: Path) -> None:
    """A camera whose segment arrives altered on the way: the dock refuses it."""
    dev = OutboxDevice(root / "outbox", "bwv-0043")
    creds = dock.enroll(dev)
    blob = segment_bytes(30_000, 5)
    rec = dev.add_segment(blob)
    sid = segment_id_for(rec.line)
    with dock.client(creds) as c:
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        with pytest.raises(DockRefused):  # the last chunk completes it: refused
            c.append(sid, 0, bytes([blob[0] ^ 1]) + blob[1:])


def test_a_technician_enrols_a_camera_and_watches_its_upload_to_the_receipt(site, tmp_path):
    dock, h, server, password = site
    failing_camera(dock, tmp_path / "cam-43")
    with browser() as page:
        sign_in(page, server.url, "tess", password)
        token, shown_fp = enrol_from_the_page(page, server.url, "bwv-0042")
        assert shown_fp == fingerprint(dock.public_key)
        page.screenshot(path=str(TOKEN_PNG), full_page=True)

        # the camera enrols with what the page showed, pinning the dock by that fingerprint
        cam = OutboxDevice(tmp_path / "cam-42" / "outbox", "bwv-0042")
        got = enroll(
            dock.url, cam.device_id, cam.identity, cam.public_key, token,
            wall_clock=wall_clock_us, dock_fingerprint=shown_fp,
        )  # fmt: skip
        issued = h.custody("token_issued")[-1]
        assert issued.actor == "account:tess" and issued.device_id == "bwv-0042"
        assert h.custody("enrolled")[-1].device_id == "bwv-0042"

        gate = threading.Semaphore(0)
        client = GatedClient(
            dock.url, cam.credentials(got.dock_public_key), wall_clock=wall_clock_us, gate=gate
        )
        outbox = ChainOutbox(cam.root)
        shipper = Shipper(
            outbox,
            client,
            _Clock(),
            config=ShipperConfig(chunk_bytes=CHUNK, jitter=0.0),
            reporter=Reporter(outbox, firmware_version="1.4.2", battery=FixedBattery(76)),
        )
        rec = cam.add_segment(segment_bytes(SIZE, 42))
        sid = segment_id_for(rec.line)
        done: list = []
        ship = threading.Thread(target=lambda: done.extend(shipper.drain()), daemon=True)
        ship.start()

        page.goto(f"{server.url}/uploads")
        page.wait_for_selector("#live-status:has-text('Live')")
        seen = []
        for release, want in ((1, CHUNK), (3, 4 * CHUNK)):
            for _ in range(release):
                gate.release()
            page.wait_for_function(PROGRESS_AT_LEAST, arg=want, timeout=WAIT_MS)
            seen.append(int(page.get_attribute("#uploads-live .upload progress", "value")))
        assert seen[0] < seen[1] < SIZE  # the bar moved, live, without a reload
        upload = page.locator(f'#uploads-live .upload[data-segment="{sid}"]')
        assert "of 400.0 kB" in upload.inner_text()
        failing = page.locator('#uploads-live section[data-device="bwv-0043"]')
        assert failing.get_attribute("data-state") == "failing"
        assert "verification" in failing.locator(".reason").inner_text()
        first = page.locator("#uploads-live section.camera").first
        assert first.get_attribute("data-device") == "bwv-0043"  # what needs a person first
        page.screenshot(path=str(UPLOADS_PNG), full_page=True)

        for _ in range(SIZE // CHUNK):
            gate.release()
        page.wait_for_selector(f'#uploads-live tr[data-segment="{sid}"]', timeout=WAIT_MS)
        ship.join(timeout=30)
        assert [r.action for r in done][:1] == ["shipped"]
        assert page.locator(f'#uploads-live .upload[data-segment="{sid}"]').count() == 0
        assert h.dock.store.held_segments("bwv-0042")[0].segment_id == sid

        # signed out in another tab: the live page stops asking and says so
        other = page.context.new_page()
        other.goto(f"{server.url}/cameras")
        row = other.locator('#cameras tr[data-device="bwv-0042"]')
        assert cam.identity.key_id in row.inner_text()
        assert "1.4.2" in row.inner_text() and "76 %" in row.inner_text()
        other.screenshot(path=str(CAMERAS_PNG), full_page=True)
        other.click("form.who button[type=submit]")
        page.wait_for_selector("#live-status:has-text('Signed out')", timeout=WAIT_MS)
    client.close()


def test_with_javascript_off_the_cameras_and_uploads_pages_still_read(site, tmp_path):
    dock, h, server, password = site
    cam = OutboxDevice(tmp_path / "cam" / "outbox", "bwv-0050")
    creds = dock.enroll(cam)
    cam.add_segment(segment_bytes(20_000, 7))
    with dock.client(creds) as client:
        Shipper(ChainOutbox(cam.root), client, _Clock()).drain()
    with browser(javascript=False) as page:
        sign_in(page, server.url, "tess", password)
        page.goto(f"{server.url}/cameras")
        row = page.locator('#cameras tr[data-device="bwv-0050"]')
        assert cam.identity.key_id in row.inner_text()
        page.goto(f"{server.url}/uploads")
        status = page.text_content("#live-status")
        assert "reload the page" in status  # no script: it says how to see the latest
        received = page.locator('#uploads-live section[data-device="bwv-0050"] tr[data-segment]')
        assert received.count() == 1 and "20.0 kB" in received.inner_text()
        token, _ = enrol_from_the_page(page, server.url, "bwv-0051")  # forms need no script
        assert h.custody("token_issued")[-1].device_id == "bwv-0051"


class _Clock:
    """The camera's monotonic clock for the shipper's backoff (it never waits here)."""

    def now_us(self) -> int:
        return wall_clock_us()
