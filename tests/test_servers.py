"""The fleet tests' servers: the scripts that start them (up, env, down), and what the
S3 store stands on: a locked object version cannot be deleted, the server refuses."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import (
    CEPH_BINARIES,
    CEPH_SCRIPT,
    PG_BIN,
    PG_SCRIPT,
    S3Service,
    free_port,
    read_env_file,
    run_script,
    s3_from_environ,
    unavailable,
    with_database,
)

SCRIPTS = [CEPH_SCRIPT, PG_SCRIPT]


def test_server_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        unavailable("shellcheck not installed")
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_unavailable_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no ceph"):
        unavailable("no ceph")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no ceph"):
        unavailable("no ceph")


def test_service_from_environment_and_its_repr_hides_the_secret():
    s = s3_from_environ(
        {"BWV_S3_ENDPOINT": "http://h:1", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    )
    assert s == S3Service("http://h:1", "AK", "SK", "us-east-1")
    assert "SK" not in repr(s) and "AK" not in repr(s)
    assert s3_from_environ({}) is None
    with pytest.raises(pytest.fail.Exception, match="AWS_SECRET_ACCESS_KEY"):
        s3_from_environ({"BWV_S3_ENDPOINT": "http://h:1", "AWS_ACCESS_KEY_ID": "AK"})
    assert with_database("postgresql://u@h:5/postgres?x=1", "d") == "postgresql://u@h:5/d?x=1"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_ceph_script_up_env_down(tmp_path):
    if missing := [b for b in CEPH_BINARIES if shutil.which(b) is None]:
        unavailable(f"Ceph binaries missing: {', '.join(missing)}")
    directory = tmp_path / "ceph"
    env = {"BWV_RGW_PORT": str(free_port())}
    try:
        said = run_script(CEPH_SCRIPT, "up", directory, env)
        assert "starting radosgw" in said and "up in" in said
        env_file = directory / "s3.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = read_env_file(env_file)
        assert values["BWV_S3_ENDPOINT"] == f"http://127.0.0.1:{env['BWV_RGW_PORT']}"
        assert values["AWS_DEFAULT_REGION"] == "us-east-1"
        assert len(values["AWS_SECRET_ACCESS_KEY"]) == 40
        r = subprocess.run([str(CEPH_SCRIPT), "env", str(directory)], capture_output=True)
        assert r.returncode == 0 and r.stdout == env_file.read_bytes()
        assert answers(values["BWV_S3_ENDPOINT"])
        again = run_script(CEPH_SCRIPT, "up", directory, env)
        assert "already up" in again
        assert read_env_file(env_file) == values  # the same cluster, the same user
        pids = [int(p.read_text()) for p in (directory / "run").glob("*.pid")]
        assert len(pids) == 3  # mon, osd, radosgw
    finally:
        run_script(CEPH_SCRIPT, "down", directory, env)
    assert not directory.exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not answers(values["BWV_S3_ENDPOINT"])


def test_postgres_script_up_env_down():
    import tempfile

    import psycopg

    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL missing: no {PG_BIN}/initdb")
    # not under tmp_path: its parent is closed to the user postgres
    directory = Path(tempfile.mkdtemp(prefix="bwv-pg-test-"))
    env = {"BWV_PG_PORT": str(free_port())}
    try:
        said = run_script(PG_SCRIPT, "up", directory, env)
        assert "up in" in said
        url = read_env_file(directory / "pg.env")["BWV_PG_URL"]
        assert url.startswith("postgresql://") and f"127.0.0.1:{env['BWV_PG_PORT']}/" in url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        assert "already up" in run_script(PG_SCRIPT, "up", directory, env)
    finally:
        run_script(PG_SCRIPT, "down", directory, env)
    assert not directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)


def test_pg_url_is_a_fresh_database_of_its_own(pg_url, pg_server_url):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert name.startswith("bwv_test_")
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'").fetchone()
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(pg_server_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert row == (1,)


def client_error_code(excinfo: pytest.ExceptionInfo[Exception]) -> str:
    return str(excinfo.value.response["Error"]["Code"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_a_locked_object_version_cannot_be_deleted(s3_bucket, mode):
    """Issue 15's first test, at the server: what the dock's S3 store relies on."""
    from botocore.exceptions import ClientError

    service, bucket = s3_bucket
    s3 = service.client()
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"
    }
    # a short lock: the bucket may be on a server that outlives this session
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    body = os.urandom(1024)
    put = s3.put_object(
        Bucket=bucket, Key="seg", Body=body, ObjectLockMode=mode, ObjectLockRetainUntilDate=until
    )
    version = put["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="seg", VersionId=version)
    assert head["ObjectLockMode"] == mode
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="seg", VersionId=version)
    assert client_error_code(refused) == "AccessDenied"
    # a delete without a version only hides it behind a delete marker
    assert s3.delete_object(Bucket=bucket, Key="seg")["DeleteMarker"] is True
    got = s3.get_object(Bucket=bucket, Key="seg", VersionId=version)["Body"].read()
    assert got == body
    if mode == "GOVERNANCE":  # the one way past a governance lock: the server honours it
        s3.delete_object(
            Bucket=bucket, Key="seg", VersionId=version, BypassGovernanceRetention=True
        )
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="seg", VersionId=version)
    else:
        with pytest.raises(ClientError) as still:
            s3.delete_object(
                Bucket=bucket, Key="seg", VersionId=version, BypassGovernanceRetention=True
            )
        assert client_error_code(still) == "AccessDenied"


def test_an_unlocked_version_can_be_deleted(s3_bucket):
    """The refusal above is the lock's doing: without one the same delete succeeds."""
    service, bucket = s3_bucket
    s3 = service.client()
    version = s3.put_object(Bucket=bucket, Key="plain", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="plain", VersionId=version)
    listed = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert all(v["VersionId"] != version for v in listed)


def test_multipart_upload_locked_after_completion(s3_bucket):
    """Multipart works with 8 MiB parts; this RGW ignores lock headers on
    CreateMultipartUpload, so the lock is put on the completed version (PutObjectRetention)."""
    from botocore.exceptions import ClientError

    service, bucket = s3_bucket
    s3 = service.client()
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    parts_data = [os.urandom(8 << 20), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")
    parts = []
    for n, data in enumerate(parts_data, 1):
        r = s3.upload_part(
            Bucket=bucket, Key="big", UploadId=up["UploadId"], PartNumber=n, Body=data
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    version = s3.head_object(Bucket=bucket, Key="big")["VersionId"]
    s3.put_object_retention(
        Bucket=bucket,
        Key="big",
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    head = s3.head_object(Bucket=bucket, Key="big", VersionId=version)
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(parts_data)
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="big", VersionId=version)
    assert client_error_code(refused) == "AccessDenied"
