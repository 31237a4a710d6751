"""C2SP tlog-cosignature (c2sp.org/tlog-cosignature), the Ed25519 ``cosignature/v1`` type.

A cosignature is a note signature (type 0x04) over::

    cosignature/v1\\ntime <POSIX seconds>\\n<the checkpoint's note text>

and its bytes after the key id are ``u64 timestamp (big-endian) || Ed25519 signature``. A
cosigner's key id is ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``; its vkey is
``<name>+<key id>+base64(0x04 || public key)``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tlog.note import (
    ALG_ED25519,
    KeySigner,
    NamedKey,
    NoteError,
    NoteVerifier,
    check_text,
    format_signature_line,
    parse_signature_line,
    parse_vkey,
)

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1"
MAX_TIME = (1 << 63) - 1


def signed_message(body: str, time_s: int) -> bytes:
    return f"{HEADER}\ntime {time_s}\n{body}".encode()


@dataclass(frozen=True)
class CosignatureVerifier(NamedKey):
    """Checks a cosigner's ``cosignature/v1`` signatures; also a ``tlog.note.Verifier``."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    KIND: ClassVar[str] = "a cosignature/v1"

    def verify_signature(self, text: bytes, sig: bytes) -> bool:
        """``sig``: the timestamped signature (after the key id) of the note ``text``."""
        if len(sig) != 8 + 64:
            return False
        (time_s,) = struct.unpack(">Q", sig[:8])
        if time_s > MAX_TIME:
            return False
        message = f"{HEADER}\ntime {time_s}\n".encode() + bytes(text)
        try:
            VerifyKey(self.public_key).verify(message, sig[8:])
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True

    def verify(self, body: str, sig_line: str) -> int | None:
        """The cosignature's time (POSIX seconds) if ``sig_line`` is this cosigner's valid
        cosignature of the checkpoint text ``body``, else None."""
        try:
            s = parse_signature_line(sig_line.rstrip("\n"))
        except NoteError:
            return None
        if (s.name, s.key_id) != (self.name, self.key_id):
            return None
        if not self.verify_signature(body.encode(), s.sig):
            return None
        return int(struct.unpack(">Q", s.sig[:8])[0])


class CosignatureSigner(KeySigner):
    """A cosigner: ``cosign(body, time_s)`` is the signature line (without its newline)."""

    VERIFIER: ClassVar[type[NamedKey]] = CosignatureVerifier
    verifier: CosignatureVerifier

    def cosign(self, checkpoint_body: str, time_s: int) -> str:
        check_text(checkpoint_body)
        if not (isinstance(time_s, int) and 0 < time_s <= MAX_TIME):
            raise NoteError(f"bad cosignature time {time_s!r}")
        sig = self._key.sign(signed_message(checkpoint_body, time_s)).signature
        return format_signature_line(self.name, self.key_id, struct.pack(">Q", time_s) + sig)


def cosignature_time(sig_line: str) -> int:
    """The timestamp of a cosignature/v1 line (unverified), or ``NoteError``."""
    s = parse_signature_line(sig_line.rstrip("\n"))
    if len(s.sig) != 8 + 64:
        raise NoteError("not a cosignature/v1 signature (wrong length)")
    return int(struct.unpack(">Q", s.sig[:8])[0])


def verifier_from_vkey(vkey: str) -> NoteVerifier | CosignatureVerifier:
    """A note verifier for an Ed25519 (0x01) or cosignature/v1 (0x04) vkey."""
    _, _, alg, _ = parse_vkey(vkey)
    if alg == ALG_ED25519:
        return NoteVerifier.from_vkey(vkey)
    if alg == ALG_COSIGNATURE_V1:
        return CosignatureVerifier.from_vkey(vkey)
    raise NoteError(f"unsupported signature type 0x{alg:02x}")
