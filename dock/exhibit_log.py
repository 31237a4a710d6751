"""An exhibit's log papers (docs/spec-parts/F.md): the dock's latest cosigned checkpoint
(``log/checkpoint``), its RFC 3161 token (``log/checkpoint.tsr``) and an inclusion proof in
that checkpoint for every chain record of the exhibit (``log/proofs.jsonl``).

A dock that keeps no log (``STORE/log/checkpoint`` absent) writes none; the verifier given a
witness key then says the records are not shown in a witnessed log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic
from crypto.verify.log import CHECKPOINT, CHECKPOINT_TSR, PROOFS

LOG_DIR = "log"


@dataclass
class LogPapers:
    checkpoint: bytes  # the signed note, cosignatures included
    tsr: bytes | None
    proofs: list[dict[str, Any]] = field(default_factory=list)
    unlogged: list[int] = field(default_factory=list)  # seqs of records the log lacks

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
    from dock.checkpoints import latest_checkpoint
    from dock.translog import proof_for_record

    cp = latest_checkpoint(store.root)
    if cp is None:
        return None
    papers = LogPapers(cp.note, cp.token)
    for seq in sorted(seqs):
        proof = proof_for_record(store, device_id, seq, cp.size)
        if proof is None:
            papers.unlogged.append(seq)
        else:
            papers.proofs.append(proof)
    return papers


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
