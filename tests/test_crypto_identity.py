"""The device key: made on the device, 0600, refused when too open, never shown."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import stat

import pytest
from nacl.public import PrivateKey

from crypto.evidence import EvidenceSink
from crypto.identity import (
    DeviceIdentity,
    IdentityError,
    key_id_of,
    load_agency_private_key,
    load_agency_public_key,
    load_dock_public_key,
    load_public_key,
    public_key_path,
    write_secret_key,
)
from crypto.testing import agency_key, device_identity


def _spellings(secret: bytes) -> list[bytes]:
    """Ways a secret could leak into text."""
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        repr(secret).encode(),
        secret[:12].hex().encode(),  # even a part of it
    ]


def _leaks(text: str, secret: bytes) -> bool:
    data = text.encode("utf-8", "backslashreplace")
    return any(s in data for s in _spellings(secret))


def _seed(path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


def test_generate_writes_0600_key_and_public_key(tmp_path):
    old = os.umask(0)  # even a permissive umask gives 0600
    try:
        ident = DeviceIdentity.generate(tmp_path / "keys" / "device.key", "cam-0042")
    finally:
        os.umask(old)
    key = tmp_path / "keys" / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(_seed(key)) == 32
    assert load_public_key(public_key_path(key)) == ident.public_key
    assert ident.key_id == hashlib.sha256(ident.public_key).hexdigest()[:16]
    assert ident.key_id == key_id_of(ident.public_key)
    again = DeviceIdentity.load(key, "cam-0042")
    assert again.public_key == ident.public_key
    assert not list(key.parent.glob("*.tmp"))
    with pytest.raises(IdentityError, match="already exists"):
        DeviceIdentity.generate(key, "cam-0042")
    assert DeviceIdentity.load_or_generate(key, "cam-0042").public_key == ident.public_key


def test_key_file_readable_by_others_is_refused_with_a_clear_error(tmp_path):
    key = tmp_path / "device.key"
    DeviceIdentity.generate(key, "cam-1")
    secret = _seed(key)
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        with pytest.raises(IdentityError) as e:
            DeviceIdentity.load(key, "cam-1")
        msg = str(e.value)
        assert str(key) in msg and f"{mode:04o}" in msg and "chmod 600" in msg
        assert not _leaks(msg, secret)
    key.chmod(0o600)
    DeviceIdentity.load(key, "cam-1")


@pytest.mark.parametrize(
    "content",
    [
        lambda s: s.hex() + "zz",
        lambda s: s.hex()[:-2],
        lambda s: s.hex() + s.hex(),
        lambda s: "not a key " + s.hex()[:30],
        lambda s: "",
    ],
)
def test_malformed_key_file_errors_name_the_path_not_the_key(tmp_path, content):
    key = tmp_path / "device.key"
    secret = os.urandom(32)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content(secret).encode())
    os.close(fd)
    with pytest.raises(IdentityError) as e:
        DeviceIdentity.load(key, "cam-1")
    assert str(key) in str(e.value)
    assert not _leaks(str(e.value), secret)
    assert (
        e.value.__cause__ is None
        and e.value.__context__ is None
        or not _leaks(repr(e.value.__context__), secret)
    )


def test_missing_key_mismatched_pub_and_bad_device_id(tmp_path):
    with pytest.raises(IdentityError, match="no Ed25519 seed file"):
        DeviceIdentity.load(tmp_path / "nope.key", "cam-1")
    a = tmp_path / "a.key"
    b = tmp_path / "b.key"
    DeviceIdentity.generate(a, "cam-1")
    DeviceIdentity.generate(b, "cam-1")
    public_key_path(a).write_bytes(public_key_path(b).read_bytes())
    with pytest.raises(IdentityError, match="does not match"):
        DeviceIdentity.load(a, "cam-1")
    with pytest.raises(IdentityError, match="device id"):
        DeviceIdentity.load(b, "cam 1/../x")


def test_repr_str_pickle_and_sink_never_show_the_secret(tmp_path):
    key = tmp_path / "device.key"
    ident = DeviceIdentity.generate(key, "cam-7")
    secret = _seed(key)
    agency = agency_key()
    texts = [repr(ident), str(ident), f"{ident}", repr([ident]), repr({"k": ident})]
    sink = EvidenceSink(
        tmp_path / "outbox", ident, bytes(agency.public_key), "fw", tmp_path / "chain.json"
    )
    texts.append(repr(sink))
    for t in texts:
        assert "cam-7" in t or "EvidenceSink" in t
        assert not _leaks(t, secret)
    with pytest.raises(TypeError):
        pickle.dumps(ident)
    assert not hasattr(ident, "__dict__")  # no stray attribute holding the key
    sink.close()


def test_pinned_key_loaders(tmp_path):
    agency = PrivateKey.generate()
    pk = bytes(agency.public_key)
    (tmp_path / "a.hex").write_text(pk.hex() + "\n")
    (tmp_path / "a.b64").write_text("  " + base64.b64encode(pk).decode() + "\n")
    assert bytes(load_agency_public_key(tmp_path / "a.hex")) == pk
    assert bytes(load_agency_public_key(tmp_path / "a.b64")) == pk
    dock = device_identity("dock-1")
    (tmp_path / "dock.pub").write_text(dock.public_key.hex())
    assert bytes(load_dock_public_key(tmp_path / "dock.pub")) == dock.public_key
    (tmp_path / "zero.hex").write_text("00" * 32)
    with pytest.raises(IdentityError, match="all zeros"):
        load_agency_public_key(tmp_path / "zero.hex")
    (tmp_path / "short").write_text(pk.hex()[:-4])
    with pytest.raises(IdentityError, match="short"):
        load_agency_public_key(tmp_path / "short")
    with pytest.raises(IdentityError, match="no dock Ed25519 public key file"):
        load_dock_public_key(tmp_path / "absent")
    (tmp_path / "dir").mkdir()
    with pytest.raises(IdentityError, match="not a regular file"):
        load_public_key(tmp_path / "dir")


def test_agency_private_key_file_is_written_0600_and_checked(tmp_path):
    sk = PrivateKey.generate()
    path = tmp_path / "agency.key"
    write_secret_key(path, bytes(sk))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes(load_agency_private_key(path)) == bytes(sk)
    path.chmod(0o644)
    with pytest.raises(IdentityError) as e:
        load_agency_private_key(path)
    assert not _leaks(str(e.value), bytes(sk))
