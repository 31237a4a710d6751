"""The servers a many-docks store runs on, for the bench and the simulator: the ones the
environment names (``BWV_S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``BWV_PG_URL``, as ``source /tmp/bwv-fleet/fleet.env`` sets them), or else started for the
time of a block by ``scripts/fleet-services.sh`` (Ceph's RADOS Gateway on memstore and a
throwaway PostgreSQL, from Debian's packages) and stopped after it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fleet-services.sh"
NEEDED = ("BWV_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BWV_PG_URL")


class FleetServicesError(Exception):
    """The servers could not be started; the text says why (one line, and what to do)."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` and quotes allowed), as the scripts write them."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        env[key.strip()] = value.strip().strip("'\"")
    return env


def free_port() -> int:
    """A port free on loopback now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_fleet_services() -> Iterator[dict[str, str]]:
    """The servers' environment while the block runs, also set in ``os.environ`` (the dock
    reads its S3 keys from there) and put back after. Their folder is a new one under /tmp,
    open to the ``postgres`` user the database server runs as (mode 0755; no secret there
    but the throwaway S3 keys' 0600 file)."""
    if all(os.environ.get(k) for k in NEEDED):
        yield dict(os.environ)
        return
    if not SCRIPT.is_file():
        raise FleetServicesError(f"no {SCRIPT}: run from a clone of bwv")
    work = Path(tempfile.mkdtemp(prefix="bwv-fleet-"))
    work.chmod(0o755)
    ports = {"BWV_RGW_PORT": str(free_port()), "BWV_PG_PORT": str(free_port())}
    up = subprocess.run(
        [str(SCRIPT), "up", str(work)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **ports},  # ports of their own: other servers may be up here
    )
    try:
        if up.returncode != 0:
            tail = (up.stderr or up.stdout).strip().splitlines()[-3:]
            raise FleetServicesError(
                "scripts/fleet-services.sh up failed (needs Debian's ceph-mon, ceph-osd, "
                "ceph-mgr, radosgw and postgresql): " + " | ".join(tail)
            )
        env = read_env_file(work / "fleet.env")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield dict(os.environ)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        subprocess.run([str(SCRIPT), "down", str(work)], capture_output=True, check=False)
