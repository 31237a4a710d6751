"""Issue 14, serving the console: `bwv dock serve` (a real process) serves the console beside
the cameras' side, HTTPS with its own certificate (the one it prints the fingerprint of, kept
in the store), on --console-listen; `off` serves none; when the default address is taken the
cameras' side still comes up and says the console is off; a console address given that cannot
be used is refused in one line (exit 2)."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import ssl
import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from bwv.cli import main
from console.tls import ensure_console_tls, fingerprint
from tests.test_journey_dock_serve import dock_process, free_port


def console_client(store, port: int) -> httpx.Client:
    """A client that trusts only the console's own certificate (by address: 127.0.0.1)."""
    ctx = ssl.create_default_context(cafile=str(store / "console.crt"))
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=5)


def wait_healthy(client: httpx.Client) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.get("/healthz")
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the console did not answer"
            threading.Event().wait(0.05)  # between two probes: the probe is the sync


def retention_jobs(store) -> list[str]:
    """Who ran the retention jobs the served console kept (waits for the first)."""
    deadline = time.monotonic() + 30
    while True:
        with contextlib.closing(sqlite3.connect(store / "console.sqlite3")) as db:
            try:
                rows = db.execute("SELECT by FROM retention_jobs ORDER BY id").fetchall()
            except sqlite3.OperationalError:  # not made yet
                rows = []
        if rows:
            return [r[0] for r in rows]
        assert time.monotonic() < deadline, "no retention job ran"
        threading.Event().wait(0.05)  # between two looks: the look is the sync


def test_serve_runs_the_console_over_https_with_the_certificate_it_prints(tmp_path):
    store, port = tmp_path / "store", free_port()
    with (
        dock_process(store, "--console-listen", f"127.0.0.1:{port}") as served,
        console_client(store, port) as client,
    ):
        health = wait_healthy(client)
        assert health.status_code == 200 and health.json()["ok"] is True
        assert "\nbwv_dock_cameras 0.0\n" in client.get("/metrics").text
        page = client.get("/cameras")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        login = client.get("/login")
        assert "default-src 'self'" in login.headers["content-security-policy"]
        tls = client.get("/healthz").extensions["network_stream"].get_extra_info("ssl_object")
        assert tls.version() == "TLSv1.3"
        assert retention_jobs(store) == ["console"]  # the job ran at start, as the console
    assert f"console on       https://127.0.0.1:{port}" in served.stdout
    assert fingerprint(store / "console.crt") in served.stdout
    assert (store / "console.key").stat().st_mode & 0o777 == 0o600
    assert "Traceback" not in served.stderr


def test_console_off_serves_none(tmp_path):
    store = tmp_path / "store"
    with dock_process(store, "--console-listen", "off", "--log-format", "json") as served:
        pass
    start = json.loads(served.stderr.splitlines()[0])
    assert start["event"] == "start" and "console" not in start
    assert not (store / "console.crt").exists()


def test_the_default_console_address_taken_leaves_the_cameras_side_up(tmp_path):
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 8445))
        taken.listen()
    except OSError:
        pass  # someone holds it already: taken all the same
    try:
        with dock_process(tmp_path / "store") as served:
            pass  # the cameras' side answered: dock_process waits for it
    finally:
        taken.close()
    assert "console:         off (127.0.0.1:8445 is in use: give --console-listen)" in served.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--console-listen", "nonsense"), "--console-listen"),
        (("--console-listen", "127.0.0.1:0x"), "--console-listen"),
        (("--console-listen", "SAME"), "is taken by the dock itself"),
        (("--console-listen", "BUSY"), "cannot listen on 127.0.0.1:"),
        (("--console-cert", "CERT"), "--console-cert and --console-key go together"),
        (("--console-cert", "CERT", "--console-key", "OTHERKEY"), "not for the key"),
    ],
)
def test_a_console_address_or_certificate_that_cannot_be_used_is_refused(tmp_path, args, said):
    mine = ensure_console_tls(tmp_path / "a", [])
    other = ensure_console_tls(tmp_path / "b", [])
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        swap = {
            "SAME": f"127.0.0.1:{port}",
            "BUSY": f"127.0.0.1:{busy.getsockname()[1]}",
            "CERT": str(mine.cert),
            "OTHERKEY": str(other.key),
        }
        argv = [swap.get(a, a) for a in args]
        r = CliRunner().invoke(
            main,
            ["dock", "serve", "--store", str(tmp_path / "store"), "--listen", f"127.0.0.1:{port}",
             *argv],
        )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert said in r.output and "Traceback" not in r.output
    assert len([x for x in r.output.splitlines() if x.strip()]) <= 3  # a usage error's lines
