"""The witness's one decision: cosign a checkpoint or refuse it (C2SP tlog-witness,
``add-checkpoint``), without HTTP (witness/server.py carries it).

The request body is ``old <size>\\n``, up to 63 consistency proof lines (base64 hashes), an
empty line, and the log's signed checkpoint. In the order of the specification:

- 400: a malformed body, note or checkpoint, or an old size above the checkpoint's size;
- 404: a checkpoint origin the witness does not know;
- 403: no valid signature from the log's key, or an invalid one from it;
- 409: the old size is not the size of the latest checkpoint cosigned for the log (0 if
  none): the body is that size and a newline, ``Content-Type: text/x.tlog.size``;
- 422: a size-0 checkpoint without the empty tree's root, a proof with old size 0, a
  consistency proof that does not verify, or the same size with another root (a fork).
  A checkpoint the log signed that fails a consistency check is kept as evidence
  (witness/state.py, STATE/forks/);
- 200: the new checkpoint is durably recorded, then the cosignature line is returned.

Checking the old size and recording the new checkpoint happen under one lock per log, so
two requests from the same old size cannot both be cosigned.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tlog.checkpoint import Checkpoint
from tlog.merkle import HASH_SIZE, verify_consistency
from tlog.note import NoteError, NoteVerifier, Signature, open_note, split_note
from witness.state import (
    LOGS_FILE,
    ForkEvidence,
    StateError,
    load_logs,
    load_signer,
    read_latest,
    write_fork,
    write_latest,
)

log = logging.getLogger("bwv.witness")

MAX_PROOF_LINES = 63
OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,18})")
SIZE_CONTENT_TYPE = "text/x.tlog.size"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = TEXT


@dataclass(frozen=True)
class Held:
    """The latest checkpoint cosigned for a log: parsed, its note, its cosignature time."""

    checkpoint: Checkpoint
    note: bytes
    time_s: int


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: list[bytes]
    proof_lines: list[str]
    note: bytes


class BadRequest(ValueError):
    pass


def parse_request(body: bytes) -> Request:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    head, sep, rest = text.partition("\n")
    m = OLD_LINE.fullmatch(head)
    if not sep or m is None:
        raise BadRequest("the first line must be `old <size>`")
    proof: list[bytes] = []
    lines: list[str] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise BadRequest("no empty line before the checkpoint")
        if line == "":
            break
        if len(lines) == MAX_PROOF_LINES:
            raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            h = b""
        if len(h) != HASH_SIZE:
            raise BadRequest("a consistency proof line is not a base64 32-byte hash")
        proof.append(h)
        lines.append(line)
    return Request(int(m.group(1)), proof, lines, rest.encode())


class Witness:
    """The witness on its state folder (see witness/state.py); thread-safe."""

    def __init__(self, state: Path, clock: Callable[[], float] = time.time) -> None:
        self.state = Path(state)
        self.clock = clock
        self.signer = load_signer(self.state)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._held: dict[str, Held | None] = {}
        self._logs: dict[str, list[NoteVerifier]] = {}
        self._logs_mtime: tuple[int, int, int] | None = None
        self._reload_logs()
        for origin in self._logs:
            self.held(origin)  # a damaged state refuses to start, never starts empty

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    # -- state ---------------------------------------------------------------------------
    def _reload_logs(self) -> None:
        try:
            st = (self.state / LOGS_FILE).stat()
            mtime: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            mtime = None
        with self._guard:
            if mtime == self._logs_mtime and self._logs_mtime is not None:
                return
            logs = load_logs(self.state)
            self._logs = {o: [NoteVerifier.from_vkey(v) for v in vs] for o, vs in logs.items()}
            self._logs_mtime = mtime

    def _lock(self, origin: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(origin, threading.Lock())

    def held(self, origin: str) -> Held | None:
        """The latest checkpoint cosigned for ``origin`` (its cosignature checked once)."""
        with self._lock(origin):  # never caches a file read while a newer one is written
            return self._held_locked(origin)

    def _held_locked(self, origin: str) -> Held | None:
        if origin in self._held:
            return self._held[origin]
        note = read_latest(self.state, origin)
        held = None if note is None else self._check_held(origin, note)
        self._held[origin] = held
        return held

    def _check_held(self, origin: str, note: bytes) -> Held:
        where = f"{self.state}: the checkpoint held for {origin!r}"
        try:
            text, sigs = split_note(note)
            cp = Checkpoint.parse(text)
        except NoteError as exc:
            raise StateError(f"{where} is damaged ({exc}): restore it, never delete it") from None
        mine = [s.line for s in sigs if (s.name, s.key_id) == self._me]
        times = [self.signer.verifier.verify(text, line) for line in mine]
        if cp.origin != origin or not mine or None in times:
            raise StateError(f"{where} does not carry this witness's valid cosignature")
        return Held(cp, note, max(t for t in times if t is not None))

    @property
    def _me(self) -> tuple[str, int]:
        return (self.signer.name, self.signer.key_id)

    def known_origins(self) -> list[str]:
        self._reload_logs()
        return list(self._logs)

    def latest(self, origin: str) -> bytes | None:
        """The latest cosigned checkpoint for ``origin`` (log signatures and the witness's
        cosignature), or None if it never cosigned one (or does not witness the log)."""
        if origin not in self.known_origins():
            return None
        held = self.held(origin)
        return None if held is None else held.note

    # -- add-checkpoint ------------------------------------------------------------------
    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            req = parse_request(body)
            text, sigs = split_note(req.note)
            cp = Checkpoint.parse(text)
        except (BadRequest, NoteError) as exc:
            return Answer(400, f"bad request: {exc}\n")
        self._reload_logs()
        verifiers = self._logs.get(cp.origin)
        if verifiers is None:
            return Answer(404, f"unknown log {cp.origin!r}\n")
        try:
            open_note(req.note, verifiers)
        except NoteError as exc:
            return Answer(403, f"checkpoint not signed by the log's key: {exc}\n")
        if req.old_size > cp.size:
            return Answer(400, f"old size {req.old_size} is above the checkpoint's {cp.size}\n")
        with self._lock(cp.origin):
            return self._decide(req, text, cp, sigs, verifiers)

    def _decide(
        self,
        req: Request,
        text: str,
        cp: Checkpoint,
        sigs: list[Signature],
        verifiers: list[NoteVerifier],
    ) -> Answer:
        held = self._held_locked(cp.origin)
        held_size = 0 if held is None else held.checkpoint.size
        if req.old_size != held_size:
            return Answer(409, f"{held_size}\n", SIZE_CONTENT_TYPE)
        if not cp.empty_root_ok:
            return Answer(422, "a checkpoint of size 0 must have the empty tree's root\n")
        if held is None:
            if req.proof:
                return Answer(422, "a proof from old size 0 must be empty\n")
        else:
            old = held.checkpoint
            if not verify_consistency(old.size, cp.size, old.root, cp.root, req.proof):
                if old.size == cp.size and old.root == cp.root:  # only the proof is wrong
                    return Answer(422, "a proof between equal checkpoints must be empty\n")
                fork = old.size == cp.size
                reason = "fork: same size, another root" if fork else "inconsistent proof"
                path = self._keep_evidence(held, req, cp, reason)
                log.warning(
                    "%s: refused size %d (%s); evidence: %s", cp.origin, cp.size, reason, path
                )
                return Answer(
                    422, f"not consistent with the checkpoint of size {old.size}: {reason}\n"
                )
        now = int(self.clock())
        time_s = max(now, held.time_s if held is not None else 0, 1)
        line = self.signer.cosign(text, time_s)
        known = {(v.name, v.key_id) for v in verifiers}
        log_lines = list(dict.fromkeys(s.line for s in sigs if (s.name, s.key_id) in known))
        note = (text + "\n" + "".join(x + "\n" for x in [*log_lines, line])).encode()
        write_latest(self.state, cp.origin, note)  # durable before the answer
        self._held[cp.origin] = Held(cp, note, time_s)
        log.info("%s: cosigned size %d", cp.origin, cp.size)
        return Answer(200, line + "\n")

    def _keep_evidence(self, held: Held, req: Request, cp: Checkpoint, reason: str) -> Path:
        ev = ForkEvidence(
            origin=cp.origin,
            reason=reason,
            held=held.note,
            offered=req.note,
            old_size=req.old_size,
            proof=req.proof_lines,
            received_at=int(self.clock()),
        )
        return write_fork(self.state, ev, cp.size)
