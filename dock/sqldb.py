"""The dock store's index database: SQLite (the embedded default, one dock) or PostgreSQL (one
index shared by every dock of an agency), behind one small interface, ``Database``.

SQL is written once, for SQLite, with ``?`` placeholders; the PostgreSQL side translates it
(``?`` to ``%s``, a literal ``%`` doubled, ``INSERT OR IGNORE`` to ``ON CONFLICT DO
NOTHING``). Write transactions (``tx``) are serialised across every process that shares the
index: SQLite by ``BEGIN IMMEDIATE``, PostgreSQL by ``pg_advisory_xact_lock(WRITE_LOCK)``
taken first in each transaction, so the custody log's and the transparency log's indices are
assigned by one writer at a time and two docks never fork either log. A failure of the
database is a ``dock.store.StoreError`` (507 full, 503 otherwise), never a driver error; a
lost PostgreSQL connection is made again on the next call.

``device_lock`` serialises one device's uploads and commits (in this process, and for
PostgreSQL across every dock: a session advisory lock on a connection of its own;
dock/sqldb_postgres.py).
``try_session_lock`` is a named lock held until released or the process dies (PostgreSQL:
``pg_try_advisory_lock`` on a connection of its own; SQLite: an flock'd file beside the
index). The schema is versioned (dock/migrations/) and brought up to date at open.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from dock.protocol import Code
from dock.store import StoreError, storage_failure

log = logging.getLogger("bwv.dock.store")


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (PostgreSQL's bigint)."""
    return int.from_bytes(
        hashlib.sha256(b"bwv-dock:" + name.encode()).digest()[:8], "big", signed=True
    )


WRITE_LOCK = lock_key("index-write")  # every write transaction of the shared index
LOCK_TIMEOUT = "60s"  # waiting longer for a lock (a dock stuck mid-write) is a 503
IDLE_TX_TIMEOUT = "60s"  # a dock that stops mid-transaction gives the write lock back
IDLE_LOCK_CONNECTIONS = 4  # device-lock connections kept open for reuse
_LOCK_NAME = re.compile(r"[a-z0-9_-]{1,64}")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection inside a write transaction (``sqlite3.Connection`` has this shape)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class SessionLock(Protocol):
    def held(self) -> bool:
        """Whether the lock is still this process's (False once its connection is lost)."""
        ...

    def release(self) -> None: ...


class Database(Protocol):
    kind: str  # "sqlite" | "postgresql"
    shared: bool  # docks on other machines may share it

    def tx(self, durable: bool = True) -> AbstractContextManager[Conn]:
        """One write transaction, serialised across every process sharing the index.
        ``durable=False``: the commit need not wait for the disk (a power cut may lose it;
        any later durable commit makes it durable too). Only for what the dock can lose
        with the machine: an upload's creation (no receipt names it before its completion's
        durable commit; the camera starts it again), a device's report (telemetry), a
        request's nonce (made durable by the request's own durable effect, if it has one)."""
        ...

    def q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read, outside any transaction."""
        ...

    def device_lock(self, device_id: str) -> AbstractContextManager[None]: ...
    def try_session_lock(self, name: str) -> SessionLock | None: ...
    def close(self) -> None: ...


def is_postgres_url(index: Path | str | None) -> bool:
    return isinstance(index, str) and index.startswith(("postgresql://", "postgres://"))


def open_database(index: Path | str) -> Database:
    """The index at ``index``: a path is a SQLite file (made if missing), a
    ``postgresql://`` URL a PostgreSQL database (its tables made if missing). Its schema is
    brought up to date (dock/migrations/). ``StoreError`` (503) if it cannot be opened."""
    from dock.migrations import migrate

    db: Database
    if is_postgres_url(index):
        from dock.sqldb_postgres import PostgresDatabase

        db = PostgresDatabase(str(index))
    else:
        db = SqliteDatabase(Path(index))
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def check_lock_name(name: str) -> str:
    if not _LOCK_NAME.fullmatch(name):
        raise ValueError(f"not a lock name: {name!r}")
    return name


class DeviceLock:
    """A device's lock in this process: re-entrant (a thread that holds it may take it
    again: ``completing`` holds it while the server asks ``upload_state``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0  # how deep the owning thread holds it (changed only by the owner)


class DeviceLocks:
    """One in-process lock per device."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, DeviceLock] = {}

    def of(self, device_id: str) -> DeviceLock:
        with self._guard:
            return self._locks.setdefault(device_id, DeviceLock())


# --------------------------------------------------------------------------- SQLite


class _FileLock:
    """An flock'd file: held until released or the process dies."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SqliteDatabase:
    """The embedded index: one connection (WAL, synchronous=FULL) used by one thread at a
    time. ``conn`` is the ``sqlite3.Connection`` (tests swap it for a failing one)."""

    kind = "sqlite"
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._devices = DeviceLocks()
        self.conn: Any = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"cannot open the index: {exc}", 503, Code.STORAGE) from exc

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def tx(self, durable: bool = True) -> Iterator[Conn]:
        """A failure (a full disk fails an INSERT or the COMMIT) leaves no transaction open
        behind it, and a storage failure is a ``StoreError``. Not ``durable``: committed at
        synchronous=NORMAL (into the WAL, not fsync'd: it survives the dock's crash, not the
        machine's), then FULL again for every other commit; the next FULL commit's fsync of
        the WAL makes it durable with everything before it."""
        with self._lock:
            if not durable:
                self._synchronous("NORMAL")
            try:
                with self._transaction():
                    yield self.conn
            finally:
                if not durable:
                    self._synchronous("FULL")

    def _synchronous(self, level: str) -> None:
        try:
            self.conn.execute(f"PRAGMA synchronous={level}")
        except sqlite3.Error as exc:
            raise storage_failure(exc, self.path.parent) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (the lock held), rolled back on any failure."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_failure(exc, self.path.parent) from exc
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:  # SQLite may have rolled back by itself
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise storage_failure(exc, self.path.parent) from exc
            raise

    def q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                rows: list[tuple[Any, ...]] = self.conn.execute(sql, args).fetchall()
                return rows
            except sqlite3.Error as exc:
                raise storage_failure(exc, self.path.parent) from exc

    @contextmanager
    def device_lock(self, device_id: str) -> Iterator[None]:
        """In this process only: one process serves an embedded store."""
        with self._devices.of(device_id).lock:
            yield

    def try_session_lock(self, name: str) -> SessionLock | None:
        path = self.path.with_name(f"{self.path.name}-{check_lock_name(name)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return _FileLock(fd)
