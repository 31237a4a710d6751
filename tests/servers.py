"""Real servers for the fleet tests: an S3 endpoint with Object Lock (Ceph's radosgw) and a
PostgreSQL server, as pytest fixtures (registered in tests/conftest.py).

- ``s3_service`` (session): an :class:`S3Service`. With ``BWV_S3_ENDPOINT`` (and
  ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally ``AWS_DEFAULT_REGION``) set,
  that server; else ``scripts/ceph-single-node.sh up`` in a fresh directory on a free port,
  and ``down`` at the end of the session.
- ``s3_bucket`` (function): ``(S3Service, bucket)``, a new bucket with Object Lock enabled
  (so versioned). It is not removed afterwards: locked versions cannot be.
- ``pg_server_url`` (session): ``BWV_PG_URL``, else ``scripts/postgres-temp.sh up`` likewise.
- ``pg_url`` (function): a new database on that server; dropped (WITH FORCE) afterwards.

Missing binaries or Python packages skip the test, saying what is missing; with ``CI`` set
they fail it. Each session uses its own directories and ports: several sessions on one
machine do not collide.

What Ceph 16.2 (pacific) radosgw does, probed with botocore 1.44 (details in the report of
issue 15's infra work):
- Object Lock works: a bucket made with ObjectLockEnabledForBucket is versioned; a locked
  version's DeleteObject(VersionId=...) is refused with AccessDenied ("forbidden by object
  lock"); GOVERNANCE gives way to BypassGovernanceRetention, COMPLIANCE does not; shortening
  a COMPLIANCE retention is refused; legal hold works. IfNoneMatch='*' on PutObject is
  ignored (a new version is written): "never replace a key" must be checked by the client.
  Changing GOVERNANCE to COMPLIANCE needs BypassGovernanceRetention; COMPLIANCE never goes
  back. A legal hold refuses deletes, bypass or not. DeleteObjects reports a refusal in
  Errors (HTTP 200). Reading a lock: head_object's ObjectLock* fields (GetObjectLegalHold on
  a never-held version answers ObjectLockConfigurationNotFoundError, GetObjectRetention on an
  unlocked one NoSuchKey).
- Flexible checksums are not supported and silently ignored: ChecksumAlgorithm /
  ChecksumSHA256 on PutObject are accepted even when wrong, HeadObject/GetObject with
  ChecksumMode return no checksum, GetObjectAttributes answers 500. The server does verify
  Content-MD5 (BadDigest) and a SigV4 signed payload's X-Amz-Content-SHA256
  (XAmzContentSHA256Mismatch); botocore signs the payload over http, and over https only with
  ``s3={"payload_signing_enabled": True}``. A single PUT's ETag is the body's MD5; a
  multipart object's ETag (from HeadObject: CompleteMultipartUpload returns an empty ETag) is
  md5(part MD5s)-N.
- botocore >= 1.36 by default sends aws-chunked bodies with a trailing checksum over https,
  which pacific refuses (MissingContentLength): use request_checksum_calculation and
  response_checksum_validation = "when_required" (as :meth:`S3Service.client` does) and never
  pass ChecksumAlgorithm, which brings the trailer back. Over http the default also works.
- Multipart: RGW's minimum part size, 5 MiB, applies (a smaller non-last part: EntityTooSmall).
  CreateMultipartUpload's ObjectLockMode / RetainUntilDate / LegalHold headers are IGNORED
  (the completed object is not locked; s3transfer's upload_file above its threshold alike):
  lock the completed version with PutObjectRetention, or rely on a bucket default retention
  rule (PutObjectLockConfiguration with DefaultRetention, which multipart objects do get).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from simulator.fleet_services import free_port, read_env_file

ROOT = Path(__file__).resolve().parent.parent
CEPH_SCRIPT = ROOT / "scripts" / "ceph-single-node.sh"
PG_SCRIPT = ROOT / "scripts" / "postgres-temp.sh"
CEPH_BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
PG_BIN = Path(os.environ.get("BWV_PG_BIN", "/usr/lib/postgresql/15/bin"))
SCRIPT_TIMEOUT_S = 180


@dataclass(frozen=True)
class S3Service:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The variables a dock reads its S3 settings from."""
        return {
            "BWV_S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self) -> Any:
        """A boto3 S3 client configured as this RGW needs (see the module's notes)."""
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 2},
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=config,
        )


def unavailable(reason: str) -> None:
    """Skip (or, in CI, fail) a test whose server cannot be had here."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def run_script(script: Path, action: str, directory: Path, env: dict[str, str]) -> str:
    """Run one of the server scripts; its messages come back for a failure's text."""
    r = subprocess.run(
        [str(script), action, str(directory)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=SCRIPT_TIMEOUT_S,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{script.name} {action} failed ({r.returncode}):\n{r.stderr}")
    return r.stderr


def missing_modules(*names: str) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


# Stops a session's servers should the session die without its teardown (killed, a hard
# timeout): polls, once a second, whether the pytest process is still there.
WATCHER = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down "$3"'


@dataclass
class ScriptServer:
    """A server started by one of the scripts in a directory of its own; stopped by stop()."""

    script: Path
    directory: Path
    env: dict[str, str]
    watcher: subprocess.Popen[bytes] | None = None

    def watch(self) -> None:
        """Have the server stopped when this process ends, however it ends."""
        self.watcher = subprocess.Popen(
            [
                "sh",
                "-c",
                WATCHER,
                "bwv-test-server-watch",
                str(os.getpid()),
                str(self.script),
                str(self.directory),
            ],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.kill()
            self.watcher.wait()
        run_script(self.script, "down", self.directory, self.env)

    def discard(self) -> None:
        """After a failed start: stop what did start, and remove the directory regardless."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_script_server(
    script: Path, prefix: str, port_var: str, env_file: str
) -> tuple[ScriptServer, dict[str, str]]:
    """`script up` on a free port (a second try on another, should one be taken meanwhile)."""
    error = ""
    for _ in range(2):
        # not under pytest's tmp_path: its parent is closed to the user postgres runs as
        directory = Path(tempfile.mkdtemp(prefix=prefix))
        env = {port_var: str(free_port())}
        server = ScriptServer(script, directory, env)
        try:
            server.watch()
            run_script(script, "up", directory, env)
            return server, read_env_file(directory / env_file)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            error = str(e)
            server.discard()
    pytest.fail(f"could not start a test server: {error}")


def s3_from_environ(environ: dict[str, str] | os._Environ[str]) -> S3Service | None:
    endpoint = environ.get("BWV_S3_ENDPOINT")
    if not endpoint:
        return None
    access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        pytest.fail("BWV_S3_ENDPOINT is set without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return S3Service(endpoint, access, secret, environ.get("AWS_DEFAULT_REGION", "us-east-1"))


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Service]:
    if missing := missing_modules("boto3"):
        unavailable(f"Python packages missing: {', '.join(missing)} (pip install '.[fleet]')")
    given = s3_from_environ(os.environ)
    if given is not None:
        yield given
        return
    if missing := [b for b in CEPH_BINARIES if shutil.which(b) is None]:
        unavailable(
            f"Ceph binaries missing: {', '.join(missing)} "
            "(apt-get install ceph-mon ceph-osd radosgw ceph-common)"
        )
    server, values = start_script_server(CEPH_SCRIPT, "bwv-ceph-", "BWV_RGW_PORT", "s3.env")
    try:
        service = s3_from_environ(values)
        assert service is not None, f"no BWV_S3_ENDPOINT in {server.directory}/s3.env"
        yield service
    finally:
        server.stop()


def new_bucket_name() -> str:
    return f"bwv-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def s3_bucket(s3_service: S3Service) -> tuple[S3Service, str]:
    bucket = new_bucket_name()
    s3_service.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return s3_service, bucket


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    if missing := missing_modules("psycopg"):
        unavailable(f"Python packages missing: {', '.join(missing)} (pip install '.[fleet]')")
    given = os.environ.get("BWV_PG_URL")
    if given:
        yield given
        return
    if missing := [b for b in ("initdb", "pg_ctl") if not (PG_BIN / b).exists()]:
        unavailable(
            f"PostgreSQL binaries missing in {PG_BIN}: {', '.join(missing)} "
            "(apt-get install postgresql-15)"
        )
    server, values = start_script_server(PG_SCRIPT, "bwv-pg-", "BWV_PG_PORT", "pg.env")
    try:
        yield values["BWV_PG_URL"]
    finally:
        server.stop()


def with_database(url: str, dbname: str) -> str:
    """The same server's URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    import psycopg

    dbname = f"bwv_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield with_database(pg_server_url, dbname)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
