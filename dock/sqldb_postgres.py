"""The shared index on PostgreSQL (``PostgresDatabase``, a ``dock.sqldb.Database``): psycopg 3,
one connection for reads and write transactions, used by one thread at a time and made again
after it is lost; each device lock and session lock on a connection of its own.

Why one connection and not a pool: every write transaction of every dock is serialised by
the write lock anyway, so a pool would buy concurrent reads only, at the price of a
dependency (psycopg_pool) and of more server connections per dock; the embedded index works
the same way (one SQLite connection). Locks are the exception: a lock that waits must never
hold the shared connection, so each is taken on its own (kept for reuse after)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dock.protocol import Code
from dock.sqldb import (
    IDLE_LOCK_CONNECTIONS,
    IDLE_TX_TIMEOUT,
    LOCK_TIMEOUT,
    WRITE_LOCK,
    Conn,
    DeviceLocks,
    SessionLock,
    check_lock_name,
    lock_key,
    log,
)
from dock.store import StoreError, storage_failure

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
    """``url`` without its password, in the address or as a parameter (for messages)."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


class PostgresDatabase:
    """The shared index: one connection (autocommit; transactions explicit) used by one
    thread at a time, made again after it is lost; device and session locks each on a
    connection of their own, so a lock that waits never holds the shared one."""

    kind = "postgresql"
    shared = True

    def __init__(self, url: str) -> None:
        self.where = redact_url(url)
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a PostgreSQL index needs psycopg: install bwv with its `fleet` extra",
                503,
                Code.STORAGE,
            ) from None
        self._psycopg = psycopg
        self._url = url
        self._lock = threading.RLock()
        self._devices = DeviceLocks()
        self._idle: list[Any] = []  # device-lock connections, free
        self._idle_guard = threading.Lock()
        self._conn: Any = None
        self._closed = False
        try:
            self._conn = self._new_connection()
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the index at {self.where}: {exc}", 503, Code.STORAGE
            ) from None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r})"

    def _connect(self) -> Any:
        try:
            return self._new_connection()
        except self._psycopg.Error as exc:
            raise storage_failure(exc) from exc

    def _new_connection(self) -> Any:
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
        try:
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_TX_TIMEOUT}'")
        except BaseException:
            conn.close()
            raise
        return conn

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
    def tx(self, durable: bool = True) -> Iterator[Conn]:
        # always durable: the shared index's rows are every dock's (what one dock counts,
        # another reads), so none is left to a later commit of one dock's
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

    def _locked(self, key: int, conn: Any, fresh: bool = False) -> Any:
        """``conn`` holding the advisory lock ``key``; a kept connection the server dropped
        meanwhile is replaced by a new one, once."""
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            return conn
        except self._psycopg.Error as exc:
            lost = conn.closed or conn.broken
            with contextlib.suppress(Exception):
                conn.close()
            if fresh or not lost:
                raise storage_failure(exc) from exc
        return self._locked(key, self._connect(), fresh=True)

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
                    with self._advisory(lock_key("device:" + device_id)):
                        yield
            finally:
                mine.depth -= 1

    @contextmanager
    def _advisory(self, key: int) -> Iterator[None]:
        """A session advisory lock on a connection of its own (kept for reuse after)."""
        conn = self._locked(key, self._lock_conn())
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
        key = lock_key("session:" + check_lock_name(name))
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
