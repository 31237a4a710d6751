"""``bwv sim raid --dock-store s3``: the raid's dock keeps its store on the servers many docks
share, an S3 bucket with Object Lock (Ceph's RADOS Gateway here) and a PostgreSQL index,
instead of a folder. Each raid gets a bucket and a database of its own (a raid's dock key is
new each time, and a shared index belongs to one dock key), named in ``OUT/dock/dock.toml``.

The servers come from the environment ``scripts/fleet-services.sh up`` writes
(``source /tmp/bwv-fleet/fleet.env``): ``BWV_S3_ENDPOINT`` and the ``AWS_*`` keys,
``BWV_PG_URL`` (a PostgreSQL server the raid may create a database on)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dock.backends import Backends, BackendsError, bind_backends, check_index_url

FLEET_HINT = (
    "start the servers with `scripts/fleet-services.sh up`, then "
    "`source /tmp/bwv-fleet/fleet.env` (README, 'Many docks')"
)


class FleetUnavailable(Exception):
    """The raid cannot use the shared servers; the text says why and what to do."""


def fresh_database(server_url: str) -> str:
    """A new database on the PostgreSQL server ``server_url``: its URL."""
    try:
        import psycopg
    except ImportError:
        raise FleetUnavailable("--dock-store s3 needs pip install 'bwv[fleet]'") from None
    name = f"bwv_sim_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as db:
            db.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FleetUnavailable(f"PostgreSQL at BWV_PG_URL: {first}; {FLEET_HINT}") from None
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def raid_backends(environ: Mapping[str, str]) -> Backends:
    """A fresh bucket and database for one raid's dock, on the servers the environment
    names."""
    server = environ.get("BWV_PG_URL")
    if not server or not environ.get("AWS_ACCESS_KEY_ID"):
        raise FleetUnavailable(f"--dock-store s3: no BWV_PG_URL or S3 keys; {FLEET_HINT}")
    try:
        check_index_url(server)
    except BackendsError as exc:
        raise FleetUnavailable(str(exc)) from None
    index = fresh_database(server)
    return Backends(objects=f"s3://bwv-sim-{secrets.token_hex(6)}", index=index)


def prepare_fleet_dock(dock_dir: Path, environ: Mapping[str, str]) -> Backends:
    """``dock_dir`` bound to a fresh bucket and database (its ``dock.toml``)."""
    backends = raid_backends(environ)
    dock_dir.mkdir(parents=True, exist_ok=True)
    try:
        return bind_backends(dock_dir, backends)
    except BackendsError as exc:
        raise FleetUnavailable(str(exc)) from None
