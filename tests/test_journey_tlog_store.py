"""tlog.store.LogStore: durable, append-only, proofs from stored hashes, torn tails cut."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tlog.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_hashes,
    verify_consistency,
    verify_inclusion,
)
from tlog.store import ENTRY, LogStore, StoreError


def test_append_roots_and_proofs_match_the_reference(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log")
    assert store.size == 0 and store.root() == EMPTY_ROOT
    datas = [b"leaf %d" % i for i in range(70)]
    hashes = [leaf_hash(d) for d in datas]
    for i, d in enumerate(datas):
        assert store.append(d) == i
        assert store.root() == root_from_hashes(hashes[: i + 1])
    for size in (1, 2, 7, 33, 64, 70):
        assert store.root(size) == root_from_hashes(hashes[:size])
        for index in {0, size // 2, size - 1}:
            proof = store.inclusion_proof(index, size)
            assert proof == inclusion_proof(index, size, hashes)
            assert verify_inclusion(hashes[index], index, size, proof, store.root(size))
        for old in {1, size // 3 or 1, size}:
            proof = store.consistency_proof(old, size)
            assert proof == consistency_proof(old, size, hashes)
            assert verify_consistency(old, size, store.root(old), store.root(size), proof)
    assert store.leaf_data(5) == b"leaf 5" and store.leaf_hash(5) == hashes[5]
    assert store.extend([b"a", b"b"]) == [70, 71]
    store.close()
    again = LogStore(tmp_path / "log")
    assert again.size == 72 and again.leaf_data(71) == b"b"
    assert again.root(70) == root_from_hashes(hashes)
    with pytest.raises(ValueError):
        again.root(73)
    with pytest.raises(IndexError):
        again.leaf_data(72)
    again.close()
    ro = LogStore(tmp_path / "log", readonly=True)
    assert ro.size == 72 and ro.leaf_data(0) == b"leaf 0"
    with pytest.raises(StoreError):
        ro.append(b"x")


def test_a_torn_tail_is_cut_back_to_the_last_whole_leaf(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with LogStore(d) as store:
        store.extend([b"one", b"two", b"three"])
        root3 = store.root()
    # a crash after the data of a fourth leaf and part of its entry were written
    with open(d / "data", "ab") as f:
        f.write(b"four")
    with open(d / "leaves", "ab") as f:
        f.write(ENTRY.pack(leaf_hash(b"four"), 11, 4)[:20])
    ro = LogStore(d, readonly=True)  # a reader ignores the tail and changes nothing
    assert ro.size == 3 and os.path.getsize(d / "leaves") == 3 * ENTRY.size + 20
    with LogStore(d) as store:
        assert store.size == 3 and store.root() == root3
        assert os.path.getsize(d / "leaves") == 3 * ENTRY.size
        assert os.path.getsize(d / "data") == len(b"onetwothree")
        assert store.append(b"four") == 3
        assert store.leaf_data(3) == b"four"


def test_a_damaged_store_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with LogStore(d) as store:
        store.extend([b"one", b"two"])
    with open(d / "data", "r+b") as f:
        f.truncate(4)
    with pytest.raises(StoreError, match="shorter"):
        LogStore(d)
    with open(d / "data", "r+b") as f:
        f.write(b"oneXtwo")
    with pytest.raises(StoreError, match="does not match"):
        LogStore(d)


KILLER = """
import sys
from tlog.store import LogStore
s = LogStore(sys.argv[1])
i = s.size
while True:
    n = s.append(b"leaf %d" % i)
    print(n, flush=True)
    i += 1
"""


def test_every_acknowledged_leaf_survives_kill_9(tmp_path: Path) -> None:
    """A writer killed with SIGKILL at seeded random moments: every index it printed (after
    append returned) is there after reopening, with its data, and nothing else is broken."""
    import random

    rng = random.Random(11)
    d = tmp_path / "log"
    acked = -1
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLER, str(d)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 60)):
            line = proc.stdout.readline()
            if not line:
                break
            acked = max(acked, int(line))
        proc.kill()
        proc.wait()
        with LogStore(d) as store:
            assert store.size >= acked + 1
            for i in range(store.size):
                assert store.leaf_data(i) == b"leaf %d" % i
            assert store.root() == root_from_hashes(
                [leaf_hash(b"leaf %d" % i) for i in range(store.size)]
            )


def test_proofs_come_from_cached_subtrees_not_the_whole_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root or a proof in a tree of 5,000 leaves costs a few dozen hashes, not thousands."""
    import tlog.store as store_mod

    store = LogStore(tmp_path / "log")
    store.extend([b"leaf %d" % i for i in range(5000)])
    calls = 0
    real = store_mod.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(store_mod, "node_hash", counting)
    store.root()
    store.root(4321)
    store.inclusion_proof(1234, 4999)
    store.consistency_proof(1000, 5000)
    assert calls < 100
    store.close()
