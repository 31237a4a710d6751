"""The dock store (``DirectoryStore``), implementing ``dock.store.Store`` (documented there):
by default the embedded one, a SQLite index beside a directory of objects; with ``index`` a
``postgresql://`` URL, one index shared by every dock of the agency (and, usually, a shared
object store). This module holds the devices, enrollment tokens and nonces;
dock/store_uploads.py and dock/store_commit.py the uploads and segments,
dock/store_reports.py the devices' reports, dock/store_index.py the index they share."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from dock.protocol import Code, key_id, sha256_hex
from dock.store import DeviceRecord, ObjectStore, StoreError
from dock.store_index import INDEX_FILE
from dock.store_reports import DeviceReports
from dock.store_retire import SegmentRetirement

__all__ = ["INDEX_FILE", "DirectoryStore"]

NONCE_PURGE_EVERY_US = 60 * 1_000_000
KEY_STORES = ("file", "tpm")


class DirectoryStore(SegmentRetirement, DeviceReports):
    """The store: ``root/staging/`` (this dock's), the index (``root/index.sqlite3``, or the
    PostgreSQL database ``index`` names: dock.sqldb.open_database) and the objects
    (``root/objects/`` unless given). Its methods are ``dock.store.Store``'s, documented
    there, and not restated here."""

    def __init__(
        self,
        root: Path,
        dock_key: SigningKey,
        objects: ObjectStore | None = None,
        index: Path | str | None = None,
    ) -> None:
        super().__init__(root, dock_key, objects, index)
        self._purge_nonces_at_us = 0

    # -- devices

    def get_device(self, device_id: str) -> DeviceRecord | None:
        rows = self._q(
            "SELECT device_id, public_key, key_id, enrolled_at_us, revoked_at_us,"
            " revoke_reason, time_offset_us, time_synced_at_us, key_store, attested_by"
            " FROM devices"
            " WHERE device_id=?",
            (device_id,),
        )
        return DeviceRecord(*rows[0]) if rows else None

    def list_devices(self) -> list[DeviceRecord]:
        return [
            d
            for (i,) in self._q("SELECT device_id FROM devices ORDER BY device_id")
            if (d := self.get_device(i))
        ]

    def add_token(
        self, token_sha256: str, device_id: str | None, now_us: int, expires_at_us: int, actor: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens(token_sha256, device_id, issued_at_us,"
                " expires_at_us) VALUES(?,?,?,?)",
                (token_sha256, device_id, now_us, expires_at_us),
            )
            self._append_log(
                db,
                actor,
                "token_issued",
                now_us,
                device_id=device_id,
                detail={"expires_at_us": expires_at_us, "token_id": token_sha256[:16]},
            )

    def enroll(
        self,
        device_id: str,
        public_key: bytes,
        token_sha256: str,
        now_us: int,
        *,
        key_store: str = "file",
        attested_by: str | None = None,
    ) -> DeviceRecord:
        if key_store not in KEY_STORES:
            raise ValueError(f"key_store is one of {KEY_STORES}")
        with self._tx() as db:
            row = db.execute(
                "SELECT device_id, expires_at_us, used_at_us FROM tokens WHERE token_sha256=?",
                (token_sha256,),
            ).fetchone()
            if row is None or row[2] is not None or row[1] < now_us:
                raise StoreError("enrollment token unknown, used or expired", 401, Code.BAD_TOKEN)
            if row[0] is not None and row[0] != device_id:
                raise StoreError(
                    "enrollment token was issued for another device", 403, Code.BAD_TOKEN
                )
            existing = db.execute(
                "SELECT public_key, revoked_at_us FROM devices WHERE device_id=?", (device_id,)
            ).fetchone()
            if existing is not None:
                if existing[1] is not None:
                    raise StoreError(
                        "device is revoked; enrol it under a new id", 403, Code.REVOKED
                    )
                raise StoreError("device id already enrolled", 409, Code.ENROLLED)
            kid = key_id(public_key)
            db.execute(
                "UPDATE tokens SET used_at_us=?, used_by=? WHERE token_sha256=?",
                (now_us, device_id, token_sha256),
            )
            db.execute(
                "INSERT INTO devices(device_id, public_key, key_id, enrolled_at_us,"
                " key_store, attested_by) VALUES(?,?,?,?,?,?)",
                (device_id, public_key, kid, now_us, key_store, attested_by),
            )
            self._append_log(
                db,
                "technician",
                "enrolled",
                now_us,
                device_id=device_id,
                sha256=sha256_hex(public_key),
                detail={
                    "key_id": kid,
                    "token_id": token_sha256[:16],
                    "key_store": key_store,
                    "attested_by": attested_by,
                },
            )
        rec = self.get_device(device_id)
        assert rec is not None
        return rec

    def revoke(self, device_id: str, reason: str, actor: str, now_us: int) -> DeviceRecord:
        with self._tx() as db:
            row = db.execute(
                "SELECT revoked_at_us FROM devices WHERE device_id=?", (device_id,)
            ).fetchone()
            if row is None:
                raise StoreError("no such device", 404, Code.NOT_FOUND)
            if row[0] is None:
                db.execute(
                    "UPDATE devices SET revoked_at_us=?, revoke_reason=? WHERE device_id=?",
                    (now_us, reason, device_id),
                )
                self._append_log(
                    db, actor, "revoked", now_us, device_id=device_id, detail={"reason": reason}
                )
        rec = self.get_device(device_id)
        assert rec is not None
        return rec

    def record_time_sync(self, device_id: str, offset_us: int, now_us: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE devices SET time_offset_us=?, time_synced_at_us=? WHERE device_id=?",
                (offset_us, now_us, device_id),
            )
            self._append_log(
                db,
                f"device:{device_id}",
                "time_sync",
                now_us,
                device_id=device_id,
                detail={"offset_us": offset_us},
            )

    def use_nonce(self, device_id: str, nonce: str, now_us: int, keep_until_us: int) -> bool:
        # not waiting for the disk: the request's own durable commit, after this one, makes
        # its nonce durable with it (Database.tx; dock/README.md, "nonce")
        with self._tx(durable=False) as db:
            if now_us >= self._purge_nonces_at_us:  # expired nonces go, once a minute
                db.execute("DELETE FROM nonces WHERE keep_until_us < ?", (now_us,))
                self._purge_nonces_at_us = now_us + NONCE_PURGE_EVERY_US
            cur = db.execute(
                "INSERT OR IGNORE INTO nonces(device_id, nonce, keep_until_us) VALUES(?,?,?)",
                (device_id, nonce, keep_until_us),
            )
            return cur.rowcount == 1

    # -- uploads
