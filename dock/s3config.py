"""Where the dock's S3 objects live and how to reach them: ``s3://bucket[/prefix]`` and the
endpoint, region and credentials (from the environment or a credentials file only, never
the command line; the secrets are never in a repr, a message or a log line)."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9._-]+")

# the names the environment and a credentials file use; a file may also use the field names
ENV_NAMES = {
    "BWV_S3_ENDPOINT": "endpoint_url",
    "AWS_DEFAULT_REGION": "region",
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "BWV_S3_PART_SIZE": "part_size",
    "BWV_S3_MULTIPART_THRESHOLD": "multipart_threshold",
    "BWV_S3_UNCLASSIFIED_LOCK_S": "unclassified_lock_s",
}
_INT_FIELDS = ("part_size", "multipart_threshold", "unclassified_lock_s")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix in it ("" or e.g. ``"dock-a/objects"``, no slashes at
    either end)."""

    bucket: str
    prefix: str = ""

    def key(self, key: str) -> str:
        """The S3 key of the store's object ``key``."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket[/prefix]`` as an ``S3Location``; ``ValueError`` saying what is wrong."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an S3 location (s3://bucket[/prefix]): {url!r}")
    rest = url[len("s3://") :]
    if any(c in rest for c in "?#\\ ") or "@" in rest:
        raise ValueError(f"an S3 location is s3://bucket[/prefix], nothing more: {url!r}")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"not an S3 bucket name: {bucket!r} (3 to 63 lower-case letters, digits, dots and"
            " hyphens, starting and ending with a letter or digit)"
        )
    prefix = prefix.rstrip("/")
    parts = prefix.split("/") if prefix else []
    for part in parts:
        if not _PREFIX_PART.fullmatch(part) or part in (".", ".."):
            raise ValueError(
                f"not a usable key prefix: {prefix!r} (path parts of letters, digits, '.', '_'"
                " and '-', no empty part, no '.' or '..')"
            )
    return S3Location(bucket, prefix)


@dataclass(frozen=True)
class S3Settings:
    """How to reach the object store. ``endpoint_url`` None: AWS itself. The credentials
    are left out of repr (and so of str and of any log line that prints the settings)."""

    endpoint_url: str | None
    region: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    part_size: int = 8 << 20
    multipart_threshold: int = 16 << 20
    unclassified_lock_s: int = 31 * 86400  # the governance lock every object gets at write

    def __post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("S3 credentials need both the access key id and the secret key")
        if self.part_size < 1 or self.multipart_threshold < 1 or self.unclassified_lock_s < 1:
            raise ValueError("S3 part size, multipart threshold and lock time must be positive")
        if self.endpoint_url is not None and not re.match(r"https?://", self.endpoint_url):
            raise ValueError(f"an S3 endpoint is an http(s) URL: {self.endpoint_url!r}")


def load_s3_settings(
    environ: Mapping[str, str], credentials_file: Path | None = None
) -> S3Settings:
    """The settings from ``credentials_file`` (if given; TOML, or ``KEY=VALUE`` lines as a
    shell env file has them), what it leaves out from ``environ``. Names: see ``ENV_NAMES``
    (a TOML file may use the field names, at the top or in an ``[s3]`` table). A file
    readable by group or others is refused (``PermissionError``): it holds a secret."""
    values: dict[str, Any] = {}
    for name, fld in ENV_NAMES.items():
        if environ.get(name):
            values[fld] = environ[name]
    if credentials_file is not None:
        values.update(_read_credentials(Path(credentials_file)))
    for fld in _INT_FIELDS:
        if fld in values:
            try:
                values[fld] = int(values[fld])
            except (TypeError, ValueError):
                raise ValueError(f"S3 setting {fld} is not a whole number") from None
    for fld in ("endpoint_url", "region", "access_key", "secret_key"):
        if fld in values and not isinstance(values[fld], str):
            raise ValueError(f"S3 setting {fld} is not a string")
    values.setdefault("endpoint_url", None)
    values.setdefault("region", "us-east-1")
    return S3Settings(**values)


def _read_credentials(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OSError(f"cannot read the S3 credentials file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"the S3 credentials file {path} is not a regular file")
        if mode & 0o077:
            raise PermissionError(
                f"the S3 credentials file {path} is readable by others (mode"
                f" {stat.S_IMODE(mode):04o}); it holds a secret: chmod 600 {path}"
            )
        text = f.read().decode("utf-8")
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        doc = _env_lines(path, text)
    if isinstance(doc.get("s3"), dict):
        doc = doc["s3"]
    known = set(ENV_NAMES.values())
    out: dict[str, Any] = {}
    for name, value in doc.items():
        fld = ENV_NAMES.get(name, name)
        if fld not in known:
            # the name alone: a mistyped key must not print a secret value
            raise ValueError(f"the S3 credentials file {path} has an unknown setting {name!r}")
        out[fld] = value
    return out


def _env_lines(path: Path, text: str) -> dict[str, Any]:
    """``KEY=VALUE`` lines (``export`` and quotes allowed, ``#`` comments)."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, eq, value = line.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise ValueError(f"the S3 credentials file {path}: line {n} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out
