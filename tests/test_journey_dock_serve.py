"""Running the dock as a technician does (issue 8, points 17, 18, 19 and the dock's part of 8):
`bwv dock serve` as a real process on loopback, its log read from its stderr; the pages a
browser gets; the folders it accepts as a store."""

from __future__ import annotations

import gc
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bwv.cli import main
from crypto.identity import DeviceIdentity
from dock.client import DeviceCredentials, DockClient, DockRefused, enroll
from dock.server import ServerThread, create_app, open_dock
from dock.tls import fingerprint, pinned_to

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    store: Path
    stderr: str = ""
    stdout: str = ""

    def admin(self) -> httpx.Client:
        """The admin side: the store's Unix socket (`bwv dock serve`'s default)."""
        transport = httpx.HTTPTransport(uds=str(self.store / "admin.sock"))
        return httpx.Client(transport=transport, base_url="http://dock")

    def verify(self) -> ssl.SSLContext:
        return pinned_to(bytes.fromhex((self.store / "dock.pub").read_text().strip()))


@contextmanager
def dock_process(store: Path, *args: str) -> Iterator[Served]:
    """`bwv dock serve` in its own process until the block ends; then its output is read."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bwv.cli",
            "dock",
            "serve",
            "--store",
            str(store),
            "--listen",
            f"127.0.0.1:{port}",
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(f"https://127.0.0.1:{port}", store)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it answers (or died)
            assert proc.poll() is None, proc.communicate()
            try:
                r = httpx.get(served.url + "/v1/dock", timeout=2, verify=served.verify())
                if r.status_code == 200:
                    break
            except (httpx.HTTPError, OSError, ValueError):
                pass
            assert time.monotonic() < deadline, "the dock did not start"
            threading.Event().wait(0.05)  # between two probes: the probe is the sync
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        served.stdout, served.stderr = proc.communicate(timeout=30)


def refuse_three_ways(served: Served) -> dict[str, str]:
    """A wrong enrollment token, a wrong admin token and a badly signed request; the secrets
    that went over the wire (none may reach the log)."""
    url, store = served.url, served.store
    now = lambda: time.time_ns() // 1000  # noqa: E731
    admin = (store / "admin.token").read_text().strip()
    dock_key = bytes.fromhex((store / "dock.pub").read_text().strip())
    good = DeviceIdentity.from_seed("cam-log-01", secrets.token_bytes(32))
    wrong_token = "bwv-enroll-" + secrets.token_urlsafe(24)
    with pytest.raises(DockRefused, match="token"):
        enroll(
            url,
            good.device_id,
            good,
            good.public_key,
            wrong_token,
            wall_clock=now,
            expected_dock_key=dock_key,
        )

    wrong_admin = "not-the-admin-token-" + secrets.token_hex(8)
    with served.admin() as http:
        r = http.get("/v1/admin/devices", headers={"Authorization": f"Bearer {wrong_admin}"})
        assert r.status_code == 401
        r = http.post(
            "/v1/admin/tokens",
            json={"device_id": good.device_id},
            headers={"Authorization": f"Bearer {admin}"},
        )
    token = r.json()["token"]
    enroll(
        url,
        good.device_id,
        good,
        good.public_key,
        token,
        wall_clock=now,
        expected_dock_key=dock_key,
    )
    impostor_seed = secrets.token_bytes(32)
    impostor = DeviceIdentity.from_seed(good.device_id, impostor_seed)
    with (
        DockClient(
            url, DeviceCredentials(good.device_id, impostor, dock_key), wall_clock=now
        ) as client,
        pytest.raises(DockRefused, match="signature"),
    ):
        client.status()
    return {
        "wrong enrollment token": wrong_token,
        "enrollment token": token,
        "wrong admin token": wrong_admin,
        "admin token": admin,
        "dock key": (store / "dock.key").read_text().strip(),
        "device public key": good.public_key.hex(),
        "impostor seed": impostor_seed.hex(),
    }


def assert_secret_free(log: str, secrets_: dict[str, str]) -> None:
    for what, value in secrets_.items():
        assert value not in log, f"the {what} is in the log"
    assert not re.search(r"[0-9a-f]{64}", log), "a key-sized hex string is in the log"


# -- point 17: refusals are logged, in one format, without secrets -------------------------------


def test_every_refusal_is_logged_without_a_secret(tmp_path):
    store = tmp_path / "new-store"  # missing: it becomes a store (point 19)
    with dock_process(store) as served:
        sent = refuse_three_ways(served)
    log = served.stderr
    refusals = [line for line in log.splitlines() if " refused " in line]
    assert len(refusals) == 3, log
    enrol, admin, signature = refusals
    assert "POST /v1/enroll" in enrol and "bad_token" in enrol and "device cam-log-01" in enrol
    assert "GET /v1/admin/devices" in admin and "admin_required" in admin
    assert "GET /v1/status" in signature and "bad_signature" in signature
    assert "device cam-log-01" in signature
    for line in refusals:
        assert line.split()[1] == "WARNING"
    for line in (enrol, signature):  # the cameras' side; the admin side is a Unix socket
        assert "from 127.0.0.1:" in line
    # one format: uvicorn's lines look like the dock's (time, level, logger: message)
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) [\w.]+: ")
    assert all(pattern.match(line) for line in log.splitlines()), log
    assert any(" uvicorn.error: " in line for line in log.splitlines())
    assert any(" uvicorn.access: " in line for line in log.splitlines())
    assert_secret_free(log, sent)
    # the dock's fingerprint is printed for the technician (it is no secret); nothing else
    shown = fingerprint(bytes.fromhex((store / "dock.pub").read_text().strip()))
    assert shown in served.stdout
    assert_secret_free(served.stdout.replace(shown, ""), sent)
    assert "Traceback" not in log


def test_log_format_json_gives_json_lines_for_everything(tmp_path):
    store = tmp_path / "store"
    with dock_process(store, "--log-format", "json") as served:
        sent = refuse_three_ways(served)
    lines = [json.loads(line) for line in served.stderr.splitlines()]  # every line is JSON
    assert {"uvicorn.error", "uvicorn.access", "bwv.dock"} <= {x["logger"] for x in lines}
    refusals = [x for x in lines if x.get("event") == "refused"]
    assert [(x["status"], x["code"]) for x in refusals] == [
        (401, "bad_token"),
        (401, "admin_required"),
        (401, "bad_signature"),
    ]
    assert [x["device_id"] for x in refusals] == ["cam-log-01", None, "cam-log-01"]
    assert all(x["reason"] for x in refusals)
    cameras = [x for x in refusals if x["code"] != "admin_required"]  # admin: a Unix socket
    assert all(x["remote"].startswith("127.0.0.1:") for x in cameras)
    assert served.stdout == ""  # the start-up facts are a JSON log line too
    (start,) = [x for x in lines if x.get("event") == "start"]
    assert start["dock_key_id"] and start["store"] == str(store.resolve())
    assert start["dock_fingerprint"].startswith(start["dock_key_id"])  # to pin on cameras
    assert_secret_free(served.stderr.replace(start["dock_fingerprint"], ""), sent)


# -- point 18: the pages work offline ------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def links(html: str) -> list[str]:
    p = _Links()
    p.feed(html)
    return p.urls


@pytest.fixture
def server(tmp_path):
    dock = open_dock(tmp_path / "store")
    with ServerThread(create_app(dock)) as s:
        yield s
    dock.store.close()


def test_docs_use_only_local_assets(server):
    for page in ("/docs", "/redoc"):
        r = httpx.get(server.url + page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = links(r.text)
        assert urls, r.text
        # no other host: no scheme, no protocol-relative URL, anywhere in the page
        assert not re.search(r"(https?:)?//[\w.-]+\.\w", r.text), r.text
        for u in urls:
            assert u.startswith("/"), u
            asset = httpx.get(server.url + u)
            assert asset.status_code == 200 and len(asset.content) > 100, u
    js = httpx.get(server.url + "/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in js.content


def test_the_root_page_says_what_this_is(server):
    from bwv import __version__

    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "bwv dock" in r.text and __version__ in r.text
    assert {"/docs", "/openapi.json", "/v1/dock"} <= set(links(r.text))
    assert not re.search(r"https?://", r.text)
    assert httpx.get(server.url + "/favicon.ico").status_code == 200


# -- point 19 and 8: which folders serve accepts ---------------------------------------------------


def serve_cli(store: Path, monkeypatch) -> tuple[object, list]:
    """`bwv dock serve` up to the point where the server would run (run_dock stubbed)."""
    import dock.server

    ran: list = []

    def run_dock(dock, camera_sock, admin_sock, tls, **kw) -> None:
        ran.append(kw)
        for sock in (camera_sock, admin_sock):
            sock.close()
        dock.store.close()

    monkeypatch.setattr(dock.server, "run_dock", run_dock)
    r = CliRunner().invoke(
        main, ["dock", "serve", "--store", str(store), "--listen", f"127.0.0.1:{free_port()}"]
    )
    gc.collect()  # the app (and its store's index connection) goes now, not at a later GC
    return r, ran


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_serve_refuses_a_folder_that_is_not_a_store(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine\n")
    (home / "photos").mkdir()
    before = tree(home)
    r, ran = serve_cli(home, monkeypatch)
    assert r.exit_code == 2, r.output
    assert not ran
    (line,) = r.output.strip().splitlines()
    assert "is not empty and is not a dock store" in line and "notes.txt" in line
    assert tree(home) == before and sorted(os.listdir(home)) == ["notes.txt", "photos"]


@pytest.mark.parametrize("kind", ["missing", "empty", "fresh filesystem"])
def test_serve_makes_a_store_in_a_new_or_empty_folder(tmp_path, monkeypatch, kind):
    store = tmp_path / "store"
    if kind != "missing":
        store.mkdir()
    if kind == "fresh filesystem":
        (store / "lost+found").mkdir()
    r, ran = serve_cli(store, monkeypatch)
    assert r.exit_code == 0, r.output
    assert len(ran) == 1
    assert {"dock.key", "admin.token", "dock.pub", "index.sqlite3"} <= set(os.listdir(store))
    # and the store opens again
    r, ran = serve_cli(store, monkeypatch)
    assert r.exit_code == 0 and len(ran) == 1, r.output


def test_serve_on_a_damaged_index_says_so_in_one_line(tmp_path, monkeypatch):
    store = tmp_path / "store"
    r, _ = serve_cli(store, monkeypatch)
    assert r.exit_code == 0, r.output
    for name in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (store / name).unlink(missing_ok=True)
    (store / "index.sqlite3").write_bytes(b"\x00garbage, not a database\xff" * 100)
    before = tree(store)
    r, ran = serve_cli(store, monkeypatch)
    assert r.exit_code == 2, r.output
    assert not ran
    (line,) = r.output.strip().splitlines()
    assert "cannot open the dock's index" in line and "Traceback" not in r.output
    assert tree(store) == before
