"""The device's identity (an Ed25519 key made on the device) and the pinned public keys.

A device key may instead be held in a TPM (package ``tpm``): its public key is a 65-byte
P-256 point (``0x04 || X || Y``, 130 hex digits in ``device.pub``); the loaders and checks
of device public keys here take both kinds (crypto/suites.py).

Files (crypto/FORMAT.md, "Key files"):

- ``device.key``: the 32-byte Ed25519 seed as 64 lowercase hex digits and a newline, mode
  0600, created atomically with that mode. A key file readable by group or others is refused.
- ``device.pub``: the 32-byte public key, 64 lowercase hex digits and a newline.
- pinned keys (the agency's X25519 public key, the dock's Ed25519 public key): 32 bytes as
  64 hex digits or as base64, surrounding whitespace ignored.

The key id is the first 16 hex digits (8 bytes) of SHA-256 of the raw public key bytes.

Secret key bytes never appear in a ``repr``, a ``str`` or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path
from typing import NoReturn

from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from crypto import suites
from crypto.durable import write_atomic

KEY_BYTES = 32
P256_KEY_BYTES = suites.P256_KEY_BYTES
SECRET_MODE = 0o600


class IdentityError(Exception):
    """A key file that cannot be used: names the path and the problem, never key bytes."""


def key_id_of(public_key: bytes) -> str:
    """The key id of a raw public key: first 16 lowercase hex digits of its SHA-256."""
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def check_device_id(device_id: str) -> str:
    if not (
        isinstance(device_id, str)
        and 1 <= len(device_id) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in device_id)
    ):
        raise IdentityError("device id must be 1..64 characters of [A-Za-z0-9._-]")
    return device_id


class DeviceIdentity:
    """The device's signing key with its device id. Holds the secret; never shows it."""

    __slots__ = ("_signing_key", "device_id", "public_key", "key_id")
    suite = suites.ED25519  # a key in a file (a TPM's key is tpm.signer.TpmSigner)

    def __init__(self, device_id: str, signing_key: SigningKey) -> None:
        self.device_id = check_device_id(device_id)
        self._signing_key = signing_key
        self.public_key: bytes = bytes(signing_key.verify_key)
        self.key_id: str = key_id_of(self.public_key)

    # -- making and loading ----------------------------------------------------------------
    @classmethod
    def from_seed(cls, device_id: str, seed: bytes) -> DeviceIdentity:
        """A deterministic identity (test vectors); a device uses ``generate``."""
        if len(seed) != KEY_BYTES:
            raise IdentityError("an Ed25519 seed is 32 bytes")
        return cls(device_id, SigningKey(bytes(seed)))

    @classmethod
    def generate(cls, key_path: Path, device_id: str) -> DeviceIdentity:
        """Make a new key on the device: ``key_path`` (0600) and ``key_path``.pub.

        Refuses to replace an existing key (an identity is never overwritten by accident).
        """
        key_path = Path(key_path)
        if key_path.exists():
            raise IdentityError(f"{key_path}: a device key already exists; not replacing it")
        key_path.parent.mkdir(parents=True, exist_ok=True)
        signing_key = SigningKey.generate()
        ident = cls(device_id, signing_key)
        seed_hex = signing_key.encode().hex().encode("ascii") + b"\n"
        try:
            write_atomic(key_path, seed_hex, mode=SECRET_MODE, overwrite=False)
        except FileExistsError:
            raise IdentityError(
                f"{key_path}: a device key already exists; not replacing it"
            ) from None
        write_atomic(public_key_path(key_path), ident.public_key.hex().encode() + b"\n")
        return ident

    @classmethod
    def load(cls, key_path: Path, device_id: str) -> DeviceIdentity:
        """Load the device key; ``IdentityError`` if it is missing, too open or malformed,
        or if a ``.pub`` file beside it names another key."""
        key_path = Path(key_path)
        seed = _read_secret_32(key_path, "Ed25519 seed")
        ident = cls(device_id, SigningKey(seed))
        pub = public_key_path(key_path)
        if pub.exists():
            pinned = load_device_public_key(pub)
            if pinned != ident.public_key:
                raise IdentityError(f"{pub}: does not match the key in {key_path}")
        return ident

    @classmethod
    def load_or_generate(cls, key_path: Path, device_id: str) -> DeviceIdentity:
        if Path(key_path).exists():
            return cls.load(key_path, device_id)
        return cls.generate(key_path, device_id)

    # -- use -------------------------------------------------------------------------------
    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing_key.sign(bytes(message)).signature

    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.public_key)

    def __repr__(self) -> str:
        return f"DeviceIdentity(device_id={self.device_id!r}, key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # no pickling or copying of the secret by accident
        raise TypeError("DeviceIdentity cannot be pickled or copied")


def public_key_path(key_path: Path) -> Path:
    return Path(key_path).with_name(Path(key_path).name + ".pub")


# -- pinned keys ---------------------------------------------------------------------------
def parse_key_text(
    text: bytes, what: str, path: Path | str, sizes: tuple[int, ...] = (KEY_BYTES,)
) -> bytes:
    """Key bytes (of one of ``sizes``: 32 unless told) from hex digits or base64;
    ``IdentityError`` (without the content)."""
    s = text.strip()
    if len(s) in (2 * n for n in sizes):
        try:
            raw = binascii.unhexlify(s)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) in sizes:
            return raw
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) in sizes:
        return raw
    expected = " or ".join(f"{n} bytes as {2 * n} hex digits" for n in sizes)
    raise IdentityError(
        f"{path}: not a valid {what} (expected {expected} or base64, "
        f"found {len(s)} characters that are neither)"
    )


def _lstat(path: Path, what: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise IdentityError(f"{path}: no {what} file") from None
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the {what} file ({exc.strerror})") from None


def _read(path: Path, what: str) -> bytes:
    st = _lstat(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise IdentityError(f"{path}: the {what} file is not a regular file")
    if st.st_size > 4096:
        raise IdentityError(f"{path}: too large for a {what} file ({st.st_size} bytes)")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the {what} file ({exc.strerror})") from None


def _read_secret_32(path: Path, what: str) -> bytes:
    st = _lstat(path, what)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode) and mode & 0o077:
        raise IdentityError(
            f"{path}: secret key file has mode {mode:04o}; it must not be readable by group "
            f"or others (chmod 600 {path})"
        )
    return parse_key_text(_read(path, what), what, path)


def load_public_key(path: Path, what: str = "public key") -> bytes:
    """A pinned public key (32 bytes, or a 65-byte P-256 device key) from a hex or base64
    file (its encoding only: use the loaders below, or ``check_public_key``, to know it is a
    usable key of the kind wanted)."""
    return parse_key_text(_read(Path(path), what), what, path, (KEY_BYTES, P256_KEY_BYTES))


# -- the one check of public keys -------------------------------------------------------------
X25519, ED25519, P256 = "X25519", "Ed25519", "P-256"


def check_public_key(raw: bytes, kind: str, where: Path | str) -> bytes:
    """``raw`` if it is a usable ``kind`` (``X25519`` or ``Ed25519``) public key, else
    ``IdentityError`` naming ``where``. Every key bwv pins or is given passes through here
    (provisioning, the device's loader, selftest, the simulator, the verifier).

    Refused: a wrong length, all zeros, and the low-order points: an X25519 key whose product
    with a random scalar is zero (nothing sealed to it is secret, and libsodium refuses to
    seal), an Ed25519 key that is not a canonical point of the main subgroup (a signature
    under a low-order key proves nothing), a ``P256`` key that is not a 65-byte uncompressed
    point on the curve."""
    raw = bytes(raw)
    if kind == P256:
        return _check_p256(raw, where)
    if len(raw) != KEY_BYTES:
        raise IdentityError(f"{where}: an {kind} public key is {KEY_BYTES} bytes, not {len(raw)}")
    if raw == bytes(KEY_BYTES):
        raise IdentityError(f"{where}: the {kind} public key is all zeros")
    if kind == X25519:
        try:  # libsodium fails when the shared point is zero: exactly the low-order keys
            bindings.crypto_scalarmult(bytes(PrivateKey.generate()), raw)
        except (CryptoError, ValueError, TypeError):
            raise IdentityError(
                f"{where}: not a usable {kind} public key (a low-order point: nothing can "
                "be sealed to it)"
            ) from None
    elif kind == ED25519:
        try:
            ok = bindings.crypto_core_ed25519_is_valid_point(raw)
        except (CryptoError, ValueError, TypeError):
            ok = False
        if not ok:
            raise IdentityError(
                f"{where}: not a usable {kind} public key (not a point of the curve's main "
                "group, or a low-order one)"
            )
    else:  # pragma: no cover - a programming error
        raise ValueError(f"unknown key kind {kind!r}")
    return raw


def _check_p256(raw: bytes, where: Path | str) -> bytes:
    if len(raw) != P256_KEY_BYTES or raw[0] != 0x04:
        raise IdentityError(
            f"{where}: a P-256 public key is {P256_KEY_BYTES} bytes starting 0x04 "
            f"(an uncompressed point), not {len(raw)} bytes"
        )
    try:
        suites.p256_public_key(raw)
    except ValueError:
        raise IdentityError(
            f"{where}: not a usable P-256 public key (not a point on the curve)"
        ) from None
    return raw


def check_device_public_key(raw: bytes, where: Path | str) -> bytes:
    """``raw`` if it is a usable device public key of either suite: 32 bytes (Ed25519, a
    key in a file) or 65 bytes (P-256, a key in a TPM); else ``IdentityError``."""
    raw = bytes(raw)
    return check_public_key(raw, P256 if len(raw) == P256_KEY_BYTES else ED25519, where)


def load_agency_public_key(path: Path) -> PublicKey:
    """The agency's X25519 public key, pinned at provisioning (footage is sealed to it)."""
    raw = load_public_key(path, "agency X25519 public key")
    return PublicKey(check_public_key(raw, X25519, path))


def load_dock_public_key(path: Path) -> VerifyKey:
    """The dock's Ed25519 public key, pinned at provisioning."""
    raw = load_public_key(path, "dock Ed25519 public key")
    return VerifyKey(check_public_key(raw, ED25519, path))


def load_device_public_key(path: Path) -> bytes:
    """A device's public key (``device.key.pub``, or one an investigator was given): a
    32-byte Ed25519 key or a 65-byte P-256 point (a key in a TPM)."""
    raw = load_public_key(path, "device public key")
    return check_device_public_key(raw, path)


def load_agency_private_key(path: Path) -> PrivateKey:
    """The agency's X25519 private key (off the device: for the verifier and decryption)."""
    return PrivateKey(_read_secret_32(Path(path), "agency X25519 private key"))


def write_secret_key(path: Path, key: bytes) -> None:
    """Write a 32-byte secret as hex, mode 0600, atomically (test vectors, provisioning)."""
    write_atomic(Path(path), bytes(key).hex().encode() + b"\n", mode=SECRET_MODE)
