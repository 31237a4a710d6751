"""Where a dock's store lives. The embedded default: a SQLite index and a folder of objects
in the store directory itself. For many docks serving one agency: the objects in an S3
bucket with Object Lock (AWS S3, or Ceph's RADOS Gateway on the agency's own machines) and
the index in one PostgreSQL database that every dock shares, named in the store directory's
``dock.toml`` (written by ``bwv dock serve --store s3://... --index postgresql://...
--state DIR``; every other ``bwv dock`` command given ``--store DIR`` then finds them)::

    [store]
    objects = "s3://bwv-evidence/station-7"
    index = "postgresql://bwv@db.agency.example:5432/bwv"
    s3_credentials = "/etc/bwv/s3.credentials"   # optional: else the environment

(A top-level ``tpm_ca = [...]`` before the table names the TPM makers' CAs the dock trusts:
dock/tpm_trust.py.)

No secret is ever in this file, on a command line or in a log: the S3 keys come from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``; ``BWV_S3_ENDPOINT`` for a
gateway other than AWS) or from the 0600 file ``s3_credentials`` names; PostgreSQL's
password from libpq's own ``PGPASSWORD`` or ``PGPASSFILE`` (``~/.pgpass``). An index URL
with a password in it is refused.

The store directory keeps what is the dock machine's own: the dock key (the agency store's
identity: every dock of one store has a copy of the same key, and a dock whose key did not
sign the shared log is refused), TLS, the staging of uploads under way and the log's tree,
a cache of the index."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from nacl.signing import SigningKey

from crypto.durable import write_atomic

if TYPE_CHECKING:
    from dock.store import ObjectStore
    from dock.store_sqlite import DirectoryStore

BACKENDS_FILE = "dock.toml"


class BackendsError(Exception):
    """The store's backends cannot be used as given; the text says why, in one line."""


@dataclass(frozen=True)
class Backends:
    objects: str | None = None  # "s3://bucket[/prefix]"; None: STORE/objects
    index: str | None = None  # "postgresql://..."; None: STORE/index.sqlite3
    s3_credentials: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.objects is None and self.index is None

    def describe(self) -> dict[str, str]:
        """For ``serve``'s start lines and ``status``: no secret is in these."""
        return {
            "objects": self.objects or "the store folder",
            "index": self.index or "the store folder (SQLite)",
        }


def check_index_url(url: str) -> str:
    """A PostgreSQL URL without a password, as given; else ``BackendsError``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise BackendsError(
            f"--index {parts.scheme or url!r}: give a PostgreSQL URL, "
            "postgresql://USER@HOST[:PORT]/DATABASE"
        )
    if parts.password is not None or "password=" in parts.query:
        raise BackendsError(
            "--index: the URL holds a password, which `ps` and the logs would show: put it "
            "in PGPASSFILE (~/.pgpass, mode 0600) or PGPASSWORD instead"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise BackendsError("--index: the URL names no host (postgresql://USER@HOST/DATABASE)")
    return url


def check_objects_url(url: str) -> str:
    from dock.s3config import parse_s3_url

    try:
        parse_s3_url(url)
    except ValueError as exc:
        raise BackendsError(f"--store: {exc}") from None
    return url


def load_backends(store_dir: Path) -> Backends:
    """The backends ``STORE/dock.toml`` names (none: the embedded store)."""
    path = Path(store_dir) / BACKENDS_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Backends()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BackendsError(f"{path}: cannot read it ({exc})") from None
    table = raw.get("store", {})
    if not isinstance(table, dict) or set(table) - {"objects", "index", "s3_credentials"}:
        raise BackendsError(f"{path}: [store] takes objects, index and s3_credentials only")
    objects, index, creds = table.get("objects"), table.get("index"), table.get("s3_credentials")
    if not all(v is None or isinstance(v, str) for v in (objects, index, creds)):
        raise BackendsError(f"{path}: objects, index and s3_credentials are strings")
    if objects is not None:
        check_objects_url(objects)
    if index is not None:
        check_index_url(index)
    return Backends(objects, index, Path(creds) if creds else None)


def _toml(b: Backends) -> str:
    lines = ["[store]"]
    for name, value in (("objects", b.objects), ("index", b.index)):
        if value is not None:
            lines.append(f"{name} = {_quoted(value)}")
    if b.s3_credentials is not None:
        lines.append(f"s3_credentials = {_quoted(str(b.s3_credentials))}")
    return "\n".join(lines) + "\n"


def backends_toml(b: Backends) -> str:
    """The ``[store]`` table of ``dock.toml`` for ``b`` ("" for the embedded store)."""
    return "" if b.embedded else _toml(b)


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bind_backends(store_dir: Path, wanted: Backends) -> Backends:
    """Write ``STORE/dock.toml`` for ``wanted`` (0600), or check that the one there says the
    same: a store directory serves one agency store, never two by turns."""
    from dock.tpm_trust import tpm_ca_paths, tpm_ca_toml

    have = load_backends(store_dir)
    if have == wanted:
        return have
    if not have.embedded or not _may_bind(store_dir, wanted):
        raise BackendsError(
            f"{store_dir} already serves {have.describe()['objects']} with "
            f"{have.describe()['index']}: give a new --state folder for another store"
        )
    try:
        tpm = tpm_ca_toml([str(p) for p in tpm_ca_paths(store_dir)])  # kept: the dock's own
    except ValueError as exc:
        raise BackendsError(str(exc)) from None
    write_atomic(Path(store_dir) / BACKENDS_FILE, (tpm + _toml(wanted)).encode(), mode=0o600)
    return wanted


def _may_bind(store_dir: Path, wanted: Backends) -> bool:
    """A folder with no ``dock.toml`` is the embedded store: it may take a shared index only
    while it has no index of its own, and S3 objects only while it holds no object."""
    from dock.store_index import INDEX_FILE

    root = Path(store_dir)
    if wanted.index is not None and (root / INDEX_FILE).exists():
        return False
    objects = root / "objects"
    return not (objects.is_dir() and any(p.is_file() for p in objects.rglob("*")))


def open_store(
    store_dir: Path, key: SigningKey, environ: Mapping[str, str] | None = None
) -> DirectoryStore:
    """The store ``store_dir`` names: embedded, or S3 objects and a shared PostgreSQL
    index; ``BackendsError`` (one line) if the backends cannot be reached or belong to
    another dock key."""
    from dock.store import StoreError
    from dock.store_sqlite import DirectoryStore

    b = load_backends(store_dir)
    if b.embedded:
        return DirectoryStore(store_dir, key)
    objects = _s3_objects(b, os.environ if environ is None else environ)
    try:
        store = DirectoryStore(store_dir, key, objects=objects, index=b.index)
    except StoreError as exc:
        raise BackendsError(f"the index {b.index}: {exc}") from None
    try:
        check_dock_key(store, key)
    except BackendsError:
        store.close()
        raise
    return store


def _s3_objects(b: Backends, environ: Mapping[str, str]) -> ObjectStore | None:
    if b.objects is None:
        return None
    from dock.objects_s3 import ObjectStoreError, S3Objects
    from dock.s3config import load_s3_settings, parse_s3_url

    try:
        settings = load_s3_settings(environ, b.s3_credentials)
        objects = S3Objects(parse_s3_url(b.objects), settings)
        objects.ensure_bucket()
    except (ValueError, OSError, ObjectStoreError) as exc:
        raise BackendsError(f"the object store {b.objects}: {exc}") from None
    return objects


def check_dock_key(store: DirectoryStore, key: SigningKey) -> None:
    """A shared index already written by another dock key belongs to another store: the
    log would fork between two signers. Each dock of one store has a copy of its key."""
    from dock.custody import verify_custody_log

    first = store.custody_log(after=-1, limit=1)
    if first and verify_custody_log(first, bytes(key.verify_key)):
        raise BackendsError(
            "the shared index was written by another dock key: copy that store's dock.key "
            "(mode 0600) into this dock's --state folder"
        )
