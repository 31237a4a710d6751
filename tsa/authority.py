"""The TSA's state folder and its replies (``bwv tsa init``, ``bwv tsa serve``).

A state folder ``DIR`` holds:

- ``ca.pem``: the test CA's certificate (the trust anchor a verifier is given);
- ``tsa.pem``: the TSA's certificate, issued by that CA, with the critical extended key usage
  timeStamping (RFC 3161 2.3); ``tsa.key``: its private key (PKCS#8 PEM, mode 0600);
- ``openssl.cnf``: the ``openssl ts`` configuration (section ``bwv_tsa``: policy, digests,
  accuracy, microsecond genTime); an operator may edit it, the server honours it;
- ``serial``: the serial number of the last token issued (hexadecimal, as ``openssl ts``
  writes it).

The CA's key is not kept: the CA certifies this one TSA and nothing else.

``Authority.reply(query)`` answers one query, one at a time: it reserves the next serial
number durably first (write ahead: fsync and atomic rename, crypto/durable.py), then runs
``openssl ts -reply`` in a scratch folder of its own with a copy of the configuration whose
serial file is a scratch copy. A kill -9 at any moment therefore loses at most an unused
serial number, never reuses one, and never leaves a torn state file (openssl rewrites its
serial file in place, without fsync: it only ever touches the scratch copy).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crypto.durable import write_atomic

CA_FILE, CERT_FILE, KEY_FILE, CONFIG_FILE, SERIAL_FILE = (
    "ca.pem",
    "tsa.pem",
    "tsa.key",
    "openssl.cnf",
    "serial",
)
STATE_FILES = (CA_FILE, CERT_FILE, KEY_FILE, CONFIG_FILE, SERIAL_FILE)
WORK_DIR = "work"  # scratch folders, one per reply; emptied at start
LOCK_FILE = "serve.lock"
SECTION = "bwv_tsa"
# the policy of bwv's own TSA: under 2.999, the arc ITU-T X.660 reserves for examples (a
# test TSA's tokens should never be mistaken for a qualified service's)
POLICY_OID = "2.999.3161.1"
OPENSSL_TIMEOUT_S = 20.0


class TsaStateError(Exception):
    """The state folder cannot be used (missing, partial, unreadable); one line."""


class TsaBusy(TsaStateError):
    """Another ``bwv tsa serve`` holds this state folder."""


class ReplyError(Exception):
    """``openssl ts -reply`` made no reply (an unreadable key or configuration: its message,
    one line). A query it cannot read is not one: openssl answers it with a rejection."""


def openssl_config(state_dir: Path) -> str:
    """The ``openssl ts`` configuration for a TSA whose files are in ``state_dir``."""
    d = str(Path(state_dir).resolve())
    if any(c in d for c in "$\n\"'\\"):
        raise TsaStateError(f"{d}: a TSA state folder's path may not contain $, quotes or \\")
    return f"""# bwv's RFC 3161 time-stamping authority: `openssl ts -reply -config THIS`
# (bwv tsa serve reads this file for every reply; only `serial` is redirected, to a scratch
# copy of {SERIAL_FILE}, which bwv keeps durably itself)
[ tsa ]
default_tsa = {SECTION}

[ {SECTION} ]
dir = {d}
serial = $dir/{SERIAL_FILE}
signer_cert = $dir/{CERT_FILE}
signer_key = $dir/{KEY_FILE}
signer_digest = sha256
default_policy = {POLICY_OID}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 6
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl_binary() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise TsaStateError(
            "the openssl command is not installed (apt-get install openssl): "
            "the TSA signs its tokens with `openssl ts -reply`"
        )
    return found


@dataclass(frozen=True)
class TsaState:
    """A TSA state folder's files."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def ca_pem(self) -> bytes:
        return self.path(CA_FILE).read_bytes()

    def missing(self) -> list[str]:
        return [n for n in STATE_FILES if not self.path(n).is_file()]

    def check(self) -> None:
        """A TsaStateError unless the folder holds a whole TSA."""
        if self.dir.exists() and not self.dir.is_dir():
            raise TsaStateError(f"{self.dir}: is a file, not a TSA state folder")
        if not self.dir.is_dir():
            raise TsaStateError(f"{self.dir}: no such folder (run `bwv tsa init --state DIR`)")
        missing = self.missing()
        if missing:
            raise TsaStateError(
                f"{self.dir}: not a TSA state folder (missing {', '.join(missing)}; "
                "run `bwv tsa init --state DIR` on a new folder)"
            )

    def last_serial(self) -> int:
        text = self.path(SERIAL_FILE).read_text(encoding="ascii").strip()
        try:
            return int(text, 16)
        except ValueError:
            raise TsaStateError(
                f"{self.path(SERIAL_FILE)}: not a hexadecimal serial number"
            ) from None


def write_serial(path: Path, serial: int) -> None:
    """``serial`` in ``openssl ts``'s format (even-length upper-case hex), durably."""
    text = f"{serial:X}"
    write_atomic(path, (text.zfill(len(text) + len(text) % 2) + "\n").encode("ascii"))


class Authority:
    """Replies to time-stamp queries from one state folder, one at a time.

    ``lock()`` takes the folder for this process (an exclusive ``flock`` on ``serve.lock``,
    released by the kernel when the process dies, even by kill -9).
    """

    def __init__(self, state_dir: Path, timeout_s: float = OPENSSL_TIMEOUT_S) -> None:
        self.state = TsaState(Path(state_dir))
        self.state.check()
        self.openssl = openssl_binary()
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._lock_fd: int | None = None

    def lock(self) -> None:
        fd = os.open(self.state.path(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TsaBusy(
                f"{self.state.dir}: another `bwv tsa serve` is answering from this folder"
            ) from None
        self._lock_fd = fd
        work = self.state.path(WORK_DIR)
        shutil.rmtree(work, ignore_errors=True)  # what a killed server left
        work.mkdir(mode=0o700, exist_ok=True)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def reserve_serial(self) -> int:
        """The next serial number, recorded durably before any token carries it."""
        serial = self.state.last_serial() + 1
        write_serial(self.state.path(SERIAL_FILE), serial)
        return serial

    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp ``openssl ts -reply`` makes for ``query`` (a granted token
        or a refusal with its PKIStatus): raises ReplyError when it makes none."""
        with self._lock, self._scratch() as work:
            serial = self.reserve_serial()
            write_serial(work / SERIAL_FILE, serial - 1)  # openssl adds one
            (work / CONFIG_FILE).write_text(self._config_for(work), encoding="utf-8")
            (work / "query.tsq").write_bytes(query)
            return self._run_openssl(work)

    def _config_for(self, work: Path) -> str:
        """DIR/openssl.cnf with ``dir`` where the folder is now (it may have moved since
        init) and ``serial`` the scratch copy in ``work``."""
        config = self.state.path(CONFIG_FILE).read_text(encoding="utf-8")
        here = str(self.state.dir.resolve())
        config = re.sub(r"(?m)^[ \t]*dir[ \t]*=.*$", lambda _: f"dir = {here}", config)
        serial = str(work / SERIAL_FILE)
        config, n = re.subn(r"(?m)^[ \t]*serial[ \t]*=.*$", lambda _: f"serial = {serial}", config)
        if n == 0:
            raise ReplyError(f"{self.state.path(CONFIG_FILE)}: no `serial =` line")
        return config

    def _run_openssl(self, work: Path) -> bytes:
        argv = [
            self.openssl, "ts", "-reply", "-config", str(work / CONFIG_FILE),
            "-section", SECTION, "-queryfile", str(work / "query.tsq"),
            "-out", str(work / "reply.tsr"),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.timeout_s, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise ReplyError(f"openssl ts -reply took over {self.timeout_s:g} s") from None
        out = work / "reply.tsr"
        if done.returncode == 0 and out.is_file() and out.stat().st_size > 0:
            return out.read_bytes()
        lines = done.stderr.decode("utf-8", "replace").splitlines()
        errors = [ln.strip() for ln in lines if ":error:" in ln and "no value" not in ln]
        said = errors[-1] if errors else next((ln for ln in lines if ln.strip()), "no message")
        raise ReplyError(f"openssl ts -reply failed (exit {done.returncode}): {said}")

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[Path]:
        work = self.state.path(WORK_DIR)
        work.mkdir(mode=0o700, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=work))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
