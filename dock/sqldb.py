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
PostgreSQL across every dock: a session advisory lock on a connection of its own).
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
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from dock.protocol import Code
from dock.store import StoreError, storage_failure

log = logging.getLogger("bwv.dock.store")


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (PostgreSQL's bigint)."""
    return int.from_bytes(
        hashlib.sha256(b"bwv-dock:" + name.encode()).digest()[:8], "big", signed=True
    )


WRITE_LOCK = _lock_key("index-write")  # every write transaction of the shared index
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

    def tx(self) -> AbstractContextManager[Conn]:
        """One write transaction, serialised across every process sharing the index."""
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

    pg = is_postgres_url(index)
    db: Database = PostgresDatabase(str(index)) if pg else SqliteDatabase(Path(index))
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _check_lock_name(name: str) -> str:
    if not _LOCK_NAME.fullmatch(name):
        raise ValueError(f"not a lock name: {name!r}")
    return name


class _DeviceLock:
    """A device's lock in this process: re-entrant (a thread that holds it may take it
    again: ``completing`` holds it while the server asks ``upload_state``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0  # how deep the owning thread holds it (changed only by the owner)


class _DeviceLocks:
    """One in-process lock per device."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, _DeviceLock] = {}

    def of(self, device_id: str) -> _DeviceLock:
        with self._guard:
            return self._locks.setdefault(device_id, _DeviceLock())


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
        self._devices = _DeviceLocks()
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
    def tx(self) -> Iterator[Conn]:
        """A failure (a full disk fails an INSERT or the COMMIT) leaves no transaction open
        behind it, and a storage failure is a ``StoreError``."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_failure(exc, self.path.parent) from exc
            try:
                yield self.conn
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
        path = self.path.with_name(f"{self.path.name}-{_check_lock_name(name)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return _FileLock(fd)


# --------------------------------------------------------------------------- PostgreSQL


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite-flavoured SQL as psycopg's: ``?`` outside string literals becomes ``%s``, a
    ``%`` is doubled, ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    text = "".join(out)
    if re.match(r"\s*INSERT\s+OR\s+IGNORE\s", text, re.IGNORECASE):
        text = re.sub(r"OR\s+IGNORE\s+", "", text, count=1, flags=re.IGNORECASE)
        text = text.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return text


def _plain(row: tuple[Any, ...] | None) -> Any:
    """A row with ``memoryview`` values as ``bytes`` (BYTEA may load either way)."""
    if row is None or not any(isinstance(v, memoryview) for v in row):
        return row
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


class _PgCursor:
    def __init__(self, cur: Any) -> None:
        self._cur = cur
        self.rowcount: int = cur.rowcount

    def fetchone(self) -> Any:
        return _plain(self._cur.fetchone())

    def fetchall(self) -> list[Any]:
        return [_plain(r) for r in self._cur.fetchall()]


class _PgConn:
    """The shared connection inside a write transaction, speaking ``?`` SQL."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> _PgCursor:
        return _PgCursor(self._conn.execute(translate(sql), tuple(parameters)))


class _PgSessionLock:
    def __init__(self, conn: Any, key: int) -> None:
        self._conn: Any = conn
        self._key = key

    def held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except Exception:  # psycopg.Error: the session (and the lock) is gone
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            with contextlib.suppress(Exception):
                conn.close()


def redact_url(url: str) -> str:
    """``url`` without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresDatabase:
    """The shared index: one connection (autocommit; transactions explicit) used by one
    thread at a time, made again after it is lost; device and session locks each on a
    connection of their own, so a lock that waits never holds the shared one."""

    kind = "postgresql"
    shared = True

    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self._url = url
        self.where = redact_url(url)
        self._lock = threading.RLock()
        self._devices = _DeviceLocks()
        self._idle: list[Any] = []  # device-lock connections, free
        self._idle_guard = threading.Lock()
        self._conn: Any = None
        self._closed = False
        with self._lock:
            self._connected()

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r})"

    def _connect(self) -> Any:
        try:
            conn = self._psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=10,
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
                application_name="bwv-dock",
            )
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_TX_TIMEOUT}'")
            return conn
        except self._psycopg.Error as exc:
            raise storage_failure(exc) from exc

    def _connected(self) -> Any:
        """The shared connection (call with ``_lock`` held), made again if it was lost."""
        if self._closed:
            raise StoreError("the index is closed", 503, Code.STORAGE)
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                log.warning("index connection lost; connecting again to %s", self.where)
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _failed(self, exc: BaseException) -> StoreError:
        """The error as the device's answer; a connection that broke is dropped."""
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        return storage_failure(exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
        with self._idle_guard:
            idle, self._idle = self._idle, []
        for c in idle:
            with contextlib.suppress(Exception):
                c.close()

    @contextmanager
    def tx(self) -> Iterator[Conn]:
        psycopg = self._psycopg
        with self._lock:
            conn = self._connected()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    yield _PgConn(conn)
            except psycopg.Error as exc:
                raise self._failed(exc) from exc

    def q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connected()
            try:
                rows = conn.execute(translate(sql), args).fetchall()
            except self._psycopg.Error as exc:
                raise self._failed(exc) from exc
            return [_plain(r) for r in rows]

    # -- locks

    def _lock_conn(self) -> Any:
        with self._idle_guard:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, conn: Any) -> None:
        with self._idle_guard:
            if not self._closed and len(self._idle) < IDLE_LOCK_CONNECTIONS:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    @contextmanager
    def device_lock(self, device_id: str) -> Iterator[None]:
        """The device's lock in this process, then across every dock (a session advisory
        lock on a connection of its own: waiting for it never holds the shared one)."""
        mine = self._devices.of(device_id)
        with mine.lock:
            mine.depth += 1
            try:
                if mine.depth > 1:  # this thread holds it already
                    yield
                else:
                    with self._advisory(_lock_key("device:" + device_id)):
                        yield
            finally:
                mine.depth -= 1

    @contextmanager
    def _advisory(self, key: int) -> Iterator[None]:
        """A session advisory lock on a connection of its own (kept for reuse after)."""
        conn = self._lock_conn()
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except self._psycopg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()
            raise storage_failure(exc) from exc
        try:
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except self._psycopg.Error:
                with contextlib.suppress(Exception):
                    conn.close()  # closing the session releases its locks
            else:
                self._give_back(conn)

    def try_session_lock(self, name: str) -> SessionLock | None:
        key = _lock_key("session:" + _check_lock_name(name))
        conn = self._connect()
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except self._psycopg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()
            raise storage_failure(exc) from exc
        if not got:
            conn.close()
            return None
        return _PgSessionLock(conn, key)
