"""Helpers for tests, benchmarks and the simulator: a device outbox, a fault-injecting proxy.

- ``OutboxDevice``: a device identity and its chain (crypto/manifest.py) writing signed
  manifests and stand-in stored blobs into an outbox, as the device's evidence sink does.
- ``FaultProxy``: a TCP proxy on loopback that cuts chosen connections after a chosen number
  of bytes in either direction (a connection dropped mid-request or mid-answer), and can run
  a callback (restart the dock) when a chosen connection opens.
- ``DockHarness``: a real dock on loopback; ``witnessed_dock``: one whose transparency log a
  real witness cosigns and a real RFC 3161 TSA time-stamps (off by default elsewhere).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from crypto.identity import DeviceIdentity
from crypto.manifest import Chain, end_fields, manifest_fields
from crypto.records import SignedRecord
from crypto.seal import agency_key_id
from crypto.testing import seed
from dock.agency import pin_agency_key
from dock.checkpoints import LogConfig
from dock.client import DeviceCredentials, DockClient, enroll
from dock.enroll import issue_token
from dock.fake_segments import declared_digest as declared_digest
from dock.fake_segments import segment_bytes as segment_bytes
from dock.fake_segments import stored_parts
from dock.server import (
    DockConfig,
    ServerThread,
    create_admin_app,
    create_app,
    open_dock,
    wall_clock_us,
)
from dock.tls import ensure_tls_files, pinned_to

# the agency key id OutboxDevice's manifests name: of crypto.testing.agency_key()'s public key
TEST_AGENCY_KEY_ID = agency_key_id(PrivateKey(seed("agency")).public_key)


class OutboxDevice:
    """Writes what the device's outbox holds: signed chain records and stored blobs."""

    def __init__(
        self,
        root: Path,
        device_id: str,
        seed: bytes | None = None,
        agency_key_id: str = TEST_AGENCY_KEY_ID,
    ) -> None:
        self.root = Path(root)
        self.agency_key_id = agency_key_id  # what its manifests say the blobs are sealed to
        self.root.mkdir(parents=True, exist_ok=True)
        key = SigningKey(seed) if seed else SigningKey.generate()
        self.identity = DeviceIdentity(device_id, key)
        self.chain = Chain(
            self.root / "chain",
            self.root.parent / f"{device_id}.chain-state",
            self.identity,
            self.identity.public_key,
        )
        self.records: list[SignedRecord] = []

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    def credentials(self, dock_public_key: bytes) -> DeviceCredentials:
        return DeviceCredentials(self.device_id, self.identity, dock_public_key)

    def add_segment(
        self, stored: bytes, recording_id: str = "rec1", segment_index: int | None = None
    ) -> SignedRecord:
        """A finished segment: ``stored`` stands for the encrypted file. The dock never
        decrypts, so any bytes shaped as a stored file do (``segment_bytes``)."""
        if segment_index is None:
            segment_index = sum(
                1
                for r in self.records
                if r.type == "manifest" and r.record["recording_id"] == recording_id
            )
        name = f"{recording_id}_{segment_index:04d}.bwvseg"
        (self.root / "segments").mkdir(exist_ok=True)
        (self.root / "segments" / name).write_bytes(stored)
        rec, _ = self.chain.append(
            "manifest",
            manifest_fields(
                firmware_version="test",
                recording_id=recording_id,
                segment_index=segment_index,
                start_us=0,
                end_us=1,
                wall_start_us=0,
                wall_end_us=1,
                wall_quality="unsynced",
                trigger={},
                file=name,
                agency_key_id=self.agency_key_id,
                **stored_parts(stored),
                recovered=False,
                unsigned_tail=None,
            ),
        )
        self.records.append(rec)
        return rec

    def end_recording(self, recording_id: str = "rec1") -> SignedRecord:
        count = sum(
            1
            for r in self.records
            if r.type == "manifest" and r.record["recording_id"] == recording_id
        )
        rec, _ = self.chain.append(
            "end",
            end_fields(
                firmware_version="test",
                recording_id=recording_id,
                reason="stopped",
                end_us=1,
                segment_count=count,
                recovered=False,
            ),
        )
        self.records.append(rec)
        return rec


@dataclass
class Fault:
    """Cut the connection carrying byte number ``at_byte`` of all the bytes that go
    ``direction`` through the proxy ("up": device → dock, "down": dock → device), just
    before that byte; with ``restart``, restart the dock (``on_restart``) right after."""

    direction: str
    at_byte: int
    restart: bool = False


@dataclass
class FaultProxy:
    """A loopback TCP proxy to ``upstream`` that injects faults; use as a context manager."""

    upstream: tuple[str, int]
    faults: list[Fault] = field(default_factory=list)
    on_restart: Callable[[], None] | None = None
    connections: int = 0
    cuts: int = 0
    restarts: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._passed = {"up": 0, "down": 0}
        self._pending = {
            d: sorted((f for f in self.faults if f.direction == d), key=lambda f: f.at_byte)
            for d in ("up", "down")
        }

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"  # the dock's TLS passes through

    def __enter__(self) -> FaultProxy:
        t = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for pair in list(self._pairs):
            pair.close()
        for t in list(self._threads):
            t.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, server)
            self._pairs.append(pair)
            for src, dst, direction in ((client, server, "up"), (server, client, "down")):
                t = threading.Thread(
                    target=self._pump, args=(pair, src, dst, direction), daemon=True
                )
                t.start()
                self._threads.append(t)

    def _budget(self, direction: str) -> tuple[int, Fault | None]:
        """Bytes that may pass before the next fault in ``direction`` (and that fault)."""
        with self._lock:
            pending = self._pending[direction]
            if not pending:
                return 65536, None
            return min(65536, pending[0].at_byte - self._passed[direction]), pending[0]

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                budget, fault = self._budget(direction)
                if fault is not None and budget <= 0:
                    with self._lock:
                        self._pending[direction].remove(fault)
                        self.cuts += 1
                    pair.close()
                    if fault.restart and self.on_restart is not None:
                        self.restarts += 1
                        self.on_restart()
                    return
                data = src.recv(budget)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    pair.half_done()
                    return
                dst.sendall(data)
                with self._lock:
                    self._passed[direction] += len(data)
        except OSError:
            pair.close()


class _Pair:
    """The two sockets of one proxied connection."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.a, self.b = a, b
        self.closed = False
        self.done = 0
        self.lock = threading.Lock()

    def half_done(self) -> None:
        with self.lock:
            self.done += 1
            both = self.done == 2
        if both:
            self.close()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.a, self.b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class DockHarness:
    """A dock on a store directory, served on loopback as a real one is: the cameras' side
    over HTTPS (``url``, its own certificate; ``verify`` pins its key) and the admin side
    apart (``admin_url``, plain HTTP on loopback). ``restart`` reopens it from disk on the
    same ports (a dock restarted mid-upload)."""

    def __init__(
        self,
        store_dir: Path,
        *,
        clock: Callable[[], int] | None = None,
        config: DockConfig | None = None,
        agency_public_key: bytes | None = None,
        log_config: LogConfig | None = None,
        witness_client: Callable[[str], Any] | None = None,
    ) -> None:
        """``log_config``: the witnesses and TSA the dock's log asks (default: those kept in
        the store, none for a new one); ``witness_client(url)``: how it reaches them
        (default: over HTTP, witness.client)."""
        self.store_dir = Path(store_dir)
        if agency_public_key is not None:  # as `bwv dock serve --agency-pub` pins it
            self.store_dir.mkdir(parents=True, exist_ok=True)
            pin_agency_key(self.store_dir, agency_public_key)
        self.clock = clock or wall_clock_us
        self.config = config
        self.log_config = log_config
        self.witness_client = witness_client
        self._restarting = threading.Lock()
        self._open()

    def _open(self, port: int = 0, admin_port: int = 0) -> None:
        self.dock = open_dock(
            self.store_dir,
            clock=self.clock,
            config=self.config,
            log_config=self.log_config,
            witness_client=self.witness_client,
        )
        tls = ensure_tls_files(self.store_dir, self.dock.key)
        self.cert_path = tls.cert  # for tools that take a CA file (requests' verify=)
        self.server = ServerThread(create_app(self.dock), port=port, tls=tls).start()
        self.admin = ServerThread(create_admin_app(self.dock), port=admin_port).start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_url(self) -> str:
        return self.admin.url

    @property
    def public_key(self) -> bytes:
        return self.dock.public_key

    @property
    def verify(self) -> ssl.SSLContext:
        """For ``httpx``'s ``verify=``: the dock's key pinned (TLS 1.3)."""
        return pinned_to(self.public_key)

    def http(self, **kw: Any) -> httpx.Client:
        """A plain httpx client for the cameras' side (the dock's key pinned, no signing)."""
        return httpx.Client(base_url=self.url, verify=self.verify, **kw)

    def raw_connection(self, timeout: float = 5.0) -> ssl.SSLSocket:
        """A raw connection to the cameras' side, its TLS handshake done (the dock's key
        pinned), for tests that write HTTP by hand. The dock's HTTP protocol (and its wall,
        dock/wall.py) sees a connection only once the handshake is done."""
        sock = socket.create_connection((self.server.host, self.server.port), timeout=timeout)
        try:
            return self.verify.wrap_socket(sock, server_hostname="localhost")
        except BaseException:
            sock.close()
            raise

    def restart(self) -> None:
        with self._restarting:
            port, admin_port = self.server.port, self.admin.port
            self._stop()
            self._open(port, admin_port)

    def _stop(self) -> None:
        self.server.stop(force=True)
        self.admin.stop(force=True)
        if self.dock.translog is not None:
            self.dock.translog.close()
        self.dock.store.close()

    def close(self) -> None:
        self._stop()

    def token(self, device_id: str) -> str:
        return issue_token(self.dock.store, self.clock(), device_id=device_id).token

    def enroll(self, device: OutboxDevice) -> DeviceCredentials:
        got = enroll(
            self.url,
            device.device_id,
            device.identity,
            device.public_key,
            self.token(device.device_id),
            wall_clock=wall_clock_us,
            expected_dock_key=self.public_key,
        )
        return device.credentials(got.dock_public_key)

    def client(
        self, creds: DeviceCredentials, url: str | None = None, timeout: float = 10.0
    ) -> DockClient:
        return DockClient(url or self.url, creds, wall_clock=wall_clock_us, timeout=timeout)


@dataclass(frozen=True)
class Vouchers:
    """Who vouches for a ``witnessed_dock``'s log: a real witness and a real TSA on loopback."""

    witness_url: str
    witness_vkey: str  # what a camera pins (bwv provision --witness-key)
    witness_state: Path
    tsa_url: str | None
    tsa_ca_pem: bytes | None
    origin: str  # the dock log's origin


@contextlib.contextmanager
def witnessed_dock(
    root: Path, *, tsa: bool = True, witness_name: str = "watchdog.test/w1", **kw: Any
) -> Iterator[tuple[DockHarness, Vouchers]]:
    """A ``DockHarness`` on ``root/dock`` whose log is cosigned by bwv's own witness
    (``root/witness``, served on loopback) and, with ``tsa``, time-stamped by bwv's own RFC
    3161 TSA (``root/tsa``); both stop with the block."""
    from dock.checkpoints import LogConfig, WitnessConfig, origin_for
    from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
    from dock.log_proof import dock_note_vkey
    from dock.protocol import key_id
    from tsa.testing import running_tsa
    from witness.core import Witness
    from witness.server import WitnessServerThread
    from witness.state import add_log, keygen

    root = Path(root)
    store = root / "dock"
    store.mkdir(parents=True, exist_ok=True)
    pub = bytes(load_or_create_signing_key(store / DOCK_KEY_FILE).verify_key)
    origin = origin_for(key_id(pub))
    wstate = root / "witness"
    signer = keygen(wstate, witness_name)
    add_log(wstate, origin, dock_note_vkey(pub))
    with contextlib.ExitStack() as stack:
        tsa_url, ca = stack.enter_context(running_tsa(root)) if tsa else (None, None)
        served = stack.enter_context(WitnessServerThread(Witness(wstate)))
        config = LogConfig((WitnessConfig(served.url, signer.vkey),), tsa_url, ca)
        harness = DockHarness(store, log_config=config, **kw)
        stack.callback(harness.close)
        yield harness, Vouchers(served.url, signer.vkey, wstate, tsa_url, ca, origin)
