"""The agency key the dock holds footage for: pinned in its store, checked on every segment.

Cameras seal each segment's key to the agency's X25519 public key and sign its agency key id
(first 16 hex digits of SHA-256 of that key) in the segment's header and manifest (format
v2). A camera given a substitute ``agency.pub`` seals footage the agency cannot open and
whoever holds the substitute key can: the dock refuses it (``wrong_agency_key``), before a
receipt lets the camera delete its copy, and logs the refusal in its custody log.

The dock knows the agency's public key from ``STORE/agency.pub`` (pinned by
``bwv dock serve --agency-pub FILE``; never replaced silently: another key is refused until
the operator moves the pinned one aside). A dock without it cannot tell and says so
(``bwv dock serve``, ``bwv dock status``): it takes footage as before, because refusing
everything would only keep footage on cameras it cannot check either.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from crypto.durable import write_atomic
from crypto.identity import IdentityError, load_agency_public_key
from crypto.seal import (
    HEADER_BYTES,
    MAGIC,
    MAX_CONTEXT,
    SEALED_KEY_BYTES,
    SealFormatError,
    parse_header,
)
from crypto.seal import agency_key_id as key_id_of_agency
from dock.protocol import Code
from dock.verify import ManifestFields

AGENCY_PUB_FILE = "agency.pub"
_HEADER_MAX = len(MAGIC) + 6 + MAX_CONTEXT + SEALED_KEY_BYTES + HEADER_BYTES
NOT_CONFIGURED = (
    "no agency key pinned: the dock cannot refuse footage sealed to another agency key "
    "(pin it: bwv dock serve --agency-pub agency.pub)"
)


class AgencyKeyError(ValueError):
    """The agency key cannot be pinned or read (the text says why, in one line)."""


def pinned_agency_key_id(store_dir: Path) -> str | None:
    """The agency key id the store pins (``STORE/agency.pub``), or None."""
    path = Path(store_dir) / AGENCY_PUB_FILE
    if not path.exists():
        return None
    try:
        return key_id_of_agency(load_agency_public_key(path))
    except IdentityError as exc:
        raise AgencyKeyError(f"{path}: {exc}") from None


def pin_agency_key(store_dir: Path, public_key: bytes) -> str:
    """Pin the agency's 32-byte X25519 public key in the store (once); its key id. Another
    key than the one pinned is refused: changing it is the operator's deliberate act."""
    kid = key_id_of_agency(public_key)
    held = pinned_agency_key_id(store_dir)
    if held is None:
        path = Path(store_dir) / AGENCY_PUB_FILE
        write_atomic(path, bytes(public_key).hex().encode() + b"\n", mode=0o644)
    elif held != kid:
        raise AgencyKeyError(
            f"this dock is pinned to agency key {held}, not {kid}: footage sealed to another "
            f"key is refused. To change the agency key, move {store_dir}/{AGENCY_PUB_FILE} "
            "aside first"
        )
    return kid


def agency_refusal(
    expected: str | None, fields: ManifestFields, blob: BinaryIO | None = None
) -> tuple[str, str] | None:
    """(code, reason) if the segment is not sealed to the agency key ``expected`` (None: no
    key pinned, nothing checked): its signed manifest, and its stored header when ``blob``
    (read from its start, then rewound) is given."""
    if expected is None or fields.record_type != "manifest":
        return None
    signed = fields.raw.get("agency_key_id")
    if signed != expected:
        return Code.WRONG_AGENCY_KEY, (
            f"segment sealed to agency key {signed}, not to this dock's agency key "
            f"{expected}: the agency could not open it (a substituted agency.pub?)"
        )
    if blob is None:
        return None
    blob.seek(0)
    head = blob.read(_HEADER_MAX)
    blob.seek(0)
    try:
        ctx, _, _ = parse_header(head)
    except SealFormatError as exc:
        return Code.VERIFICATION, f"the stored segment's header cannot be read ({exc})"
    if ctx.agency_key_id != expected:
        return Code.WRONG_AGENCY_KEY, (
            f"the stored segment's header names agency key {ctx.agency_key_id}, not this "
            f"dock's agency key {expected}"
        )
    return None
