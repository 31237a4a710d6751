"""The index's schema, versioned: ``<kind>/NNNN_name.sql`` (kind ``sqlite`` or
``postgresql``), applied in order at open, each once, in one write transaction (the shared
index's write lock held: two docks opening a new database at once make its tables once), and
recorded in ``schema_migrations(version, name, applied_at)``.

An index made before migrations were versioned (no ``schema_migrations``) opens unchanged:
``0001_initial`` is idempotent on SQLite and only records that it is there. An index that a
newer dock has taken further than this one knows is refused rather than written to."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from dock.protocol import Code
from dock.store import StoreError

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
EXISTS = {
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'",
    "postgresql": "SELECT COUNT(*) FROM pg_tables WHERE tablename='schema_migrations'"
    " AND schemaname=current_schema()",
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]


def split_statements(text: str) -> list[str]:
    """The statements of a migration file (``--`` comments dropped; ``;`` ends each; the
    files hold no ``;`` inside a literal)."""
    lines = [ln.split("--", 1)[0] for ln in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def load(kind: str) -> list[Migration]:
    """The migrations of ``kind``, by version."""
    out = []
    for f in resources.files(__name__).joinpath(kind).iterdir():
        m = _FILE.fullmatch(f.name)
        if m:
            out.append(Migration(int(m[1]), m[2], split_statements(f.read_text("utf-8"))))
    out.sort(key=lambda m: m.version)
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise RuntimeError(f"dock/migrations/{kind}: versions are not 1, 2, 3, ...")
    return out


def applied(db: Any) -> set[int]:
    """The versions the index has (none, for an index older than versioning)."""
    if not db.q(EXISTS[db.kind])[0][0]:
        return set()
    return {int(v) for (v,) in db.q("SELECT version FROM schema_migrations")}


def migrate(db: Any, clock_s: Any = time.time) -> list[int]:
    """Bring the index's schema up to date; the versions applied now."""
    wanted = load(db.kind)
    known = {m.version for m in wanted}
    have = applied(db)
    _refuse_newer(have, known)
    if known <= have:
        return []
    done: list[int] = []
    with db.tx() as c:
        c.execute(TABLE)
        have = {int(v) for (v,) in c.execute("SELECT version FROM schema_migrations").fetchall()}
        _refuse_newer(have, known)
        at = datetime.fromtimestamp(clock_s(), UTC).isoformat(timespec="seconds")
        for m in wanted:
            if m.version in have:
                continue
            for statement in m.statements:
                c.execute(statement)
            c.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES(?,?,?)",
                (m.version, m.name, at),
            )
            done.append(m.version)
    return done


def _refuse_newer(have: set[int], known: set[int]) -> None:
    newer = sorted(have - known)
    if newer:
        raise StoreError(
            f"the index has schema version {newer[-1]}, newer than this dock knows "
            f"({max(known)}): upgrade this dock",
            503,
            Code.STORAGE,
        )
