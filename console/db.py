"""The console's own SQLite database (``STORE/console.sqlite3``, mode 0600): accounts,
sessions, recordings' metadata (categories, sensitive marks, grants, legal holds) and the
retention jobs. Evidence stays in the dock's index; what changes here is also written as a
custody event in the dock's transparency log (``console.core.Console.custody``).

One connection, shared by the server's threads under a lock; ``tx()`` is one transaction
(BEGIN IMMEDIATE ... COMMIT, rolled back on an exception). WAL, ``synchronous=FULL``.
Each console module keeps its own tables: it passes its ``SCHEMA`` (``CREATE TABLE IF NOT
EXISTS ...``) to ``ensure``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONSOLE_DB_FILE = "console.sqlite3"


class ConsoleDB:
    """The console's database at ``path`` (made 0600 if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def ensure(self, schema: str) -> None:
        """Create a module's tables (``CREATE TABLE IF NOT EXISTS`` statements)."""
        with self._lock:
            self._conn.executescript(schema)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; the connection to run statements on inside it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement."""
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
