"""The log's checkpoints and the witnesses' sizes in the shared index, for a fleet of docks on
one PostgreSQL index (dock/sqldb.py) — a ``dock.checkpoints.CheckpointStore``.

The leaves are in the index, in one order for every dock; so are the checkpoints issued over
them, so that the witnesses see one history whichever dock issues:

- ``log_checkpoints(origin, size, note, token)``: every checkpoint issued, by size; the
  latest is the largest (sizes only grow). A checkpoint offered at a size the table already
  holds is the same body (one tree, one key: Ed25519 signs it the same): the cosignature
  lines are merged. One offered below the latest is refused (``StaleIssuer``): another dock
  issues now.
- ``log_witness_sizes(origin, witness, size)``: the size each witness last cosigned (only
  ever raised).
- ``log_issuer(origin, epoch, holder, since_us)``: who issues, since when. Each dock that
  takes the lock raises the epoch; every write checks it (in the same transaction), so a
  dock that lost the lock without knowing it (its connection to the index cut) writes
  nothing more: ``StaleIssuer``, and it follows the new issuer.

One dock issues at a time: the one holding the index's session lock ``"log"``
(``Database.try_session_lock``), held until it closes or its process dies; another dock
then takes it and goes on from the latest checkpoint here. The tables are made by the
index's migrations (dock/migrations/postgresql/0002_checkpoints.sql; the embedded
SQLite store keeps its checkpoints as files and has no such tables).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from dock.checkpoints import IssuerLock, StaleIssuer, StoredCheckpoint

LOCK_NAME = "log"
SHARED_KINDS = ("postgresql",)


class IndexDatabase(Protocol):
    """What this module uses of ``dock.sqldb.Database``."""

    kind: str

    def tx(self) -> AbstractContextManager[Any]: ...
    def q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
    def try_session_lock(self, name: str) -> Any: ...


def shared_index(store: Any) -> IndexDatabase | None:
    """The store's index (``dock.sqldb.Database``) when several docks share it
    (PostgreSQL), else None."""
    db = getattr(store, "db", None)
    return db if getattr(db, "kind", None) in SHARED_KINDS else None


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _merged(kept: bytes, offered: bytes) -> bytes:
    """``kept`` with the signature lines of ``offered`` it lacks (the same body)."""
    from tlog.note import add_signatures, split_note

    body_k, _ = split_note(kept)
    body_o, sigs = split_note(offered)
    if body_k != body_o:
        raise StaleIssuer("two checkpoints of one size with different bodies: not one history")
    return add_signatures(kept, [s.line for s in sigs])


def _wall_us() -> int:
    return time.time_ns() // 1000


def holder_name() -> str:
    """Which dock process issues (for the operator reading ``log_issuer``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Issuer:
    """The session lock, and this dock's epoch while it holds it."""

    def __init__(self, owner: TableCheckpoints, lock: Any, epoch: int) -> None:
        self._owner, self._lock, self.epoch = owner, lock, epoch

    def held(self) -> bool:
        return bool(self._lock.held())

    def release(self) -> None:
        self._owner._epoch = None
        self._lock.release()


class TableCheckpoints:
    """The checkpoints of the log ``origin`` in the shared index ``db``."""

    shared = True

    def __init__(
        self, db: IndexDatabase, origin: str, clock_us: Callable[[], int] = _wall_us
    ) -> None:
        self.db = db
        self.origin = origin
        self.clock_us = clock_us
        self._epoch: int | None = None  # while this dock issues

    def latest(self) -> StoredCheckpoint | None:
        rows = self.db.q(
            "SELECT size, note, token FROM log_checkpoints WHERE origin=?"
            " ORDER BY size DESC LIMIT 1",
            (self.origin,),
        )
        if not rows:
            return None
        return StoredCheckpoint(int(rows[0][0]), bytes(rows[0][1]), _blob(rows[0][2]))

    def at(self, size: int) -> StoredCheckpoint | None:
        rows = self.db.q(
            "SELECT note, token FROM log_checkpoints WHERE origin=? AND size=?",
            (self.origin, size),
        )
        return StoredCheckpoint(size, bytes(rows[0][0]), _blob(rows[0][1])) if rows else None

    def sizes(self) -> list[int]:
        rows = self.db.q(
            "SELECT size FROM log_checkpoints WHERE origin=? ORDER BY size", (self.origin,)
        )
        return [int(r[0]) for r in rows]

    def save(self, cp: StoredCheckpoint) -> StoredCheckpoint:
        """Keep ``cp`` (merged with what is kept at its size); ``StaleIssuer`` if a later
        checkpoint is kept already."""
        with self._issuer_tx() as run:
            top = run("SELECT MAX(size) FROM log_checkpoints WHERE origin=?", (self.origin,))
            if top and top[0][0] is not None and int(top[0][0]) > cp.size:
                raise StaleIssuer(
                    f"the index holds a checkpoint of size {top[0][0]}, "
                    f"later than this one of size {cp.size}: another dock issues the log"
                )
            kept = run(
                "SELECT note, token FROM log_checkpoints WHERE origin=? AND size=?",
                (self.origin, cp.size),
            )
            if not kept:
                run(
                    "INSERT INTO log_checkpoints(origin, size, note, token) VALUES(?,?,?,?)",
                    (self.origin, cp.size, cp.note, cp.token),
                )
                return cp
            note = _merged(bytes(kept[0][0]), cp.note)
            token = cp.token if cp.token is not None else _blob(kept[0][1])
            run(
                "UPDATE log_checkpoints SET note=?, token=? WHERE origin=? AND size=?",
                (note, token, self.origin, cp.size),
            )
            return StoredCheckpoint(cp.size, note, token)

    def witness_sizes(self) -> dict[str, int]:
        rows = self.db.q(
            "SELECT witness, size FROM log_witness_sizes WHERE origin=?", (self.origin,)
        )
        return {str(name): int(size) for name, size in rows}

    def save_witness_sizes(self, sizes: dict[str, int]) -> None:
        """Each witness's size, where it is above the one kept (a witness never goes back)."""
        with self._issuer_tx() as run:
            kept = {
                str(n): int(s)
                for n, s in run(
                    "SELECT witness, size FROM log_witness_sizes WHERE origin=?", (self.origin,)
                )
            }
            for name, size in sorted(sizes.items()):
                if name not in kept:
                    run(
                        "INSERT INTO log_witness_sizes(origin, witness, size) VALUES(?,?,?)",
                        (self.origin, name, size),
                    )
                elif size > kept[name]:
                    run(
                        "UPDATE log_witness_sizes SET size=? WHERE origin=? AND witness=?",
                        (size, self.origin, name),
                    )

    def try_issuer_lock(self) -> IssuerLock | None:
        """The index's session lock ``"log"`` (None: another dock holds it), and a new epoch
        recorded with it."""
        lock = self.db.try_session_lock(LOCK_NAME)
        if lock is None:
            return None
        try:
            with self._tx() as run:
                rows = run("SELECT epoch FROM log_issuer WHERE origin=?", (self.origin,))
                epoch = int(rows[0][0]) + 1 if rows else 1
                args = (epoch, holder_name(), self.clock_us(), self.origin)
                if rows:
                    run("UPDATE log_issuer SET epoch=?, holder=?, since_us=? WHERE origin=?", args)
                else:
                    run(
                        "INSERT INTO log_issuer(epoch, holder, since_us, origin) VALUES(?,?,?,?)",
                        args,
                    )
        except BaseException:
            lock.release()
            raise
        self._epoch = epoch
        return _Issuer(self, lock, epoch)

    def issuer(self) -> tuple[int, str, int] | None:
        """The latest issuer: (epoch, holder, since_us), or None if none ever issued."""
        rows = self.db.q(
            "SELECT epoch, holder, since_us FROM log_issuer WHERE origin=?", (self.origin,)
        )
        return (int(rows[0][0]), str(rows[0][1]), int(rows[0][2])) if rows else None

    @contextmanager
    def _issuer_tx(self) -> Iterator[Any]:
        """A write transaction of the issuer: ``StaleIssuer`` unless this dock's epoch is
        still the index's."""
        with self._tx() as run:
            rows = run("SELECT epoch FROM log_issuer WHERE origin=?", (self.origin,))
            now = int(rows[0][0]) if rows else None
            if self._epoch is None or now != self._epoch:
                raise StaleIssuer(
                    f"another dock took the log's lock (epoch {now}, this dock's "
                    f"{self._epoch}): it issues the checkpoints now"
                )
            yield run

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction of the index; yields ``run(sql, args)``: the rows a SELECT
        gives, [] for a write."""
        with self.db.tx() as conn:

            def run(sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
                cur = conn.execute(sql, args)
                return list(cur.fetchall()) if sql.lstrip().upper().startswith("SELECT") else []

            yield run
