"""Open the device's evidence sink from its configuration, or say exactly why it cannot.

A device records only when it can make trustworthy evidence: its own signing key
(``bwv provision`` makes it) and the agency's public key to seal footage to. A pinned dock
key that is present but unreadable is refused too (something is wrong with provisioning);
a missing one only means the device cannot ship yet, which is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capture.config import Config
from capture.device_key import DeviceKey, open_configured_key
from crypto.evidence import EvidenceSink
from crypto.identity import IdentityError, load_agency_public_key, load_dock_public_key


@dataclass
class EvidenceSetup:
    sink: EvidenceSink | None
    refusal: str | None  # why the device must not record (None: it can)
    warnings: list[str]
    key: DeviceKey | None = None  # the device's key (file or TPM), shared with the shipper


def outbox_dir(cfg: Config) -> Path:
    return Path(cfg.storage.dir) / "outbox"


def chain_state_path(cfg: Config) -> Path:
    return Path(cfg.storage.dir) / "chain_state.json"


def open_evidence(cfg: Config, firmware_version: str) -> EvidenceSetup:
    k = cfg.keys
    warnings: list[str] = []
    if not Path(k.device_key).exists():
        return EvidenceSetup(
            None, f"no device key at {k.device_key}: run `bwv provision`", warnings
        )
    try:
        agency = load_agency_public_key(Path(k.agency_public_key))
        key = open_configured_key(cfg)
    except IdentityError as exc:
        return EvidenceSetup(None, f"cannot record: {exc}", warnings)
    if Path(k.dock_public_key).exists():
        try:
            load_dock_public_key(Path(k.dock_public_key))
        except IdentityError as exc:
            return EvidenceSetup(None, f"cannot record: {exc}", warnings, key)
    else:
        warnings.append(f"no dock key pinned at {k.dock_public_key}: cannot ship footage")
    try:
        sink = EvidenceSink(
            outbox_dir(cfg),
            key.signer,
            agency,
            firmware_version,
            chain_state_path(cfg),
            counter=key.counter,
        )
    except (OSError, ValueError) as exc:
        return EvidenceSetup(None, f"cannot open the evidence store: {exc}", warnings, key)
    return EvidenceSetup(sink, None, warnings, key)
