"""RFC 9162 (section 2.1) Merkle tree hashing, inclusion and consistency proofs.

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``; the
  hash of the empty tree is ``SHA-256("")``.
- The tree of ``n`` leaves splits at ``k``, the largest power of two smaller than ``n``.
- Proofs are lists of 32-byte hashes, from the leaf level upwards (the order of RFC 9162's
  PATH and PROOF, and of the C2SP tlog-witness consistency proof lines).

Proof generation takes either the list of leaf hashes (``inclusion_proof``,
``consistency_proof``) or a ``SubtreeHash`` callable giving the hash of the leaves
``[lo, hi)`` (``*_proof_by``), so that a store can answer from cached subtrees.
Verification (``verify_inclusion``, ``verify_consistency``) follows RFC 9162 2.1.3.2 and
2.1.4.2 and returns a bool; it never raises on malformed input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 Merkle Tree Hash of the tree whose leaf hashes are ``leaf_hashes``."""
    if not leaf_hashes:
        return EMPTY_ROOT
    # the compact range: complete subtrees, largest first; merge equal sizes as they come
    stack: list[tuple[int, bytes]] = []
    for h in leaf_hashes:
        size, node = 1, bytes(h)
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, node = left_size + size, node_hash(left, node)
        stack.append((size, node))
    node = stack.pop()[1]
    while stack:
        node = node_hash(stack.pop()[1], node)
    return node


def _list_subtree(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    return lambda lo, hi: root_from_hashes(leaf_hashes[lo:hi])


def _check_range(what: str, value: int, low: int, high: int) -> None:
    if not (isinstance(value, int) and low <= value <= high):
        raise ValueError(f"{what} {value!r} is not in [{low}, {high}]")


def inclusion_proof_by(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]), from the leaf's sibling up to the root's child."""
    _check_range("size", size, 1, 1 << 63)
    _check_range("leaf index", index, 0, size - 1)
    out: list[bytes] = []
    lo, hi = 0, size
    # walk down, collecting the siblings top-down, then reverse
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            out.append(subtree(lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_proof_by(old: int, new: int, subtree: SubtreeHash) -> list[bytes]:
    """RFC 9162 PROOF(old, D[0:new]); empty when ``old`` is 0 or equal to ``new``."""
    _check_range("new size", new, 0, 1 << 63)
    _check_range("old size", old, 0, new)
    if old == 0 or old == new:
        return []
    out: list[bytes] = []
    lo, hi, m, whole = 0, new, old, True  # SUBPROOF(m, D[lo:hi], whole)
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            out.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            out.append(subtree(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append(subtree(lo, hi))
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    if size > len(leaf_hashes):
        raise ValueError(f"size {size} exceeds the {len(leaf_hashes)} leaves given")
    return inclusion_proof_by(index, size, _list_subtree(leaf_hashes))


def consistency_proof(old: int, new: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    if new > len(leaf_hashes):
        raise ValueError(f"size {new} exceeds the {len(leaf_hashes)} leaves given")
    return consistency_proof_by(old, new, _list_subtree(leaf_hashes))


def _hashes_ok(*hashes: object) -> bool:
    return all(isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index`` (RFC 9162 2.1.3.2),
    or None if the proof cannot be a proof for that index and size."""
    if not (isinstance(index, int) and isinstance(size, int) and 0 <= index < size):
        return None
    if not _hashes_ok(leaf_hash, *proof):
        return None
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(bytes(p), r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, bytes(p))
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    got = root_from_inclusion(leaf_hash, index, size, proof)
    return got is not None and _hashes_ok(root) and got == bytes(root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2. The empty tree is consistent with every tree (empty proof); equal
    sizes need equal roots and an empty proof."""
    if not (isinstance(old_size, int) and isinstance(new_size, int)):
        return False
    if not 0 <= old_size <= new_size:
        return False
    if old_size == 0:
        return len(proof) == 0 and (new_size != 0 or bytes(old_root) == bytes(new_root))
    if not _hashes_ok(old_root, new_root, *proof):
        return False
    if old_size == new_size:
        return len(proof) == 0 and bytes(old_root) == bytes(new_root)
    if not proof:
        return False
    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == bytes(old_root) and sr == bytes(new_root)
