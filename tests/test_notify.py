"""systemd notify: READY and watchdog pings reach a real datagram socket, and pings stop
when frames stop."""

from __future__ import annotations

import socket

from capture.notify import FrameWatchdog, Notifier


def _listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setblocking(False)
    return s, path


def _received(s) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_and_status_reach_systemd(tmp_path):
    s, path = _listener(tmp_path)
    n = Notifier(path)
    assert n.ready("frames flowing")
    assert _received(s) == ["READY=1\nSTATUS=frames flowing"]


def test_no_socket_means_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready()


def test_watchdog_pings_only_while_frames_arrive(tmp_path):
    s, path = _listener(tmp_path)
    wd = FrameWatchdog(Notifier(path), interval_us=1_000_000, stall_us=2_000_000)
    assert not wd.tick(0)  # no frame yet: no ping
    pings = 0
    for t in range(0, 5_000_000, 100_000):  # frames for 5 s
        wd.frame(t)
        pings += wd.tick(t)
    assert pings == 5
    # frames stop: pings stop once the stall bound has passed
    late = [wd.tick(t) for t in range(5_000_000, 12_000_000, 100_000)]
    assert not any(late[25:])
    assert wd.stalled(12_000_000)
    assert len(_received(s)) == pings + sum(late)
