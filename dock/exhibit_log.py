"""An exhibit's log papers (docs/evidence-format.md, "Exhibit bundle"): the dock's latest
cosigned checkpoint (``log/checkpoint``), its RFC 3161 token (``log/checkpoint.tsr``) and an
inclusion proof in that checkpoint for every chain record of the exhibit
(``log/proofs.jsonl``); and, for the
tight T1, per record the first checkpoint the dock issued that includes it: the line's
``first`` member (its size and the record's inclusion proof in it) and the checkpoint as the
dock kept it, ``log/checkpoints/<m>`` with its token ``log/checkpoints/<m>.tsr``.

A dock that keeps no log (``STORE/log/checkpoint`` absent) writes none; the verifier given a
witness key then says the records are not shown in a witnessed log."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic
from crypto.verify.log import CHECKPOINT, CHECKPOINT_TSR, PROOFS
from crypto.verify.log_first import checkpoint_paper, first_size, token_paper

LOG_DIR = "log"


@dataclass
class LogPapers:
    checkpoint: bytes  # the signed note, cosignatures included
    tsr: bytes | None
    proofs: list[dict[str, Any]] = field(default_factory=list)
    unlogged: list[int] = field(default_factory=list)  # seqs of records the log lacks
    # the first checkpoints including the records, by size: (note, token or None)
    firsts: dict[int, tuple[bytes, bytes | None]] = field(default_factory=dict)

    def header(self) -> tuple[str, int, list[str]]:
        """(origin, size, names of the note's signers other than the log itself)."""
        text = self.checkpoint.decode("utf-8", "replace")
        body, _, sigs = text.partition("\n\n")
        lines = body.split("\n")
        origin = lines[0] if lines else "?"
        size = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1
        names = []
        for s in sigs.split("\n"):
            parts = s.split(" ")
            if len(parts) >= 3 and parts[1] != origin:
                names.append(parts[1])
        return origin, size, names


def gather_log_papers(store: Any, device_id: str, seqs: list[int]) -> LogPapers | None:
    """The log papers for the device's chain records ``seqs``: the latest checkpoint the
    dock keeps and each record's inclusion proof in it (dock/translog.py)."""
    from dock.checkpoints import checkpoint_store
    from dock.translog import proof_for_record

    cps = checkpoint_store(store.root, store)
    cp = cps.latest()
    if cp is None:
        return None
    papers = LogPapers(cp.note, cp.token)
    hashes: list[bytes] | None = None
    for seq in sorted(seqs):
        proof = proof_for_record(store, device_id, seq, cp.size)
        if proof is None:
            papers.unlogged.append(seq)
            continue
        if hashes is None:
            hashes = list(store.log_leaf_hashes(cp.size))
        proof["first"] = _first(cps, cp, proof["leaf_index"], hashes, papers)
        papers.proofs.append(proof)
    return papers


def _first(
    cps: Any, latest: Any, index: int, hashes: list[bytes], papers: LogPapers
) -> dict[str, Any]:
    """The ``first`` member for leaf ``index``: the first checkpoint the dock kept that
    includes it (``STORE/log/checkpoints/<m>``; the latest when none older is kept), and the
    leaf's inclusion proof in it; the checkpoint goes into ``papers.firsts``."""
    from tlog.merkle import inclusion_proof

    m = first_size([s for s in cps.sizes() if s <= latest.size], index)
    kept = cps.at(m) if m is not None and m not in papers.firsts else None
    if m is None or (m not in papers.firsts and kept is None):
        m, kept = latest.size, latest
    if kept is not None:
        papers.firsts[m] = (kept.note, kept.token)
    inclusion = inclusion_proof(index, m, hashes)
    return {"tree_size": m, "inclusion": [base64.b64encode(h).decode() for h in inclusion]}


def write_log_papers(out: Path, papers: LogPapers | None) -> None:
    if papers is None:
        return
    (Path(out) / LOG_DIR).mkdir(exist_ok=True)
    write_atomic(Path(out) / CHECKPOINT, papers.checkpoint)
    if papers.tsr is not None:
        write_atomic(Path(out) / CHECKPOINT_TSR, papers.tsr)
    body = b"".join(
        json.dumps(p, sort_keys=True, separators=(",", ":")).encode() + b"\n" for p in papers.proofs
    )
    write_atomic(Path(out) / PROOFS, body)
    if papers.firsts:
        (Path(out) / checkpoint_paper(0)).parent.mkdir(exist_ok=True)
    for m, (note, token) in sorted(papers.firsts.items()):
        write_atomic(Path(out) / checkpoint_paper(m), note)
        if token is not None:
            write_atomic(Path(out) / token_paper(m), token)


def label_lines(papers: LogPapers | None) -> list[str]:
    """What ``EXHIBIT.md`` says of the log."""
    if papers is None:
        return ["- log: none (this dock keeps no transparency log)"]
    origin, size, witnesses = papers.header()
    out = [
        f"- log: checkpoint {origin} size {size}, cosigned by "
        + (", ".join(witnesses) or "no witness")
        + (
            "; RFC 3161 timestamp in `log/checkpoint.tsr`"
            if papers.tsr
            else "; no RFC 3161 timestamp (no TSA configured)"
        )
    ]
    if papers.unlogged:
        out.append(f"- not in the log: chain records {', '.join(map(str, papers.unlogged))}")
    return out
