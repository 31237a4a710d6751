"""One dock: its store, key, verifier, clock and limits (``Dock``), and ``open_dock`` to
make the embedded one on a store directory. ``dock.server.create_app`` turns a ``Dock`` into
an ASGI app; its routers get it through ``dock.routes.deps.get_dock``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from dock.activity import UploadActivity
from dock.agency import pinned_agency_key_id
from dock.backends import open_store
from dock.checkpoints import LogConfig
from dock.enroll import Challenges
from dock.keys import (
    ADMIN_TOKEN_FILE,
    DOCK_KEY_FILE,
    load_or_create_signing_key,
    load_or_create_token,
)
from dock.protocol import key_id
from dock.store import Store
from dock.tpm_trust import trusted_tpm_cas
from dock.translog import DockLog
from dock.verify import SegmentVerifier, default_verifier
from dock.wall import WallLimits


@dataclass(frozen=True)
class DockConfig:
    window_s: int = 300  # accepted skew between a request's timestamp and the dock's clock
    max_chunk_bytes: int = 8 << 20
    max_json_bytes: int = 1 << 20
    max_manifest_bytes: int = 256 << 10
    max_segment_bytes: int = 16 << 30
    wall: WallLimits = field(default_factory=WallLimits)  # dock/wall.py


def wall_clock_us() -> int:
    """The dock's clock at the edge (the app takes it injected)."""
    return time.time_ns() // 1000


@dataclass
class Dock:
    """Everything one dock server needs; ``create_app`` turns it into an ASGI app."""

    store: Store
    key: SigningKey
    verifier: SegmentVerifier = field(default_factory=default_verifier)
    clock: Callable[[], int] = wall_clock_us
    config: DockConfig = field(default_factory=DockConfig)
    admin_token: str | None = None
    challenges: Challenges = field(default_factory=Challenges)
    agency_key_id: str | None = None  # the pinned agency key (dock/agency.py); None: none
    tsa: Any = None  # stamps time answers: ``timestamp(sha256) -> token`` (dock/routes/time.py)
    translog: DockLog | None = None  # the transparency log (dock/translog.py)
    activity: UploadActivity = field(default_factory=UploadActivity)  # uploads under way
    tpm_cas: tuple[Any, ...] = ()  # x509 certificates: TPM makers' CAs (dock/tpm_trust.py)

    @property
    def public_key(self) -> bytes:
        return bytes(self.key.verify_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def open_dock(
    store_dir: Path,
    *,
    clock: Callable[[], int] = wall_clock_us,
    verifier: SegmentVerifier | None = None,
    config: DockConfig | None = None,
    admin_api: bool = True,
    log_config: LogConfig | None = None,
    witness_client: Callable[[str], Any] | None = None,
) -> Dock:
    """The embedded dock on ``store_dir``: its key and admin token are made on first use.
    Its transparency log uses ``log_config`` (default: the one kept in the store), and
    ``witness_client`` to reach its witnesses (tests; default: witness.client)."""
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_signing_key(store_dir / DOCK_KEY_FILE)
    token = load_or_create_token(store_dir / ADMIN_TOKEN_FILE) if admin_api else None
    tpm_cas = trusted_tpm_cas(store_dir)  # TpmCaError (one line) before the store is open
    store = open_store(store_dir, key)
    return Dock(
        store,
        key,
        verifier or default_verifier(),
        clock,
        config or DockConfig(),
        token,
        agency_key_id=pinned_agency_key_id(store_dir),
        translog=DockLog(store_dir, key, store, log_config, witness_client),
        tpm_cas=tpm_cas,
    )
