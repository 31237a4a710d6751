"""Several docks on one PostgreSQL index (fleet mode) keep ONE transparency log: one dock
issues the checkpoints (the holder of the index's session lock "log"), the others serve its
latest checkpoint and proofs in it; when the issuer closes, or its connection to the index
is cut, another dock takes over from the latest checkpoint in the index, and the witness
(bwv's own, served on loopback) cosigns its next checkpoint: one history.

Real PostgreSQL (``pg_url``: a fresh database) and a real witness; two ``DockLog`` on two
stores sharing the index, each with its own state directory, as two machines would."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from dock.checkpoint_table import TableCheckpoints
from dock.checkpoints import (
    LogConfig,
    StaleIssuer,
    StoredCheckpoint,
    WitnessConfig,
    log_dir,
    origin_for,
)
from dock.log_proof import dock_note_vkey
from dock.log_status import stored_log_status
from dock.protocol import key_id
from dock.translog import DockLog
from tlog.checkpoint import Checkpoint
from tlog.merkle import consistency_proof, leaf_hash, verify_consistency, verify_inclusion
from tlog.note import NoteSigner, NoteVerifier, open_note, sign_note, split_note
from witness.client import WitnessClient
from witness.core import Witness
from witness.server import WitnessServerThread
from witness.state import add_log, keygen

WITNESS = "watchdog.test/w1"

# ``pg_url`` (a fresh database on the session's PostgreSQL) is tests/servers.py's fixture


def open_fleet_store(root: Path, key: SigningKey, index: str) -> Any:
    """A dock's store: staging under ``root``, the index the fleet's PostgreSQL."""
    from dock.store_sqlite import DirectoryStore

    return DirectoryStore(root, key, index=index)


@dataclass
class Fleet:
    root: Path
    index: str
    key: SigningKey  # the agency's dock key, copied to every dock
    origin: str
    config: LogConfig
    witness_url: str
    docks: list[tuple[Any, DockLog]]

    def dock(self, name: str) -> tuple[Any, DockLog]:
        store = open_fleet_store(self.root / name / "store", self.key, self.index)
        dlog = DockLog(self.root / name / "state", self.key, store, self.config)
        dlog.issuer_retry_s = 0.0  # try the lock at every sync (the default waits a second)
        self.docks.append((store, dlog))
        return store, dlog

    def witness_holds(self) -> bytes | None:
        with WitnessClient(self.witness_url) as wc:
            return wc.latest(self.origin)


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[Fleet]:
    key = SigningKey(b"\x17" * 32)
    pub = bytes(key.verify_key)
    origin = origin_for(key_id(pub))
    wstate = tmp_path / "witness"
    signer = keygen(wstate, WITNESS)
    add_log(wstate, origin, dock_note_vkey(pub))
    with WitnessServerThread(Witness(wstate)) as served:
        config = LogConfig((WitnessConfig(served.url, signer.vkey),))
        f = Fleet(tmp_path, pg_url, key, origin, config, served.url, [])
        yield f
        for store, dlog in f.docks:
            dlog.close()
            store.close()


def append(store: Any, n: int) -> None:
    for _ in range(n):
        store.log("test", "note", time.time_ns() // 1000, detail={})


def opened(f: Fleet, note: bytes) -> Checkpoint:
    """The checkpoint, checked signed by the fleet's dock key."""
    text, _ = open_note(note, [NoteVerifier(f.origin, bytes(f.key.verify_key))])
    return Checkpoint.parse(text)


def cosigners(note: bytes) -> set[str]:
    return {s.name for s in split_note(note)[1]}


def hashes(store: Any) -> list[bytes]:
    return [leaf_hash(x.data) for x in store.log_leaves(-1, 1_000_000)]


def assert_one_history(store: Any, *notes: bytes, f: Fleet) -> None:
    """Each checkpoint is the root of a prefix of the index's leaves, each consistent with
    the next."""
    hs = hashes(store)
    cps = sorted((opened(f, n) for n in notes), key=lambda c: c.size)
    for cp in cps:
        assert cp.size <= len(hs)
    for old, new in zip(cps, cps[1:], strict=False):
        proof = consistency_proof(old.size, new.size, hs)
        assert verify_consistency(old.size, new.size, old.root, new.root, proof)


def test_one_dock_issues_the_others_serve_its_checkpoint(fleet: Fleet) -> None:
    sa, a = fleet.dock("a")
    sb, b = fleet.dock("b")
    append(sa, 3)
    cp = a.sync()
    assert cp is not None and cp.size == 3 and a.issuing
    assert WITNESS in cosigners(cp.note)
    # b does not issue: it serves a's checkpoint, from the index
    got = b.sync()
    assert not b.issuing and got is not None and got.note == cp.note
    # checkpoints are the index's, not files of either dock
    for name in ("a", "b"):
        assert not (log_dir(fleet.root / name / "state") / "checkpoint").exists()
        assert not (log_dir(fleet.root / name / "state") / "checkpoints").exists()
    # a proof from b is in a's checkpoint
    proof = b.proof(1)
    assert proof is not None and proof["checkpoint"] == cp.note.decode()
    root = opened(fleet, cp.note).root
    path = [base64.b64decode(h) for h in proof["inclusion"]]
    assert verify_inclusion(hashes(sb)[1], 1, 3, path, root)
    # a leaf appended through b is checkpointed by a; b then serves that checkpoint
    append(sb, 1)
    assert b.sync() == cp  # b never issues while a holds the log
    cp2 = a.sync()
    assert cp2 is not None and cp2.size == 4
    assert b.refresh() == cp2
    assert b.status()["checkpoint_size"] == 4
    assert b.status()["witnesses"][0]["cosigned_latest"] is True
    # `bwv dock status` on b's machine reads the index's checkpoint too
    assert stored_log_status(fleet.root / "b" / "state", sb)["checkpoint_size"] == 4
    assert_one_history(sa, cp.note, cp2.note, f=fleet)


def test_the_issuer_closes_another_dock_takes_over_one_history(fleet: Fleet) -> None:
    sa, a = fleet.dock("a")
    sb, b = fleet.dock("b")
    append(sa, 3)
    first = a.sync()
    assert first is not None and b.sync() == first and not b.issuing
    a.close()
    append(sb, 2)
    second = b.sync()
    assert b.issuing and second is not None and second.size == 5
    assert WITNESS in cosigners(second.note)
    held = fleet.witness_holds()
    assert held is not None and split_note(held)[0] == split_note(second.note)[0]
    assert_one_history(sb, first.note, second.note, f=fleet)
    issuer = TableCheckpoints(sb.db, fleet.origin).issuer()
    assert issuer is not None and issuer[0] == 2  # a's epoch, then b's


class LosesAnswers:
    """A witness client whose dock dies (as far as the index knows) after the witness
    cosigned and before it kept the answer: the witness holds more than the index says."""

    def __init__(self, url: str) -> None:
        self._real = WitnessClient(url)

    def add_checkpoint(self, note: bytes, old: int, proof: list[bytes]) -> list[str]:
        self._real.add_checkpoint(note, old, proof)
        raise ConnectionError("the dock died before it kept the cosignature")

    def close(self) -> None:
        self._real.close()


def test_a_new_issuer_recovers_from_the_witness_size_the_index_had_not_kept(
    fleet: Fleet,
) -> None:
    sa, a = fleet.dock("a")
    sb, b = fleet.dock("b")
    append(sa, 2)
    assert a.sync() is not None
    a._witness_client = LosesAnswers  # the witness will hold 4; the index says 2
    append(sa, 2)
    lost = a.sync()
    assert lost is not None and lost.size == 4 and WITNESS not in cosigners(lost.note)
    assert TableCheckpoints(sa.db, fleet.origin).witness_sizes() == {WITNESS: 2}
    held = fleet.witness_holds()
    assert held is not None and opened(fleet, held).size == 4
    a.close()
    # b asks from 2, the witness answers 409 with 4, b asks again from 4: cosigned
    got = b.sync()
    assert b.issuing and got is not None and got.size == 4 and WITNESS in cosigners(got.note)
    append(sb, 1)
    nxt = b.sync()
    assert nxt is not None and nxt.size == 5 and WITNESS in cosigners(nxt.note)
    assert TableCheckpoints(sb.db, fleet.origin).witness_sizes() == {WITNESS: 5}
    assert_one_history(sb, got.note, nxt.note, held, f=fleet)


def _cut_lock_connections(index: str) -> int:
    """Terminate the index's connections that hold an advisory (session) lock, as a network
    cut or a dead machine would; how many."""
    import psycopg

    with psycopg.connect(index, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
            " JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            " AND l.pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_an_issuer_cut_from_the_index_is_replaced_and_writes_nothing_more(fleet: Fleet) -> None:
    sa, a = fleet.dock("a")
    sb, b = fleet.dock("b")
    append(sa, 3)
    first = a.sync()
    assert first is not None and a.issuing
    assert _cut_lock_connections(fleet.index) >= 1
    append(sb, 1)
    second = b.sync()
    assert b.issuing and second is not None and second.size == 4
    # a, unaware, goes on: its first write finds b's epoch; it follows b from then on
    append(sa, 1)
    got = a.sync()
    assert not a.issuing and got == second
    assert TableCheckpoints(sb.db, fleet.origin).sizes() == [3, 4]
    third = b.sync()
    assert third is not None and third.size == 5 and WITNESS in cosigners(third.note)
    assert a.refresh() == third
    assert_one_history(sb, first.note, second.note, third.note, f=fleet)


CHILD = """
import sys
from pathlib import Path
from nacl.signing import SigningKey
from dock.checkpoints import LogConfig, WitnessConfig
from dock.translog import DockLog
from tests.test_journey_shared_log import append, open_fleet_store
root, index, url, vkey = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
key = SigningKey(bytes.fromhex(sys.argv[5]))
store = open_fleet_store(root / "store", key, index)
dlog = DockLog(root / "state", key, store, LogConfig((WitnessConfig(url, vkey),)))
append(store, 3)
cp = dlog.sync()
print(cp.size if cp is not None and dlog.issuing else "none", flush=True)
sys.stdin.read()  # until killed
"""


def test_an_issuer_killed_with_sigkill_is_replaced(fleet: Fleet) -> None:
    w = fleet.config.witnesses[0]
    args = [str(fleet.root / "k"), fleet.index, w.url, w.vkey, bytes(fleet.key).hex()]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "3"
            sb, b = fleet.dock("b")
            assert b.sync() is not None and not b.issuing
            append(sb, 1)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    # the server ends the dead dock's session (and its lock) as it sees the socket close:
    # on its own time, so wait for it, bounded
    deadline = time.monotonic() + 10
    b.sync()
    while not b.issuing and time.monotonic() < deadline:
        time.sleep(0.05)
        b.sync()
    got = b.latest
    assert b.issuing and got is not None and got.size == 4 and WITNESS in cosigners(got.note)
    first = TableCheckpoints(sb.db, fleet.origin).at(3)
    assert first is not None and WITNESS in cosigners(first.note)
    assert_one_history(sb, first.note, got.note, f=fleet)


def test_a_second_process_on_the_same_state_dir_leaves_the_log_alone(fleet: Fleet) -> None:
    sa, a = fleet.dock("a")
    append(sa, 2)
    assert a.sync() is not None
    other = DockLog(fleet.root / "a" / "state", fleet.key, sa, fleet.config)
    with contextlib.closing(other):
        assert not other.acquire()  # the tree's lock is the serving process's
        assert other.latest == a.latest


def test_the_index_keeps_one_history_whoever_writes(fleet: Fleet) -> None:
    """The table itself: a dock that lost the lock (even one that does not know it yet) can
    write nothing; a checkpoint offered again at a kept size adds its cosignatures; none is
    kept below the latest."""
    sa, a = fleet.dock("a")
    sb, _ = fleet.dock("b")
    append(sa, 3)
    cp = a.sync()
    assert cp is not None and WITNESS in cosigners(cp.note)
    a.close()
    ta, tb = TableCheckpoints(sa.db, fleet.origin), TableCheckpoints(sb.db, fleet.origin)
    lock_a = ta.try_issuer_lock()
    assert lock_a is not None and tb.try_issuer_lock() is None  # a holds it
    assert _cut_lock_connections(fleet.index) >= 1  # a does not know yet
    lock_b = tb.try_issuer_lock()
    assert lock_b is not None and lock_b.held() and not lock_a.held()
    with pytest.raises(StaleIssuer):
        ta.save(cp)
    with pytest.raises(StaleIssuer):
        ta.save_witness_sizes({WITNESS: 99})
    # b offers the same checkpoint with only the dock's signature: the cosignature stays
    dock_only = sign_note(split_note(cp.note)[0], [NoteSigner(fleet.origin, fleet.key)])
    kept = tb.save(StoredCheckpoint(cp.size, dock_only, None))
    assert kept.note == cp.note and tb.latest() == cp
    with pytest.raises(StaleIssuer):  # below the latest: not one history
        tb.save(StoredCheckpoint(cp.size - 1, dock_only, None))
    tb.save_witness_sizes({WITNESS: 1})  # a witness's size is never lowered
    assert tb.witness_sizes() == {WITNESS: 3}
    lock_b.release()


def test_the_log_routes_of_a_dock_that_does_not_issue_serve_the_issuers(fleet: Fleet) -> None:
    from fastapi.testclient import TestClient

    from dock.instance import Dock
    from dock.server import create_app

    sa, a = fleet.dock("a")
    sb, b = fleet.dock("b")
    append(sa, 3)
    cp = a.sync()
    assert cp is not None
    with TestClient(create_app(Dock(sb, fleet.key, translog=b))) as client:
        got = client.get("/v1/log/checkpoint")
        assert got.status_code == 200 and got.content == cp.note and not b.issuing
        proof = client.get("/v1/log/proof/2").json()
        assert proof["tree_size"] == 3 and proof["checkpoint"] == cp.note.decode()
        path = [base64.b64decode(h) for h in proof["inclusion"]]
        assert verify_inclusion(hashes(sb)[2], 2, 3, path, opened(fleet, cp.note).root)
        status = client.get("/v1/log/status").json()
        assert status["checkpoint_size"] == 3 and status["witnesses"][0]["cosigned_latest"]
        append(sa, 1)
        assert a.sync() is not None  # the issuer's next: b's routes serve it
        assert opened(fleet, client.get("/v1/log/checkpoint").content).size == 4
