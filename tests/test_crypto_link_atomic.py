"""``link_atomic``: a second name for a durable file, made atomically without writing its
bytes again (the dock's latest checkpoint is so named after the one kept by its size)."""

from __future__ import annotations

import errno
import os

import pytest

from crypto.durable import link_atomic, write_atomic
from dock.checkpoints import StoredCheckpoint, checkpoint_at, latest_checkpoint, save_checkpoint


def test_the_name_is_the_kept_file_itself_and_outlives_its_replacement(tmp_path):
    kept = tmp_path / "7"
    write_atomic(kept, b"checkpoint 7\n", 0o640)
    latest = tmp_path / "latest"
    latest.write_bytes(b"older\n")
    link_atomic(kept, latest)
    assert latest.read_bytes() == b"checkpoint 7\n"
    assert os.stat(latest).st_ino == os.stat(kept).st_ino  # no bytes written again
    assert not (tmp_path / "latest.tmp").exists()
    write_atomic(kept, b"checkpoint 7, cosigned\n")  # replaced, never written in place
    assert latest.read_bytes() == b"checkpoint 7\n"


def test_without_hard_links_the_name_is_a_copy_with_the_same_mode(tmp_path, monkeypatch):
    kept = tmp_path / "7"
    write_atomic(kept, b"checkpoint 7\n", 0o640)

    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not allowed here")

    monkeypatch.setattr(os, "link", no_links)
    link_atomic(kept, tmp_path / "latest")
    assert (tmp_path / "latest").read_bytes() == b"checkpoint 7\n"
    assert os.stat(tmp_path / "latest").st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "latest").st_ino != os.stat(kept).st_ino


def test_another_failure_to_link_is_raised_and_leaves_the_old_name(tmp_path, monkeypatch):
    kept = tmp_path / "7"
    write_atomic(kept, b"checkpoint 7\n")
    (tmp_path / "latest").write_bytes(b"older\n")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    with pytest.raises(OSError):
        link_atomic(kept, tmp_path / "latest")
    assert (tmp_path / "latest").read_bytes() == b"older\n"


def test_the_latest_checkpoint_is_the_one_kept_by_its_size(tmp_path):
    save_checkpoint(tmp_path, StoredCheckpoint(3, b"origin\n3\nroot3\n", b"token 3"))
    save_checkpoint(tmp_path, StoredCheckpoint(5, b"origin\n5\nroot5\n", None))
    assert latest_checkpoint(tmp_path) == StoredCheckpoint(5, b"origin\n5\nroot5\n", None)
    assert checkpoint_at(tmp_path, 3) == StoredCheckpoint(3, b"origin\n3\nroot3\n", b"token 3")
    log = tmp_path / "log"
    assert os.stat(log / "checkpoint").st_ino == os.stat(log / "checkpoints" / "5").st_ino
    assert not (log / "checkpoint.tsr").exists()  # 3's token is not the latest's
    save_checkpoint(tmp_path, StoredCheckpoint(5, b"origin\n5\nroot5\ncosigned\n", b"t5"))
    assert latest_checkpoint(tmp_path) == StoredCheckpoint(
        5, b"origin\n5\nroot5\ncosigned\n", b"t5"
    )
    assert (log / "checkpoint.tsr").read_bytes() == b"t5"
