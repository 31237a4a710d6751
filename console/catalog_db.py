"""The console's tables about recordings (``SCHEMA``), keyed by (device_id, recording_id):
categories, sensitive marks, access grants, requests to lift a mark, legal holds.
``Marks`` reads and writes them; ``console.catalog.Catalog`` decides who may, and writes the
custody events."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from console.db import ConsoleDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS rec_categories(
    device_id TEXT NOT NULL, recording_id TEXT NOT NULL, categories TEXT NOT NULL,
    set_by TEXT NOT NULL, set_at_us INTEGER NOT NULL, PRIMARY KEY(device_id, recording_id));
CREATE TABLE IF NOT EXISTS rec_sensitive(
    device_id TEXT NOT NULL, recording_id TEXT NOT NULL, reason TEXT NOT NULL,
    marked_by TEXT NOT NULL, marked_at_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, recording_id));
CREATE TABLE IF NOT EXISTS rec_grants(
    device_id TEXT NOT NULL, recording_id TEXT NOT NULL, grantee TEXT NOT NULL,
    reason TEXT NOT NULL, granted_by TEXT NOT NULL, granted_at_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, recording_id, grantee));
CREATE TABLE IF NOT EXISTS rec_lift_requests(
    device_id TEXT NOT NULL, recording_id TEXT NOT NULL, requested_by TEXT NOT NULL,
    reason TEXT NOT NULL, requested_at_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, recording_id));
CREATE TABLE IF NOT EXISTS rec_refs(
    ref TEXT PRIMARY KEY, device_id TEXT NOT NULL, recording_id TEXT NOT NULL,
    UNIQUE(device_id, recording_id));
CREATE TABLE IF NOT EXISTS rec_holds(
    device_id TEXT NOT NULL, recording_id TEXT NOT NULL, reason TEXT NOT NULL,
    set_by TEXT NOT NULL, set_at_us INTEGER NOT NULL, PRIMARY KEY(device_id, recording_id));
"""

Key = tuple[str, str]  # (device_id, recording_id)


@dataclass(frozen=True)
class Mark:
    """Who did something to a recording, when and why (a sensitive mark, a hold, a lift
    request, a grant: ``who`` is then the grantee, ``by`` the supervisor)."""

    who: str
    reason: str
    at_us: int
    by: str = ""


class Marks:
    """The console's rows about recordings."""

    def __init__(self, db: ConsoleDB) -> None:
        self.db = db
        db.ensure(SCHEMA)

    # -- reads (all recordings at once, for listings)

    def categories(self) -> dict[Key, list[str]]:
        rows = self.db.query("SELECT device_id, recording_id, categories FROM rec_categories")
        return {(d, r): list(json.loads(c)) for d, r, c in rows}

    def sensitive(self) -> dict[Key, Mark]:
        rows = self.db.query(
            "SELECT device_id, recording_id, marked_by, reason, marked_at_us FROM rec_sensitive"
        )
        return {(d, r): Mark(w, why, at) for d, r, w, why, at in rows}

    def holds(self) -> dict[Key, Mark]:
        rows = self.db.query(
            "SELECT device_id, recording_id, set_by, reason, set_at_us FROM rec_holds"
        )
        return {(d, r): Mark(w, why, at) for d, r, w, why, at in rows}

    def granted(self, name: str) -> set[Key]:
        rows = self.db.query(
            "SELECT device_id, recording_id FROM rec_grants WHERE grantee=?", (name,)
        )
        return {(d, r) for d, r in rows}

    # -- reads (one recording)

    def grants(self, key: Key) -> list[Mark]:
        rows = self.db.query(
            "SELECT grantee, reason, granted_at_us, granted_by FROM rec_grants"
            " WHERE device_id=? AND recording_id=? ORDER BY granted_at_us, rowid",
            key,
        )
        return [Mark(*r) for r in rows]

    def lift_request(self, key: Key) -> Mark | None:
        rows = self.db.query(
            "SELECT requested_by, reason, requested_at_us FROM rec_lift_requests"
            " WHERE device_id=? AND recording_id=?",
            key,
        )
        return Mark(*rows[0]) if rows else None

    # -- references: an opaque name per recording for links (a restricted recording's link
    #    must not name its camera)

    def refs(self, keys: list[Key]) -> dict[Key, str]:
        have = {(d, r): ref for ref, d, r in self.db.query("SELECT * FROM rec_refs")}
        new = [k for k in keys if k not in have]
        if not new:
            return have
        with self.db.tx() as c:
            for k in new:
                c.execute(
                    "INSERT OR IGNORE INTO rec_refs VALUES(?,?,?)", (secrets.token_hex(8), *k)
                )
        return {(d, r): ref for ref, d, r in self.db.query("SELECT * FROM rec_refs")}

    def key_of(self, ref: str) -> Key | None:
        rows = self.db.query("SELECT device_id, recording_id FROM rec_refs WHERE ref=?", (ref,))
        return (rows[0][0], rows[0][1]) if rows else None

    # -- writes

    def set_categories(self, key: Key, categories: list[str], by: str, now_us: int) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO rec_categories VALUES(?,?,?,?,?)",
                (*key, json.dumps(categories), by, now_us),
            )

    def mark(self, key: Key, reason: str, by: str, now_us: int) -> None:
        with self.db.tx() as c:
            c.execute("INSERT INTO rec_sensitive VALUES(?,?,?,?,?)", (*key, reason, by, now_us))
            c.execute(
                "INSERT OR REPLACE INTO rec_grants VALUES(?,?,?,?,?,?)",
                (*key, by, f"marked it sensitive: {reason}", by, now_us),
            )

    def grant(self, key: Key, grantee: str, reason: str, by: str, now_us: int) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO rec_grants VALUES(?,?,?,?,?,?)",
                (*key, grantee, reason, by, now_us),
            )

    def request_lift(self, key: Key, by: str, reason: str, now_us: int) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO rec_lift_requests VALUES(?,?,?,?,?)",
                (*key, by, reason, now_us),
            )

    def lift(self, key: Key) -> None:
        """The mark, its grants and the lift request go."""
        with self.db.tx() as c:
            for table in ("rec_sensitive", "rec_grants", "rec_lift_requests"):
                c.execute(f"DELETE FROM {table} WHERE device_id=? AND recording_id=?", key)

    def hold(self, key: Key, reason: str, by: str, now_us: int) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO rec_holds VALUES(?,?,?,?,?)", (*key, reason, by, now_us)
            )

    def release(self, key: Key) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM rec_holds WHERE device_id=? AND recording_id=?", key)
