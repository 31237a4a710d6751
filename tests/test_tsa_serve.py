"""`bwv tsa init`, `bwv tsa serve` and `bwv tsa check` as an operator runs them; the TSA's
HTTP side; and the TSA surviving kill -9 at random moments."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import select
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bwv.cli import main
from tsa.client import TsaClient, TsaError
from tsa.testing import running_tsa
from tsa.verify import token_serial, verify_token

ROOT = Path(__file__).resolve().parent.parent
QUERY = {"Content-Type": "application/timestamp-query"}


def bwv(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def init(state: Path) -> None:
    code, out, err = bwv("tsa", "init", "--state", str(state))
    assert code == 0, err


@contextmanager
def serve_process(state: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`bwv tsa serve` in its own process on a free port: (the process, its URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bwv.cli", "tsa", "serve", "--state", str(state)]
        + ["--listen", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"answering on (http://\S+)", line)
        assert m, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_init_makes_a_tsa_once(tmp_path: Path) -> None:
    state = tmp_path / "tsa"
    code, out, _ = bwv("tsa", "init", "--state", str(state))
    assert code == 0
    assert f"{state}/ca.pem" in out and "fingerprint" in out
    for name in ("ca.pem", "tsa.pem", "tsa.key", "openssl.cnf", "serial"):
        assert (state / name).is_file(), name
    assert stat.S_IMODE((state / "tsa.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    ca = (state / "ca.pem").read_bytes()
    code, out, _ = bwv("tsa", "init", "--json", "--state", str(state))
    assert code == 0
    said = json.loads(out)
    assert said["created"] is False and (state / "ca.pem").read_bytes() == ca  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name != "tsa"]  # no build folder left


def test_the_certificate_is_a_tsas(tmp_path: Path) -> None:
    """openssl itself agrees: the TSA's certificate chains to the CA for timestamp signing."""
    init(tmp_path / "tsa")
    r = subprocess.run(
        ["openssl", "verify", "-purpose", "timestampsign", "-x509_strict", "-CAfile"]
        + [str(tmp_path / "tsa" / "ca.pem"), str(tmp_path / "tsa" / "tsa.pem")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr


def test_serve_answers_check_and_stops_on_sigterm(tmp_path: Path) -> None:
    init(tmp_path / "tsa")
    init(tmp_path / "other")
    with serve_process(tmp_path / "tsa") as (proc, url):
        code, out, err = bwv("tsa", "check", "--url", url, "--ca", str(tmp_path / "tsa/ca.pem"))
        assert code == 0, err
        assert "a good token" in out and "(UTC)" in out
        code, out, err = bwv(
            "tsa", "check", "--json", "--url", url, "--ca", str(tmp_path / "other/ca.pem")
        )
        assert code == 1
        assert "untrusted" in json.loads(out)["error"]
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    code, _, err = bwv("tsa", "check", "--url", url, "--ca", str(tmp_path / "tsa/ca.pem"))
    assert code == 2 and "did not answer" in err


def test_one_server_per_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "tsa"
    init(state)
    with serve_process(state):
        r = subprocess.run(
            [sys.executable, "-m", "bwv.cli", "tsa", "serve", "--state", str(state)]
            + ["--listen", "127.0.0.1:0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    said = f"Error: {state}: another `bwv tsa serve` is answering from this folder"
    assert r.stderr.strip() == said


def test_http_refusals_are_one_line(tmp_path: Path) -> None:
    with running_tsa(tmp_path) as (url, _):
        about = httpx.get(url)
        assert about.status_code == 200 and "RFC 3161" in about.text
        wrong_type = httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"})
        assert wrong_type.status_code == 415
        assert wrong_type.text == "expected Content-Type: application/timestamp-query\n"
        assert httpx.put(url, content=b"x").status_code == 405
        huge = httpx.post(url, content=bytes(20_000), headers=QUERY)
        assert huge.status_code == 413
        junk = httpx.post(url, content=b"not a query", headers=QUERY)
        # openssl answers what it cannot read with a rejection (badDataFormat), not a token
        assert junk.status_code == 200
        assert junk.headers["content-type"] == "application/timestamp-reply"


def test_the_tsa_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    """`bwv tsa serve` killed with SIGKILL while tokens are being asked for, then restarted on
    the same folder, again and again: every token a client received verifies, no serial
    number repeats, and the TSA answers after each restart."""
    state = tmp_path / "tsa"
    init(state)
    ca_pem = (state / "ca.pem").read_bytes()
    rng = random.Random(3161)
    received: list[tuple[bytes, bytes]] = []  # (digest, token)
    got = threading.Condition()
    interrupted = 0  # requests cut by a kill
    for _ in range(10):
        with serve_process(state) as (proc, url):
            client = TsaClient(url, timeout=10)
            stop = threading.Event()

            def ask(client: TsaClient = client, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    digest = hashlib.sha256(os.urandom(16)).digest()
                    try:
                        token = client.timestamp(digest)
                    except TsaError:  # killed mid-answer: no token, that is fine
                        nonlocal interrupted
                        interrupted += 1
                        continue
                    with got:
                        received.append((digest, token))
                        got.notify_all()

            asker = threading.Thread(target=ask)
            # kill after a random number of tokens, at a random moment within the next one
            wanted = len(received) + rng.randint(0, 3)
            asker.start()
            with got:
                assert got.wait_for(lambda w=wanted: len(received) >= w, timeout=30)
            stop.wait(rng.uniform(0.0, 0.15))  # the random moment (not a synchronisation)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            stop.set()
            asker.join(timeout=30)
            assert not asker.is_alive()
    with running_tsa(tmp_path) as (url, _):  # it still answers, from the same folder
        digest = hashlib.sha256(b"after").digest()
        received.append((digest, TsaClient(url).timestamp(digest)))
    assert len(received) >= 10 and interrupted >= 1
    for digest, token in received:
        verify_token(token, digest, ca_pem)
    serials = [token_serial(t) for _, t in received]
    assert len(set(serials)) == len(serials), serials
    assert serials == sorted(serials)
    assert int((state / "serial").read_text(), 16) >= max(serials)


def test_a_moved_state_folder_still_serves(tmp_path: Path) -> None:
    """openssl.cnf names the folder where init made it; the server uses where it is now."""
    init(tmp_path / "made-here")
    (tmp_path / "made-here").rename(tmp_path / "tsa")
    with running_tsa(tmp_path) as (url, ca_pem):
        digest = hashlib.sha256(b"moved").digest()
        assert verify_token(TsaClient(url).timestamp(digest), digest, ca_pem) > 0


def test_a_tsa_that_cannot_sign_says_so_in_one_line(tmp_path: Path, caplog) -> None:
    init(tmp_path / "tsa")
    (tmp_path / "tsa" / "tsa.key").write_text("not a key\n")
    with running_tsa(tmp_path) as (url, _), caplog.at_level("ERROR", logger="bwv.tsa"):
        r = httpx.post(url, content=b"x", headers=QUERY)
        assert r.status_code == 500
        assert r.text == "the TSA could not make a reply (its log says why)\n"
        with pytest.raises(TsaError) as caught:
            TsaClient(url).timestamp(hashlib.sha256(b"x").digest())
    assert caught.value.kind == "refused" and "HTTP 500" in str(caught.value)
    said = [r.getMessage() for r in caplog.records]
    assert said and all(m.startswith("no reply: openssl ts -reply failed") for m in said)
    assert "Traceback" not in caplog.text
