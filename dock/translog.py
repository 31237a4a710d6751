"""The dock's transparency log: an RFC 9162 Merkle tree of every chain record it accepts and
every custody-log entry it appends (dock/leaves.py), published as C2SP checkpoints.

The store writes each leaf in the same index transaction as what it records; ``DockLog.sync``
then brings the tree (``STORE/log/tree``, a ``tlog.store.LogStore``) up to the store's leaves,
and issues a checkpoint for the new size: its body (origin ``bwv-dock/<dock key id>``, size,
root) signed as a C2SP signed note by the dock key, time-stamped by the configured RFC 3161
TSA (the token over SHA-256 of the body), and sent to each configured witness with the
consistency proof from the size it last cosigned (C2SP tlog-witness); the cosignatures it
answers with are added to the note, which is kept (a ``dock.checkpoints.CheckpointStore``:
files under ``STORE/log`` for the embedded store, the shared index's tables for a fleet).

The tree is only ever a copy of the store's leaves in their order: after a crash it is cut
back to its last whole leaf and caught up again from the store, so a checkpoint never names
a tree that is not a prefix of the next one. One process appends to the tree at a time
(``STORE/log/lock``: ``bwv dock serve`` holds it while it runs; a command run beside it
leaves the checkpoint to it).

Docks sharing one PostgreSQL index (fleet mode) share one log: the leaves, checkpoints and
witness sizes are the index's, and one dock issues at a time, the one holding the index's
session lock ``"log"`` (dock/checkpoint_table.py). Each dock's tree is a cache of the
index's leaves under its own directory; a dock that does not issue serves the issuer's
latest checkpoint (and proofs in it) and tries the lock every ``issuer_retry_s``: when the
issuer stops or dies it takes over, from the latest checkpoint in the index, asking each
witness from the size the index says it last cosigned (a 409 names the witness's own).

``proof_for_record`` gives a record's inclusion proof for an exhibit, from the store alone.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from nacl.signing import SigningKey

from dock.checkpoints import (
    TREE_DIR,
    CheckpointStore,
    IssuerLock,
    LogConfig,
    StaleIssuer,
    StoredCheckpoint,
    checkpoint_store,
    load_log_config,
    log_dir,
    origin_for,
    try_lock,
)
from dock.leaves import Leaf
from dock.log_status import LogHealth, WitnessState, log_status
from dock.log_witnesses import ask_witness

log = logging.getLogger("bwv.dock.log")

CATCH_UP_BATCH = 10_000
WITNESS_RETRY_S = 5.0  # a witness that did not cosign the latest is asked again this often
ISSUER_RETRY_S = 1.0  # a dock that does not issue a shared log tries its lock this often


class LeafSource(Protocol):
    """What the log needs from the store (dock.store_index.StoreIndex has it)."""

    dock_key_id: str

    def log_leaves(self, after: int = -1, limit: int = 10_000) -> list[Leaf]: ...
    def log_size(self) -> int: ...


class LogError(RuntimeError):
    """The log cannot go on: its tree disagrees with the store, or another process holds it."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class DockLog:
    """The dock's log on ``store_dir/log``; appends only while it holds the log's lock, and
    issues checkpoints only while it holds the issuer's (the same lock for the embedded
    store; the shared index's session lock for a fleet)."""

    def __init__(
        self,
        store_dir: Path,
        key: SigningKey,
        store: LeafSource,
        config: LogConfig | None = None,
        witness_client: Callable[[str], Any] | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        """``witness_client(url)``: what speaks tlog-witness to a witness (default:
        ``witness.client.WitnessClient``); ``checkpoints``: where they are kept (default:
        ``checkpoint_store``, chosen by the store's index)."""
        self.store_dir = Path(store_dir)
        self._witness_client = witness_client
        self.witness_retry_s = WITNESS_RETRY_S
        self._witness_retry_at = 0.0
        self.dir = log_dir(self.store_dir)
        self.key = key
        self.store = store
        self.config = config if config is not None else load_log_config(self.store_dir)
        self.origin = origin_for(store.dock_key_id)
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._issuer: IssuerLock | None = None
        self.issuer_retry_s = ISSUER_RETRY_S
        self._issuer_retry_at = 0.0
        self.checkpoints = checkpoints or checkpoint_store(self.store_dir, store)
        self._tree: Any = None
        self._latest: StoredCheckpoint | None = self.checkpoints.latest()
        sizes = self.checkpoints.witness_sizes()
        self.health = LogHealth(
            witnesses={
                w.name: WitnessState(w.name, w.url, sizes.get(w.name, 0))
                for w in self.config.witnesses
            }
        )

    # -- the lock and the tree

    @property
    def issuing(self) -> bool:
        """This process issues the log's checkpoints (it holds the issuer's lock)."""
        return self._issuer is not None

    def acquire(self) -> bool:
        """Take the log's locks for this process (True), or say another holds one (False):
        the tree's (``STORE/log/lock``), then the issuer's (tried again only after
        ``issuer_retry_s`` when another dock holds it)."""
        with self._lock:
            if self._lock_fd is None:
                self._lock_fd = try_lock(self.store_dir)
                if self._lock_fd is None:
                    return False
            if self._issuer is None and time.monotonic() >= self._issuer_retry_at:
                self._issuer = self.checkpoints.try_issuer_lock()
                if self._issuer is None:
                    self._issuer_retry_at = time.monotonic() + self.issuer_retry_s
                else:  # what another process (or dock) left is ours now
                    self._latest = self.checkpoints.latest()
                    sizes = self.checkpoints.witness_sizes()
                    for name, state in self.health.witnesses.items():
                        state.size = sizes.get(name, 0)
            return self._issuer is not None

    def _release_issuer(self) -> None:
        issuer, self._issuer = self._issuer, None
        if issuer is not None:
            try:
                issuer.release()
            except Exception as exc:  # its connection is gone already: so is the lock
                log.warning("transparency log: releasing the issuer's lock: %s", exc)

    def close(self) -> None:
        with self._lock:
            self._release_issuer()
            if self._tree is not None:
                self._tree.close()
                self._tree = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _open_tree(self) -> Any:
        if self._tree is None:
            from tlog.store import LogStore

            self._tree = LogStore(self.dir / TREE_DIR)
        return self._tree

    def _catch_up(self) -> Any:
        """Bring the tree up to the store's leaves (checking they agree where they meet)."""
        tree = self._open_tree()
        if tree.size:
            mine = self.store.log_leaves(tree.size - 2, 1)
            if (
                not mine
                or mine[0].index != tree.size - 1
                or mine[0].hash != tree.leaf_hash(tree.size - 1)
            ):
                raise LogError(
                    f"{self.dir}: the log's leaf {tree.size - 1} is not the store's: "
                    "the log and the store disagree"
                )
        while batch := self.store.log_leaves(tree.size - 1, CATCH_UP_BATCH):
            if batch[0].index != tree.size:
                raise LogError(f"the store's leaves skip from {tree.size} to {batch[0].index}")
            tree.extend([leaf.data for leaf in batch])
        return tree

    # -- checkpoints

    @property
    def latest(self) -> StoredCheckpoint | None:
        return self._latest

    def sync(self) -> StoredCheckpoint | None:
        """Catch the tree up and, if it grew, issue, stamp, sign and get cosigned a new
        checkpoint; retry witnesses that have not cosigned the latest. The latest checkpoint
        (None: nothing logged yet, or another process holds the log; for a shared log, the
        issuing dock's latest)."""
        with self._lock:
            if not self.acquire():
                return self._follow()
            if self.checkpoints.shared:  # the index's word, should another have issued
                if self._issuer is not None and not self._issuer.held():
                    log.warning("transparency log: lost the log's lock; another dock issues")
                    self._release_issuer()
                    return self._follow()
                self._latest = self.checkpoints.latest()
            tree = self._catch_up()
            size = tree.size
            if size == 0:
                return self._latest
            latest = self._latest
            if latest is not None and latest.size > size:
                raise LogError(
                    f"the latest checkpoint names {latest.size} leaves, the store holds {size}"
                )
            try:
                if latest is None or latest.size < size:
                    self._latest = self._issue(tree, size)
                elif self._missing_witnesses(latest) and self._witnesses_due():
                    self._latest = self._cosign(tree, latest)
            except StaleIssuer as exc:  # another dock issues now: follow it
                log.warning("transparency log: %s", exc)
                self._release_issuer()
                self._issuer_retry_at = time.monotonic() + self.issuer_retry_s
                return self._follow()
            return self._latest

    def _follow(self) -> StoredCheckpoint | None:
        """Not the issuer: a shared log's latest checkpoint (the issuing dock's), with the
        tree caught up to it if this process keeps the tree (for proofs in it)."""
        if self.checkpoints.shared:
            self._latest = self.checkpoints.latest()
            if self._lock_fd is not None:
                self._catch_up()
        return self._latest

    def _witnesses_due(self) -> bool:
        """A witness that failed is asked again only after ``witness_retry_s`` (so that an
        unreachable one does not hold up every upload); the checkpoints issued meanwhile
        are the dock's alone, and the next one asked for covers them."""
        return time.monotonic() >= self._witness_retry_at

    def refresh(self) -> StoredCheckpoint | None:
        """``sync`` when there is something to do: leaves the tree lacks, or a witness to ask
        again (at most every ``witness_retry_s``)."""
        cp = self._latest
        behind = self._tree is None or self.store.log_size() > self._tree.size
        if behind or (cp is not None and self._witnesses_due() and self._missing_witnesses(cp)):
            return self.sync()
        if self.checkpoints.shared and not self.issuing:  # the issuer's latest, or its lock
            return self.sync()
        return cp

    def _issue(self, tree: Any, size: int) -> StoredCheckpoint:
        from tlog.checkpoint import Checkpoint
        from tlog.note import NoteSigner, sign_note

        body = Checkpoint(self.origin, size, tree.root(size)).body()
        note = sign_note(body, [NoteSigner(self.origin, self.key)])
        # signed and kept before any witness sees it
        cp = self.checkpoints.save(StoredCheckpoint(size, note, self._timestamp(body)))
        log.info("log checkpoint %d", size)
        return self._cosign(tree, cp) if self.config.witnesses and self._witnesses_due() else cp

    def _timestamp(self, body: str) -> bytes | None:
        cfg = self.config
        if not cfg.tsa_url:
            return None
        digest = hashlib.sha256(body.encode()).digest()
        try:
            from tsa.client import TsaClient

            token: bytes = TsaClient(cfg.tsa_url).timestamp(digest)
            if cfg.tsa_ca_pem is not None:
                from tsa.verify import verify_token

                verify_token(token, digest, cfg.tsa_ca_pem)
        except Exception as exc:  # any failure of the TSA: the checkpoint goes without
            self.health.tsa_error = f"{type(exc).__name__}: {exc}"
            log.warning("TSA %s: no token for this checkpoint: %s", cfg.tsa_url, exc)
            return None
        self.health.tsa_error = None
        return token

    def _missing_witnesses(self, cp: StoredCheckpoint) -> list[str]:
        from tlog.note import split_note

        _, sigs = split_note(cp.note)
        names = {s.name for s in sigs}
        return [w.name for w in self.config.witnesses if w.name not in names]

    def _cosign(self, tree: Any, cp: StoredCheckpoint) -> StoredCheckpoint:
        from tlog.note import add_signatures, split_note

        body, _ = split_note(cp.note)
        missing = set(self._missing_witnesses(cp))
        lines: list[str] = []
        failed = 0
        for w in self.config.witnesses:
            if w.name in missing:
                state = self.health.witnesses[w.name]
                got = ask_witness(tree, w.url, w.vkey, state, cp, body, self._witness_client)
                failed += not got
                lines += got
        self.checkpoints.save_witness_sizes({n: s.size for n, s in self.health.witnesses.items()})
        if failed:  # not asked again before a while: an unreachable one holds nothing up
            self._witness_retry_at = time.monotonic() + self.witness_retry_s
        if not lines:
            return cp
        return self.checkpoints.save(
            StoredCheckpoint(cp.size, add_signatures(cp.note, lines), cp.token)
        )

    # -- proofs

    def proof(self, leaf_index: int) -> dict[str, Any] | None:
        """The leaf's inclusion proof in the latest checkpoint (None: not in it yet)."""
        with self._lock:
            cp = self._latest
            if cp is None or not 0 <= leaf_index < cp.size or self._tree is None:
                return None
            if self._tree.size < cp.size:
                return None
            inclusion = self._tree.inclusion_proof(leaf_index, cp.size)
        return {
            "leaf_index": leaf_index,
            "tree_size": cp.size,
            "inclusion": [b64(h) for h in inclusion],
            "checkpoint": cp.note.decode(),
            "tsa_token": b64(cp.token) if cp.token is not None else None,
        }

    def status(self) -> dict[str, Any]:
        """What ``bwv dock status`` and ``GET /v1/log/checkpoint``'s caller learn of it."""
        cp = self._latest
        cosigned = []
        if cp is not None:
            missing = set(self._missing_witnesses(cp))
            cosigned = [w.name for w in self.config.witnesses if w.name not in missing]
        return log_status(
            self.origin,
            self.store.log_size(),
            cp,
            self.config,
            cosigned,
            self.health,
        )


def sync_if_free(store_dir: Path, key: SigningKey, store: LeafSource) -> StoredCheckpoint | None:
    """For a command run on the store: issue the checkpoint its entries need, unless a
    running dock holds the log (it will)."""
    dlog = DockLog(store_dir, key, store)
    try:
        if not dlog.acquire():
            return None
        return dlog.sync()
    finally:
        dlog.close()


# --------------------------------------------------------------------------- for exhibits


def proof_for_record(
    store: Any, device_id: str, seq: int, tree_size: int | None = None
) -> dict[str, Any] | None:
    """The inclusion proof of the device's chain record ``seq`` for an exhibit, from the
    store's leaves alone: ``{"record_sha256", "leaf_index", "tree_size", "inclusion":
    [base64]}`` in the tree of ``tree_size`` leaves (default: the latest checkpoint's, as
    ``checkpoint_store(store.root, store)`` keeps it), or None if the record is not in it."""
    from tlog.merkle import inclusion_proof

    held = store.held_segment(device_id, seq=seq)
    if held is None:
        return None
    segment_id = held.segment_id
    index = store.record_leaf_index(device_id, segment_id)
    if tree_size is None:
        cp = checkpoint_store(store.root, store).latest()
        tree_size = cp.size if cp else None
    if index is None or tree_size is None or index >= tree_size:
        return None
    hashes = store.log_leaf_hashes(tree_size)
    if len(hashes) < tree_size:
        return None
    return {
        "record_sha256": segment_id,
        "leaf_index": index,
        "tree_size": tree_size,
        "inclusion": [b64(h) for h in inclusion_proof(index, tree_size, hashes)],
    }


def with_proof(dlog: DockLog | None, receipt: Any) -> Any:
    """``receipt`` (a ``SignedReceipt``) with its record's proof in the latest checkpoint,
    brought up to date first (as it was, without one, when the log has none yet)."""
    from dataclasses import replace

    if dlog is None or receipt is None:
        return receipt
    refresh_quietly(dlog)
    proof = dlog.proof(receipt.receipt.leaf_index)
    return receipt if proof is None else replace(receipt, proof=proof)


def refresh_quietly(dlog: DockLog | None) -> None:
    """``DockLog.refresh``, a failure logged, never raised."""
    _quietly(dlog.refresh if dlog is not None else None)


def sync_quietly(dlog: DockLog | None) -> None:
    """Issue the checkpoint the latest leaves need; a failure is logged, never raised (the
    receipt goes without a proof, and the next sync catches up)."""
    _quietly(dlog.sync if dlog is not None else None)


def _quietly(issue: Callable[[], object] | None) -> None:
    if issue is None:
        return
    try:
        issue()
    except Exception as exc:
        log.error("transparency log: cannot issue a checkpoint: %s", exc, exc_info=True)


def background_sync(dlog: DockLog | None, interval_s: float = 2.0) -> Callable[[], None]:
    """Keep the log's checkpoint up to date while the dock serves (entries appended by
    commands run beside it, witnesses that were away); the function that stops it."""
    stop = threading.Event()
    if dlog is None:
        return stop.set

    def run() -> None:
        while not stop.wait(interval_s):
            try:
                dlog.refresh()
            except Exception as exc:
                log.error("transparency log: cannot issue a checkpoint: %s", exc)

    threading.Thread(target=run, name="bwv-dock-log", daemon=True).start()
    return stop.set
