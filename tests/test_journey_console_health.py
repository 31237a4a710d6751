"""Issue 14, point 5 and the console's serving: an operator's monitor reads /healthz (503 when
the dock cannot take footage) and Prometheus metrics counted from what the dock really did
(uploads receipted and refused, bytes, queue depth, disk); the console's own HTTPS certificate
(ECDSA P-256, which browsers speak) is made once, kept, renewed near its end, and an agency's
own pair is checked before use."""

from __future__ import annotations

import datetime
import os
import stat
from collections import namedtuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from capture.clock import VirtualClock
from console.core import open_console
from console.metrics import health, new_registry
from console.tls import ConsoleTlsError, ensure_console_tls, fingerprint
from dock.client import DockClient, DockRefused
from dock.protocol import segment_id_for
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes

Usage = namedtuple("Usage", "total used free")
GB = 1 << 30
FAST = ShipperConfig(chunk_bytes=8 << 10, jitter=0.0)


def ship(harness: DockHarness, dev: OutboxDevice) -> list[str]:
    client = DockClient(harness.url, dev.creds, wall_clock=wall_clock_us, timeout=5)
    clock = VirtualClock()
    shipper = Shipper(ChainOutbox(dev.root), client, clock, config=FAST)
    actions = []
    for _ in range(50):
        r = shipper.step()
        actions.append(r.action)
        if r.action == "idle":
            return actions
        if r.retry_at_us is not None:
            clock.set(max(clock.now_us(), r.retry_at_us))
    raise AssertionError(actions)


@pytest.fixture
def harness(tmp_path):
    h = DockHarness(tmp_path / "store")
    yield h
    h.close()


def scrape(console, disk) -> dict[str, float]:
    text = generate_latest(new_registry(console, lambda _p: disk)).decode()
    return {
        (s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_count_what_the_dock_received_refused_holds_and_waits_for(harness, tmp_path):
    good = OutboxDevice(tmp_path / "good" / "outbox", "cam-good")
    good.creds = harness.enroll(good)
    sizes = [30_000, 41_000]
    for i, n in enumerate(sizes):
        good.add_segment(segment_bytes(n, i))
    bad = OutboxDevice(tmp_path / "bad" / "outbox", "cam-bad")
    bad.creds = harness.enroll(bad)
    blob = segment_bytes(10_000, 9)
    rec = bad.add_segment(blob)
    lost = OutboxDevice(tmp_path / "lost" / "outbox", "cam-lost")
    lost.creds = harness.enroll(lost)
    harness.dock.store.revoke("cam-lost", "reported lost", "technician", wall_clock_us())

    assert ship(harness, good)[-1] == "idle"
    with harness.client(bad.creds) as c:  # bytes on the way that are not the signed ones
        sid = segment_id_for(rec.line)
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
        with pytest.raises(DockRefused, match="not the one the manifest signs"):
            c.append(sid, 0, bytes([blob[0] ^ 1]) + blob[1:])  # the last chunk completes it
    harness.dock.store.record_report(
        "cam-bad", {"queued_segments": 3, "queued_bytes": 123_456}, wall_clock_us()
    )
    console = open_console(harness.dock, harness.store_dir)
    m = scrape(console, Usage(100 * GB, 60 * GB, 40 * GB))

    assert m["bwv_dock_uploads_completed_total"] == 2
    assert m["bwv_dock_uploads_rejected_total"] == 1
    assert m["bwv_dock_verification_failures_total"] == 1
    assert m["bwv_dock_bytes_received_total"] == sum(sizes)
    assert m["bwv_dock_bytes_stored"] == sum(sizes)
    assert m["bwv_dock_segments_stored"] == 2
    assert m["bwv_dock_cameras"] == 2 and m["bwv_dock_cameras_revoked"] == 1
    assert m["bwv_dock_queue_depth_segments{where=cameras}"] == 3
    assert m["bwv_dock_queue_depth_bytes{where=cameras}"] == 123_456
    assert m["bwv_dock_queue_depth_segments{where=dock}"] == 0
    assert m["bwv_dock_disk_free_bytes"] == 40 * GB
    assert m["bwv_dock_disk_total_bytes"] == 100 * GB
    assert m["bwv_dock_log_size"] == harness.dock.store.log_size()
    assert m["bwv_dock_store_readable"] == 1


def test_metrics_read_only_new_custody_entries_on_each_scrape(harness, tmp_path):
    console = open_console(harness.dock, harness.store_dir)
    registry = new_registry(console, lambda _p: Usage(GB, 0, GB))
    first = generate_latest(registry).decode()
    assert "bwv_dock_uploads_completed_total 0.0" in first
    dev = OutboxDevice(tmp_path / "d" / "outbox", "cam-1")
    dev.creds = harness.enroll(dev)
    dev.add_segment(segment_bytes(5000, 1))
    ship(harness, dev)
    second = generate_latest(registry).decode()  # the same registry: counted once, not twice
    assert "bwv_dock_uploads_completed_total 1.0" in second
    assert "bwv_dock_uploads_completed_total 1.0" in generate_latest(registry).decode()


def test_two_consoles_keep_their_own_registries(harness):
    a = new_registry(open_console(harness.dock, harness.store_dir), lambda _p: Usage(GB, 0, GB))
    b = new_registry(open_console(harness.dock, harness.store_dir), lambda _p: Usage(2, 0, 1))
    assert "bwv_dock_disk_total_bytes 1.073741824e+09" in generate_latest(a).decode()
    assert "bwv_dock_disk_total_bytes 2.0" in generate_latest(b).decode()


def test_health_is_ok_low_full_or_unreadable(harness):
    console = open_console(harness.dock, harness.store_dir)
    ok = health(console, lambda _p: Usage(100 * GB, 50 * GB, 50 * GB))
    assert ok.ok and ok.store_readable and ok.problems == [] and ok.warnings == []
    assert ok.log_size == harness.dock.store.log_size()
    low = health(console, lambda _p: Usage(100 * GB, 95 * GB, 5 * GB))
    assert low.ok and "low" in low.warnings[0]
    full = health(console, lambda _p: Usage(100 * GB, 100 * GB - 1000, 1000))
    assert not full.ok and "full" in full.problems[0]

    def gone(_p):
        raise FileNotFoundError(2, "No such file or directory")

    assert "cannot be measured" in health(console, gone).problems[0]
    harness.dock.store.close()  # the index cannot be read any more
    broken = health(console, lambda _p: Usage(100 * GB, 50 * GB, 50 * GB))
    assert not broken.ok and not broken.store_readable
    assert "cannot be read" in broken.problems[0]


# --------------------------------------------------------------------------- certificate


def test_the_console_makes_a_p256_certificate_once_and_keeps_it(tmp_path):
    files = ensure_console_tls(tmp_path, ["192.168.7.20", "dock.local"])
    assert files.key == tmp_path / "console.key" and files.cert == tmp_path / "console.crt"
    assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.cert).st_mode) == 0o644
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "::1", "192.168.7.20"} <= names
    assert {"localhost", "dock.local"} <= set(san.get_values_for_type(x509.DNSName))
    before = files.cert.read_bytes(), files.key.read_bytes()
    again = ensure_console_tls(tmp_path, ["192.168.7.20"])  # a known name: the same pair
    assert (again.cert.read_bytes(), again.key.read_bytes()) == before
    assert len(fingerprint(files.cert).split(":")) == 32


def test_a_new_address_or_a_near_end_renews_the_certificate_not_the_key(tmp_path):
    files = ensure_console_tls(tmp_path, [])
    key_pem, cert_pem = files.key.read_bytes(), files.cert.read_bytes()
    ensure_console_tls(tmp_path, ["10.0.0.5"])
    assert files.key.read_bytes() == key_pem and files.cert.read_bytes() != cert_pem
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=380)
    cert_pem = files.cert.read_bytes()
    ensure_console_tls(tmp_path, ["10.0.0.5"], now=later)
    renewed = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert files.cert.read_bytes() != cert_pem and renewed.not_valid_after_utc > later


def test_a_key_readable_by_others_is_refused(tmp_path):
    files = ensure_console_tls(tmp_path, [])
    os.chmod(files.key, 0o644)
    with pytest.raises(ConsoleTlsError, match="readable by others"):
        ensure_console_tls(tmp_path, [])


def test_an_agency_pair_is_checked(tmp_path):
    mine = ensure_console_tls(tmp_path / "a", [])
    other = ensure_console_tls(tmp_path / "b", [])
    assert ensure_console_tls(tmp_path, given_cert=mine.cert, given_key=mine.key) == mine
    with pytest.raises(ConsoleTlsError, match="not for the key"):
        ensure_console_tls(tmp_path, given_cert=mine.cert, given_key=other.key)
    with pytest.raises(ConsoleTlsError, match="go together"):
        ensure_console_tls(tmp_path, given_cert=mine.cert)
    with pytest.raises(ConsoleTlsError, match="not a PEM certificate"):
        ensure_console_tls(tmp_path, given_cert=mine.key, given_key=mine.key)
