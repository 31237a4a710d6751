"""Lining up the chunks found in a stored file with the signed list of chunks."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from crypto.records import sha256_hex
from crypto.verify.report import (
    ALTERED,
    AUTHENTIC,
    DUPLICATED,
    MISSING,
    REORDERED,
    SUBSTITUTED,
    UNSIGNED,
    ChunkReport,
)


def _lis(seq: list[int]) -> set[int]:
    """Indices (into ``seq``) of one longest strictly increasing subsequence."""
    tails: list[int] = []  # seq values
    tails_at: list[int] = []  # their indices
    back = [-1] * len(seq)
    for i, v in enumerate(seq):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tails_at.append(i)
        else:
            tails[k] = v
            tails_at[k] = i
        back[i] = tails_at[k - 1] if k else -1
    out: set[int] = set()
    i = tails_at[-1] if tails_at else -1
    while i >= 0:
        out.add(i)
        i = back[i]
    return out


def compare_chunks(
    chunks: list[bytes],
    expected: list[dict[str, Any]],
    known: Mapping[str, str],
    key: str = "cipher_sha256",
) -> list[ChunkReport]:
    """Line up the chunks found with the signed list: authentic, reordered, duplicated,
    missing, altered, substituted (known from elsewhere) or unsigned (extra)."""
    hashes = [sha256_hex(c) for c in chunks]
    index = {e[key]: j for j, e in enumerate(expected)}
    first_at: dict[int, int] = {}
    dups: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, h in enumerate(hashes):
        j = index.get(h)
        if j is None:
            continue
        if j in first_at:
            dups.append(i)
        else:
            first_at[j] = i
            pairs.append((i, j))
    in_order = _lis([j for _, j in pairs])
    reports: dict[int, ChunkReport] = {}
    for n, (i, j) in enumerate(pairs):
        status = AUTHENTIC if n in in_order else REORDERED
        detail = "" if i == j or status == REORDERED else f"at position {i}"
        if status == REORDERED:
            detail = f"found at position {i}"
        reports[j] = ChunkReport(j, i, expected[j]["kind"], status, detail)
    used = {i for i, _ in pairs} | set(dups)
    free = [i for i in range(len(chunks)) if i not in used]
    extras: list[ChunkReport] = []
    for j, e in enumerate(expected):
        if j in reports:
            continue
        if j in free:
            free.remove(j)
            where = known.get(hashes[j])
            if where is not None:
                reports[j] = ChunkReport(j, j, e["kind"], SUBSTITUTED, f"is {where}")
            else:
                reports[j] = ChunkReport(j, j, e["kind"], ALTERED)
        else:
            reports[j] = ChunkReport(j, None, e["kind"], MISSING)
    for i in free:
        where = known.get(hashes[i])
        if where is not None:
            extras.append(ChunkReport(None, i, "unknown", SUBSTITUTED, f"is {where}"))
        else:
            extras.append(ChunkReport(None, i, "unknown", UNSIGNED, "not in the signed list"))
    for i in dups:
        extras.append(
            ChunkReport(None, i, "unknown", DUPLICATED, f"a copy of chunk {index[hashes[i]]}")
        )
    extras.sort(key=lambda c: c.position or 0)
    return [reports[j] for j in range(len(expected))] + extras
