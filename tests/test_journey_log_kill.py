"""`bwv dock serve` killed with SIGKILL at random moments (seeded) while a camera uploads to
it: after every restart the dock's log still holds every leaf a receipt named, in a checkpoint
consistent with every checkpoint issued before (no fork), and the store's records and custody
entries are exactly the log's leaves."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from capture.clock import VirtualClock
from dock.checkpoints import checkpoint_at, checkpoint_sizes, log_dir, origin_for
from dock.client import DockClient, enroll
from dock.enroll import issue_token
from dock.holdings import open_store
from dock.leaves import RECORD_DOMAIN, custody_leaf_data
from dock.outbox import ChainOutbox
from dock.protocol import key_id
from dock.receipts import SignedReceipt
from dock.shipper import Shipper, ShipperConfig
from dock.testing import OutboxDevice, segment_bytes
from dock.tls import pinned_to
from tlog.checkpoint import Checkpoint
from tlog.merkle import consistency_proof, verify_consistency, verify_inclusion
from tlog.note import NoteVerifier, open_note
from tlog.store import LogStore

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(store: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "bwv.cli", "dock", "serve", "--store", str(store)]
    proc = subprocess.Popen(
        [*cmd, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # ready when it answers (it says "listening" before it listens)
        try:
            pub = bytes.fromhex((store / "dock.pub").read_text().strip())
            httpx.get(url + "/v1/dock", timeout=2, verify=pinned_to(pub))
            return proc, url
        except (httpx.TransportError, OSError, ValueError):
            assert proc.poll() is None and time.monotonic() < deadline, "the dock did not start"
            time.sleep(0.05)


def _wall() -> int:
    return time.time_ns() // 1000


class Seen:
    """Every checkpoint anyone was shown (sizes → roots), and the receipts kept."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.roots: dict[int, bytes] = {}
        self.pub = bytes.fromhex((store / "dock.pub").read_text().strip())
        self.origin = origin_for(key_id(self.pub))

    def note(self, note: bytes) -> Checkpoint:
        text, _ = open_note(note, [NoteVerifier(self.origin, self.pub)])
        cp = Checkpoint.parse(text)
        assert self.roots.setdefault(cp.size, cp.root) == cp.root, f"two roots at {cp.size}"
        return cp

    def from_disk(self) -> None:
        for size in checkpoint_sizes(self.store):
            got = checkpoint_at(self.store, size)
            assert got is not None
            self.note(got.note)


def check_log(seen: Seen, receipts: list[SignedReceipt], lines: dict[str, bytes]) -> None:
    """With the dock down: the tree, the store and every checkpoint seen agree."""
    s = open_store(seen.store)
    try:
        leaves = s.log_leaves(-1, 1_000_000)
        entries = s.custody_log(limit=1_000_000)
        held = {h.segment_id for d in s.list_devices() for h in s.held_segments(d.device_id)}
    finally:
        s.close()
    hashes = [x.hash for x in leaves]
    assert [x.index for x in leaves] == list(range(len(leaves)))
    # the store's records and custody entries are exactly the log's leaves
    assert [x.data for x in leaves if x.kind == "custody"] == [
        custody_leaf_data(e) for e in entries
    ]
    assert {x.ref.split("/")[1] for x in leaves if x.kind == "record"} == held
    # the tree on disk is a prefix of the store's leaves (the dock catches it up at start)
    tree = LogStore(log_dir(seen.store) / "tree", readonly=True)
    assert [tree.leaf_hash(i) for i in range(tree.size)] == hashes[: tree.size]
    tree.close()
    # no receipt names a leaf the log lost; each proof holds in its checkpoint
    for r in receipts:
        i = r.receipt.leaf_index
        assert leaves[i].data == RECORD_DOMAIN + lines[r.receipt.segment_id]
        if r.proof is not None:
            cp = seen.note(r.proof["checkpoint"].encode())
            path = [base64.b64decode(h) for h in r.proof["inclusion"]]
            assert verify_inclusion(hashes[i], i, cp.size, path, cp.root)
    # never a fork: every checkpoint is a prefix of this history, consistent with each other
    seen.from_disk()
    sizes = sorted(seen.roots)
    assert not sizes or sizes[-1] <= len(hashes)
    for old, new in zip(sizes, sizes[1:], strict=False):
        proof = consistency_proof(old, new, hashes)
        assert verify_consistency(old, new, seen.roots[old], seen.roots[new], proof)


def test_kill_9_never_loses_a_receipted_leaf_nor_forks_the_log(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    store = tmp_path / "dock"
    proc, url = start(store)
    dev = OutboxDevice(tmp_path / "cam" / "outbox", "cam-kill")
    s = open_store(store)
    token = issue_token(s, _wall(), device_id=dev.device_id).token
    s.close()
    pub = bytes.fromhex((store / "dock.pub").read_text().strip())
    enroll(
        url,
        dev.device_id,
        dev.identity,
        dev.public_key,
        token,
        wall_clock=_wall,
        expected_dock_key=pub,
    )
    dev.creds = dev.credentials(pub)
    seen = Seen(store)
    lines: dict[str, bytes] = {}
    clock = VirtualClock()
    kills = 0
    try:
        for rnd in range(6):
            client = DockClient(url, dev.creds, wall_clock=_wall, timeout=5)
            sh = Shipper(ChainOutbox(dev.root), client, clock, config=ShipperConfig(jitter=0.0))
            fired = threading.Event()

            def kill(p: subprocess.Popen[str] = proc, fired: threading.Event = fired) -> None:
                p.kill()
                fired.set()

            timer = threading.Timer(rng.uniform(0.05, 0.6), kill)
            timer.start()
            for i in range(60):  # record and ship until the dock is killed under it
                rec = dev.add_segment(
                    segment_bytes(rng.randint(500, 3000), rnd * 100 + i), f"r{rnd}"
                )
                lines[rec.sha256] = rec.line
                r = sh.step()
                if r.action == "failed":
                    break
            timer.cancel()
            client.close()
            kills += fired.is_set()
            proc.kill()
            proc.wait()
            kept = sorted((dev.root.parent / "receipts").glob("*.json"))
            receipts = [SignedReceipt.from_json(json.loads(p.read_bytes())) for p in kept]
            check_log(seen, receipts, lines)
            proc, url = start(store)
            with httpx.Client(base_url=url, verify=pinned_to(pub), timeout=10) as http:
                latest = seen.note(http.get("/v1/log/checkpoint").content)
            check_log(seen, receipts, lines)  # the restarted dock's checkpoint is no fork
            assert latest.size >= max((r.receipt.leaf_index + 1 for r in receipts), default=0)
        receipts = ship_the_rest(url, dev, clock)
        check_log(seen, receipts, lines)
    finally:
        proc.kill()
        proc.wait()
    # every kill struck, and once the dock is left alone every segment recorded between them
    # gets its receipt: nothing the kills interrupted is lost (how many shipped before each
    # kill depends on the machine's speed, and is not what is tested)
    assert kills == 6
    assert set(lines) <= {r.receipt.segment_id for r in receipts}


def ship_the_rest(url: str, dev: OutboxDevice, clock: VirtualClock) -> list[SignedReceipt]:
    """Ship until the camera's outbox is empty, with no kill; every receipt it keeps."""
    client = DockClient(url, dev.creds, wall_clock=_wall, timeout=5)
    sh = Shipper(ChainOutbox(dev.root), client, clock, config=ShipperConfig(jitter=0.0))
    try:
        for _ in range(1000):
            r = sh.step()
            if r.action == "idle":
                break
            if r.retry_at_us is not None and r.retry_at_us > clock.now_us():
                clock.set(r.retry_at_us)
    finally:
        client.close()
    kept = sorted((dev.root.parent / "receipts").glob("*.json"))
    return [SignedReceipt.from_json(json.loads(p.read_bytes())) for p in kept]
