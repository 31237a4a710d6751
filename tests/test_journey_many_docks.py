"""Two docks, one agency store: two `bwv dock serve` processes share one Ceph bucket (S3
Object Lock) and one PostgreSQL index while 16 simulated cameras ship to them at once, and
either dock is killed with SIGKILL at random (seeded) moments and started again. Afterwards
nothing a camera recorded is lost, nothing is held twice, and the log is one history that
the witness accepts: every checkpoint it cosigned is a prefix of the store's leaves."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from capture.clock import VirtualClock
from dock.backends import open_store
from dock.checkpoints import origin_for
from dock.client import DockClient, enroll
from dock.custody import verify_custody_log
from dock.enroll import issue_token
from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
from dock.leaves import custody_leaf_data
from dock.log_proof import dock_note_vkey
from dock.outbox import ChainOutbox
from dock.protocol import key_id
from dock.shipper import Shipper, ShipperConfig
from dock.store import chain_report
from dock.testing import OutboxDevice, segment_bytes
from dock.tls import pinned_to
from tests.servers import free_port
from tlog.checkpoint import Checkpoint
from tlog.merkle import root_from_hashes
from tlog.note import NoteVerifier, open_note
from witness.client import WitnessClient
from witness.core import Witness
from witness.server import WitnessServerThread
from witness.state import add_log, keygen

ROOT = Path(__file__).resolve().parent.parent
CAMERAS = 16
SEGMENTS = 5  # per camera, in two recordings
KILLS = 6
CHUNK = 8 << 10  # several chunks a segment: a dock can die, or be left, mid-upload


def _wall() -> int:
    return time.time_ns() // 1000


class DockProcess:
    """One `bwv dock serve --store s3://... --index ... --state DIR`, killed and restarted."""

    def __init__(self, state: Path, store: str, index: str, env: dict[str, str], witness: str):
        self.state, self.env, self.port = state, env, free_port()
        self.cmd = [
            sys.executable, "-m", "bwv.cli", "dock", "serve", "--store", store,
            "--index", index, "--state", str(state), "--listen", f"127.0.0.1:{self.port}",
            "--admin-listen", f"127.0.0.1:{free_port()}", "--console-listen", "off",
            "--witness", witness,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"https://127.0.0.1:{self.port}"

    def start(self, pub: bytes) -> None:
        log = open(self.state.parent / f"{self.state.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:  # ready when it answers (it says "listening" before it listens)
            try:
                httpx.get(self.url + "/v1/dock", timeout=2, verify=pinned_to(pub))
                return
            except (httpx.TransportError, OSError):
                assert self.proc.poll() is None, self._tail()
                assert time.monotonic() < deadline, "the dock did not start"
                time.sleep(0.05)

    def _tail(self) -> str:
        text = (self.state.parent / f"{self.state.name}.log").read_text(errors="replace")
        return "the dock exited: " + text[-2000:]

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


class Camera:
    """A simulated camera that records segments and ships them to whichever dock answers."""

    def __init__(self, root: Path, n: int, rng: random.Random) -> None:
        self.n = n
        self.dev = OutboxDevice(root / f"cam{n:02d}" / "outbox", f"fleet-{n:02d}")
        self.rng = random.Random(rng.random())
        self.recorded: list[str] = []  # stored sha256 of each segment, as the dock keys it
        self.clock = VirtualClock()

    def record(self, i: int) -> None:
        rec = self.dev.add_segment(
            segment_bytes(self.rng.randint(20_000, 60_000), seed=self.n * 100 + i),
            "r1" if i < 3 else "r2",
        )
        self.recorded.append(rec.sha256)

    def ship_once(self, url: str, pub: bytes) -> str:
        client = DockClient(url, self.dev.credentials(pub), wall_clock=_wall, timeout=10)
        sh = Shipper(
            ChainOutbox(self.dev.root),
            client,
            self.clock,
            config=ShipperConfig(chunk_bytes=CHUNK, jitter=0.0),
        )
        try:
            for _ in range(40):
                r = sh.step()
                if r.retry_at_us is not None and r.retry_at_us > self.clock.now_us():
                    self.clock.set(r.retry_at_us)  # the camera's own backoff, on its clock
                if r.action in ("idle", "failed", "undocked"):
                    return r.action
            return "busy"
        finally:
            client.close()


@pytest.fixture
def agency_store(s3_service: Any, pg_url: str, tmp_path: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BWV_S3_ENDPOINT": s3_service.endpoint,
        "AWS_ACCESS_KEY_ID": s3_service.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_service.secret_key,
        "AWS_DEFAULT_REGION": s3_service.region,
    }
    bucket = f"bwv-fleet-{random.Random(os.getpid()).getrandbits(40):010x}-{time.time_ns() % 10**6}"
    a, b = tmp_path / "dock-a", tmp_path / "dock-b"
    a.mkdir(mode=0o700)
    b.mkdir(mode=0o700)
    key = load_or_create_signing_key(a / DOCK_KEY_FILE)  # the store's key, copied to each dock
    shutil.copy2(a / DOCK_KEY_FILE, b / DOCK_KEY_FILE)
    return {"env": env, "store": f"s3://{bucket}", "index": pg_url, "a": a, "b": b, "key": key}


def test_two_docks_sixteen_cameras_kill_9_nothing_lost_nothing_twice_one_history(
    agency_store: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(20261202)
    key, env = agency_store["key"], agency_store["env"]
    pub = bytes(key.verify_key)
    origin = origin_for(key_id(pub))
    wstate = tmp_path / "witness"
    signer = keygen(wstate, "watchdog.test/fleet")
    add_log(wstate, origin, dock_note_vkey(pub))
    with WitnessServerThread(Witness(wstate)) as witness:
        wit = f"{witness.url}={signer.vkey}"
        docks = [
            DockProcess(agency_store[n], agency_store["store"], agency_store["index"], env, wit)
            for n in ("a", "b")
        ]
        try:
            for d in docks:
                d.start(pub)
            cams = [Camera(tmp_path, n, rng) for n in range(CAMERAS)]
            _enrol(cams, agency_store, docks[0].url, pub)
            _ship_under_kills(cams, docks, pub, rng)
            for cam in cams:  # both docks up: every camera empties its outbox
                assert _ship_all(cam, docks, pub), f"{cam.dev.device_id} could not finish"
            _check_store(cams, agency_store)
            _check_witness(witness.url, origin, pub, agency_store)
        finally:
            for d in docks:
                d.kill()


def _enrol(cams: list[Camera], agency_store: dict[str, Any], url: str, pub: bytes) -> None:
    store = open_store(agency_store["a"], agency_store["key"], environ=agency_store["env"])
    try:
        tokens = [issue_token(store, _wall(), device_id=c.dev.device_id).token for c in cams]
    finally:
        store.close()
    for cam, token in zip(cams, tokens, strict=True):
        d = cam.dev
        enroll(url, d.device_id, d.identity, d.public_key, token, wall_clock=_wall,
               expected_dock_key=pub)  # fmt: skip


def _ship_under_kills(
    cams: list[Camera], docks: list[DockProcess], pub: bytes, rng: random.Random
) -> None:
    """Every camera records its segments and ships them to a dock of its choosing, while a
    killer stops one dock or the other at seeded random moments and starts it again."""
    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        for _ in range(KILLS):
            if stop.wait(rng.uniform(0.3, 1.5)):
                return
            victim = docks[rng.randrange(2)]
            victim.kill()
            kills.append(1)
            victim.start(pub)

    def camera(cam: Camera) -> None:
        for i in range(SEGMENTS):
            cam.record(i)
            cam.ship_once(docks[cam.rng.randrange(2)].url, pub)

    k = threading.Thread(target=killer)
    k.start()
    workers = [threading.Thread(target=camera, args=(c,)) for c in cams]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    k.join()  # the killer makes all its kills (each dock is restarted before the next)
    stop.set()
    assert len(kills) == KILLS


def _ship_all(cam: Camera, docks: list[DockProcess], pub: bytes) -> bool:
    return any(cam.ship_once(docks[attempt % 2].url, pub) == "idle" for attempt in range(20))


def _check_store(cams: list[Camera], agency_store: dict[str, Any]) -> None:
    store = open_store(agency_store["a"], agency_store["key"], environ=agency_store["env"])
    try:
        entries = store.custody_log(limit=1_000_000)
        leaves = store.log_leaves(-1, 1_000_000)
        for cam in cams:
            held = store.held_segments(cam.dev.device_id)
            report = chain_report(held)
            # nothing lost: every record the camera made is held, in one unbroken chain
            assert report.gaps == [] and report.breaks == [], report
            assert report.held == len(cam.dev.records)
            held_ids = {h.segment_id for h in held}
            assert set(cam.recorded) <= held_ids
            assert not list((cam.dev.root / "segments").glob("*"))  # the camera let them go
            # nothing twice: one `received` entry per record
            got = Counter(
                e.segment_id for e in entries
                if e.action == "received" and e.device_id == cam.dev.device_id
            )  # fmt: skip
            assert set(got.values()) == {1} and set(got) == held_ids
        # one history: every custody entry chained and signed, each a leaf, in order
        assert verify_custody_log(entries, bytes(agency_store["key"].verify_key)) == []
        assert [x.index for x in leaves] == list(range(len(leaves)))
        assert [x.data for x in leaves if x.kind == "custody"] == [
            custody_leaf_data(e) for e in entries
        ]
        agency_store["leaf_hashes"] = [x.hash for x in leaves]
    finally:
        store.close()


def _check_witness(url: str, origin: str, pub: bytes, agency_store: dict[str, Any]) -> None:
    """The witness's latest cosigned checkpoint names a prefix of the store's leaves (one
    history: a fork would have a different root at that size), and it reaches the end."""
    hashes = agency_store["leaf_hashes"]
    deadline = time.monotonic() + 60
    while True:  # the docks' background sync brings the witness up to the last leaf
        with WitnessClient(url) as client:
            note = client.latest(origin)
        assert note is not None, "the witness holds no checkpoint of the store's log"
        text, _ = open_note(note, [NoteVerifier(origin, pub)])
        cp = Checkpoint.parse(text)
        assert cp.size <= len(hashes)
        assert cp.root == root_from_hashes(hashes[: cp.size]), "a fork: another history"
        if cp.size == len(hashes):
            return
        assert time.monotonic() < deadline, f"the witness stays at {cp.size} of {len(hashes)}"
        time.sleep(0.2)
