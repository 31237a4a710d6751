"""C2SP signed-note (c2sp.org/signed-note) with Ed25519 signatures (signature type 0x01).

A note is a text ending in a newline, a blank line, and one or more signature lines
``— <key name> base64(4-byte key id || signature)``. A key's id is
``SHA-256(name || "\\n" || type || public key)[:4]``; a verifier key (*vkey*) is
``<name>+<8 hex key id>+base64(type || public key)``.

``open_note`` follows golang.org/x/mod/sumdb/note's ``Open``: signatures from unknown keys
are ignored, a signature from a known key that fails to verify rejects the whole note, and
a note without a verified signature is rejected. Anything that checks signatures of a note
(``NoteVerifier`` here, ``tlog.cosignature.CosignatureVerifier``) has a ``name``, a
``key_id`` and ``verify_signature(text, sig)``.

Signature lines are handled WITHOUT their final newline (``str``); a note is ``bytes``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALG_ED25519 = 0x01
SIG_PREFIX = "— "  # em dash, space
MAX_SIGNATURES = 100  # as Go's note.Open; the spec asks for at least 16


class NoteError(ValueError):
    """A note, a signature line or a vkey that is malformed or does not verify."""


class NoteUnverified(NoteError):
    """No signature from a known key (the note may be fine, but nothing vouches for it)."""


class NoteBadSignature(NoteError):
    """A signature whose key name and id match a known key fails to verify."""


def key_id(name: str, alg: int, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + bytes(public_key)).digest()
    return int.from_bytes(digest[:4], "big")


def valid_name(name: str) -> bool:
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() for c in name)
        and all(ord(c) >= 0x20 for c in name)
    )


def format_vkey(name: str, alg: int, public_key: bytes) -> str:
    material = base64.b64encode(bytes([alg]) + bytes(public_key)).decode()
    return f"{name}+{key_id(name, alg, public_key):08x}+{material}"


def parse_vkey(vkey: str) -> tuple[str, int, int, bytes]:
    """(name, key id, signature type, public key) of a vkey, its key id checked."""
    if not isinstance(vkey, str):
        raise NoteError("a verifier key is text")
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, material = rest.partition("+")  # base64 may hold "+" itself
    if not (sep1 and sep2):
        raise NoteError("malformed verifier key (expected <name>+<key id>+<key>)")
    try:
        ident = int(hex_id, 16)
        raw = base64.b64decode(material, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(hex_id) != 8 or not all(c in "0123456789abcdef" for c in hex_id):
        raw = b""
    if not valid_name(name) or len(raw) < 2:
        raise NoteError("malformed verifier key")
    if key_id(name, raw[0], raw[1:]) != ident:
        raise NoteError("verifier key id does not match its name and key")
    return name, ident, raw[0], raw[1:]


class Verifier(Protocol):
    """What checks one key's signatures of a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify_signature(self, text: bytes, sig: bytes) -> bool: ...


def _ed25519_key(raw: bytes) -> VerifyKey:
    if len(raw) != 32:
        raise NoteError("an Ed25519 public key is 32 bytes")
    return VerifyKey(raw)


@dataclass(frozen=True)
class NamedKey:
    """A named Ed25519 public key of one signature type (``ALG``): its key id and its vkey
    ``<name>+<key id>+base64(ALG || public key)``; the verifiers below extend it."""

    ALG: ClassVar[int]
    KIND: ClassVar[str]
    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}")
        _ed25519_key(self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        name, _, alg, key = parse_vkey(vkey)
        if alg != cls.ALG:
            raise NoteError(f"not {cls.KIND} key (signature type 0x{alg:02x})")
        return cls(name, bytes(key))

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.ALG, self.public_key)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.ALG, self.public_key)


@dataclass(frozen=True)
class NoteVerifier(NamedKey):
    """An Ed25519 (type 0x01) note verifier."""

    ALG: ClassVar[int] = ALG_ED25519
    KIND: ClassVar[str] = "an Ed25519 note"

    def verify_signature(self, text: bytes, sig: bytes) -> bool:
        try:
            _ed25519_key(self.public_key).verify(bytes(text), bytes(sig))
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True


class KeySigner:
    """A named Ed25519 signing key: its verifier (``VERIFIER``: name, key id, vkey); the
    note signer and the cosigner below extend it with what they sign."""

    VERIFIER: ClassVar[type[NamedKey]]

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        self.verifier: NamedKey = self.VERIFIER(name, bytes(signing_key.verify_key))  # name checked
        self.name = name
        self._key = signing_key

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class NoteSigner(KeySigner):
    """Signs notes with an Ed25519 key under a key name (type 0x01)."""

    VERIFIER: ClassVar[type[NamedKey]] = NoteVerifier
    verifier: NoteVerifier

    def signature_line(self, text: str) -> str:
        sig = self._key.sign(text.encode()).signature
        return format_signature_line(self.name, self.key_id, sig)


def format_signature_line(name: str, ident: int, sig: bytes) -> str:
    return f"{SIG_PREFIX}{name} {base64.b64encode(struct.pack('>I', ident) + sig).decode()}"


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: its name, key id and the bytes after the key id."""

    name: str
    key_id: int
    sig: bytes
    line: str  # without its newline


def parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIG_PREFIX):
        raise NoteError("malformed signature line (no em dash)")
    name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
    try:
        raw = base64.b64decode(b64, validate=True) if b64 else b""
    except (ValueError, binascii.Error):
        raw = b""
    if not sep or not valid_name(name) or len(raw) < 5:
        raise NoteError("malformed signature line")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:], line)


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("malformed note: the text must end in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("malformed note: a control character")


def split_note(note: bytes) -> tuple[str, list[Signature]]:
    """The text (with its final newline) and the parsed signature lines of ``note``."""
    try:
        decoded = bytes(note).decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("malformed note: not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in decoded):
        raise NoteError("malformed note: a control character")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, sigs = decoded[: split + 1], decoded[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        raise NoteError("malformed note: no signature, or no newline after the last")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text, [parse_signature_line(line) for line in lines]


def open_note(note: bytes, verifiers: Iterable[Verifier]) -> tuple[str, list[str]]:
    """(text, names of the keys whose signatures verified), or ``NoteError``: malformed, a
    known key's signature fails (``NoteBadSignature``), or none verified
    (``NoteUnverified``)."""
    text, sigs = split_note(note)
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    verified: list[str] = []
    seen: set[tuple[str, int]] = set()
    for s in sigs:
        candidates = known.get((s.name, s.key_id))
        if candidates is None:
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {s.name}+{s.key_id:08x}")
        if (s.name, s.key_id) in seen:
            continue
        seen.add((s.name, s.key_id))
        if not candidates[0].verify_signature(text.encode(), s.sig):
            raise NoteBadSignature(f"invalid signature for key {s.name}+{s.key_id:08x}")
        verified.append(s.name)
    if not verified:
        raise NoteUnverified("the note has no signature from a known key")
    return text, verified


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note: ``text`` (ending in a newline), a blank line, one line per signer."""
    check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signature")
    lines = [s.signature_line(text) for s in signers]
    return (text + "\n" + "".join(line + "\n" for line in lines)).encode()


def add_signatures(note: bytes, lines: Iterable[str]) -> bytes:
    """``note`` with the signature ``lines`` appended (each checked; those already there
    skipped)."""
    text, sigs = split_note(note)
    have = {s.line for s in sigs}
    out = bytearray(note)
    for line in lines:
        line = line.rstrip("\n")
        parse_signature_line(line)
        if line not in have:
            have.add(line)
            out += (line + "\n").encode()
    return bytes(out)
