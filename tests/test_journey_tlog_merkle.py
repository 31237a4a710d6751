"""RFC 9162 hashing and proofs (tlog.merkle, tlog.store): known answers and properties."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tlog import merkle
from tlog.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_hashes,
    verify_consistency,
    verify_inclusion,
)


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# Known answers from github.com/transparency-dev/merkle, proof/verify_test.go (the RFC 6962
# reference vectors of the certificate-transparency project): the leaves' data, the roots
# of the trees of sizes 1..8, inclusion proofs (leaf number counted from 1, tree size) and
# consistency proofs (size1, size2).
# fmt: off
LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f")]
ROOTS = [h(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
INCLUSION = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
# fmt: on
HASHES = [leaf_hash(d) for d in LEAVES]


def test_hashing_known_answers() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert root_from_hashes([]) == EMPTY_ROOT
    for n in range(1, 9):
        assert root_from_hashes(HASHES[:n]) == ROOTS[n - 1], n


def test_inclusion_proofs_known_answers() -> None:
    for leaf, size, proof in INCLUSION:
        want = [h(x) for x in proof]
        assert inclusion_proof(leaf - 1, size, HASHES) == want
        assert verify_inclusion(HASHES[leaf - 1], leaf - 1, size, want, ROOTS[size - 1])


def test_consistency_proofs_known_answers() -> None:
    for old, new, proof in CONSISTENCY:
        want = [h(x) for x in proof]
        assert consistency_proof(old, new, HASHES) == want
        assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], want)


def test_consistency_edge_cases() -> None:
    """transparency-dev/merkle's TestVerifyConsistency table."""
    r1, r2 = b"1" * 32, b"2" * 32
    assert not verify_consistency(0, 0, r1, r2, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert verify_consistency(0, 0, r1, r1, [])
    assert verify_consistency(0, 1, r1, r2, [])
    assert verify_consistency(1, 1, r2, r2, [])
    assert not verify_consistency(1, 0, r1, r2, [])
    assert not verify_consistency(2, 1, r1, r2, [])
    assert not verify_consistency(1, 2, r1, r2, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def _tree(n: int) -> list[bytes]:
    return [leaf_hash(b"leaf %d" % i) for i in range(n)]


def _corrupt(proof: list[bytes], i: int) -> list[bytes]:
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 0x10]) + bad[i][1:]
    return bad


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_no_altered_one_does(case: tuple[int, int]) -> None:
    size, index = case
    hashes = _tree(size)
    root = root_from_hashes(hashes)
    proof = inclusion_proof(index, size, hashes)
    assert verify_inclusion(hashes[index], index, size, proof, root)
    for i in range(len(proof)):
        assert not verify_inclusion(hashes[index], index, size, _corrupt(proof, i), root)
    for other in {index - 1, index + 1, index ^ 1, index ^ 2}:
        if 0 <= other < size and other != index:
            assert not verify_inclusion(hashes[index], other, size, proof, root)
    # a wrong tree height (a size with the same path shape, e.g. 3 and 4 for leaf 0, is
    # bound by the root instead: RFC 9162 proofs do not carry the size)
    assert not verify_inclusion(hashes[index], index, size * 2, proof, root)
    if size > 1:
        assert not verify_inclusion(hashes[index], index, size // 2, proof, root)
        assert not verify_inclusion(hashes[(index + 1) % size], index, size, proof, root)
        assert not verify_inclusion(hashes[index], index, size, proof[:-1], root)
    assert not verify_inclusion(hashes[index], index, size, [*proof, root], root)
    assert not verify_inclusion(hashes[index], size, size, proof, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies_and_no_altered_one_does(case: tuple[int, int]) -> None:
    old, new = case
    hashes = _tree(new)
    r_old, r_new = root_from_hashes(hashes[:old]), root_from_hashes(hashes)
    proof = consistency_proof(old, new, hashes)
    assert verify_consistency(old, new, r_old, r_new, proof)
    if old == new:
        assert proof == []
        assert not verify_consistency(old, new, r_old, leaf_hash(b"other"), proof)
        return
    for i in range(len(proof)):
        assert not verify_consistency(old, new, r_old, r_new, _corrupt(proof, i))
    for other_old in {old - 1, old + 1, old ^ 2}:
        if 0 < other_old <= new and other_old != old:
            assert not verify_consistency(other_old, new, r_old, r_new, proof)
    assert not verify_consistency(old, new * 2, r_old, r_new, proof)
    if new // 2 >= old:
        assert not verify_consistency(old, new // 2, r_old, r_new, proof)
    assert not verify_consistency(old, new, r_new, r_old, proof)
    assert not verify_consistency(old, new, r_old, r_new, proof[:-1])
    assert not verify_consistency(old, new, r_old, r_new, [*proof, r_new])
    assert not verify_consistency(old, new, r_old, r_new, [proof[0], *proof])
    # a fork: same old size, one leaf changed before it
    forked = list(hashes)
    forked[old - 1] = leaf_hash(b"forged")
    assert not verify_consistency(old, new, r_old, root_from_hashes(forked), proof)


def test_split_point() -> None:
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 4, 4, 8]
