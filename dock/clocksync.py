"""The device's side of a time sync: what it does with a dock's signed time answer.

Every answer the shipper gets (``dock.client.DockClient.sync_time``: already checked to be
signed by the pinned dock key over this device's fresh nonce) is recorded in the device's
chain as a signed ``time_sync`` record (crypto/records.py), applied or not, so that nothing
about the device's clock changes silently:

- a correction within the step limit (``max_step_us``, ``clock.max_step_s``: 5 s by
  default) is applied;
- a larger one is applied only when the answer carries an RFC 3161 token that verifies
  against the TSA CA the device pinned at provisioning, whose message imprint is
  SHA-256(json(answer)), and whose genTime is within ``token_tolerance_us`` of the dock's
  time; it is then also recorded as a ``clock_step`` (from which wall time to which);
- otherwise the clock stays as it is, the ``time_sync`` says ``applied: false``, and the
  wall clock keeps the refusal (``OffsetWallClock.refused``) for ``bwv status`` and the
  selftest to show.

A ``time_sync`` that cannot be written (a full disk) leaves the clock as it is: no
correction is ever applied that the chain does not hold (a ``clock_step`` that cannot be
written after it is logged; its ``time_sync`` already says the step was applied).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from base.clock import Clock, OffsetWallClock
from crypto.manifest import clock_step_fields, time_sync_fields
from crypto.records import SignedRecord
from dock.client import DockClient, TimeSync
from dock.clockstate import write_clock_state

log = logging.getLogger("bwv.clock")

DEFAULT_MAX_STEP_US = 5_000_000
DEFAULT_TOKEN_TOLERANCE_US = 2_000_000


class ChainWriter(Protocol):
    def append(self, record_type: str, fields: dict[str, object]) -> tuple[SignedRecord, object]:
        """Sign ``fields`` as the next chain record (crypto.manifest.Chain.append)."""
        ...


TokenCheck = Callable[[bytes, bytes, bytes], int]  # (token, digest, ca_pem) -> genTime µs


@dataclass(frozen=True)
class ClockPolicy:
    max_step_us: int = DEFAULT_MAX_STEP_US
    token_tolerance_us: int = DEFAULT_TOKEN_TOLERANCE_US
    tsa_ca_pem: bytes | None = None  # the TSA CA pinned at provisioning (None: none pinned)


@dataclass(frozen=True)
class SyncOutcome:
    applied: bool
    offset_us: int  # dock − device, as the answer says
    time_sync_seq: int
    clock_step_seq: int | None  # when a correction over the step limit was applied
    refused: str | None  # why it was not applied


def _verify_token(token: bytes, digest: bytes, ca_pem: bytes) -> int:
    from tsa.verify import verify_token  # lazily: the camera does not load it at start

    return verify_token(token, digest, ca_pem)


class ClockKeeper:
    """Records each time sync in the chain and corrects the wall clock when it may."""

    def __init__(
        self,
        chain: ChainWriter,
        wall: OffsetWallClock,
        clock: Clock,
        policy: ClockPolicy | None = None,
        *,
        verify_token: TokenCheck = _verify_token,
        warn: Callable[[str | None], None] | None = None,
        state_path: Path | None = None,
    ) -> None:
        """``warn`` hears every refusal (the daemon shows it to the officer), and None once a
        correction is applied again (the warning goes); ``state_path``
        (dock/clockstate.py) keeps the last sync's outcome for ``bwv status``."""
        self.chain = chain
        self.wall = wall
        self.clock = clock
        self.policy = policy or ClockPolicy()
        self.verify_token = verify_token
        self.warn = warn
        self.state_path = state_path

    def on_time(self, sync: TimeSync) -> SyncOutcome:
        """Record ``sync`` and apply it if it may be (see the module docstring)."""
        now = self.clock.now_us()
        large = abs(sync.offset_us) > self.policy.max_step_us
        refused = self._why_not(sync) if large else None
        applied = refused is None
        rec, _ = self.chain.append(
            "time_sync",
            time_sync_fields(
                capture_us=now,
                device_wall_us=sync.device_time_us,
                nonce=sync.nonce,
                dock_time_us=sync.dock_time_us,
                dock_key_id=sync.dock_key_id,
                dock_signature=sync.signature.hex(),
                offset_us=sync.offset_us,
                applied=applied,
                tsa_token=sync.tsa_token.hex() if sync.tsa_token is not None else None,
            ),
        )
        if refused is not None:
            self._refuse(sync, refused)
            return self._outcome(sync, SyncOutcome(False, sync.offset_us, rec.seq, None, refused))
        before = self.wall.wall_us(now)
        step_seq = None
        if large:
            try:
                step, _ = self.chain.append(
                    "clock_step",
                    clock_step_fields(
                        capture_us=now,
                        from_wall_us=before,
                        to_wall_us=before + sync.offset_us,
                        time_sync_seq=rec.seq,
                    ),
                )
                step_seq = step.seq
            except OSError as exc:  # the signed time_sync says it is applied: it is
                log.error("clock step not recorded (%s); its time_sync says it", exc)
        self.wall.resync(now, before + sync.offset_us, rec.seq)
        if self.warn is not None:
            self.warn(None)
        log.info("wall clock set from the dock (corrected by %d µs)", sync.offset_us)
        return self._outcome(sync, SyncOutcome(True, sync.offset_us, rec.seq, step_seq, None))

    def _outcome(self, sync: TimeSync, out: SyncOutcome) -> SyncOutcome:
        if self.state_path is not None:
            state = {
                "time_sync_seq": out.time_sync_seq,
                "applied": out.applied,
                "offset_us": out.offset_us,
                "dock_time_us": sync.dock_time_us,
                "refused": self.wall.refused if not out.applied else None,
            }
            try:
                write_clock_state(self.state_path, state)
            except OSError as exc:
                log.error("cannot keep the clock's state: %s", exc.strerror or exc)
        return out

    def _why_not(self, sync: TimeSync) -> str | None:
        """Why a correction over the step limit may not be applied (None: it may)."""
        limit_s = self.policy.max_step_us / 1e6
        if len(sync.nonce) != 32:  # the token must stamp an answer to this device's nonce
            return "the dock's answer is bound to no nonce of this camera's"
        if sync.tsa_token is None:
            return f"the dock's answer carries no RFC 3161 token (over the {limit_s:g} s limit)"
        if self.policy.tsa_ca_pem is None:
            return "no TSA CA pinned at provisioning: a token cannot be checked"
        digest = hashlib.sha256(sync.answer_bytes).digest()
        try:
            gen_us = self.verify_token(sync.tsa_token, digest, self.policy.tsa_ca_pem)
        except Exception as exc:  # TokenError, or a library missing: never applied on doubt
            return f"the RFC 3161 token does not verify ({exc})"
        if abs(gen_us - sync.dock_time_us) > self.policy.token_tolerance_us:
            return (
                f"the RFC 3161 token's time is {(gen_us - sync.dock_time_us) / 1e6:+.1f} s "
                "from the dock's"
            )
        return None

    def _refuse(self, sync: TimeSync, why: str) -> None:
        days = sync.offset_us / 86_400e6
        what = f"{days:+.1f} days" if abs(days) >= 1 else f"{sync.offset_us / 1e6:+.1f} s"
        msg = f"clock kept: the dock's time is {what} from this camera's; {why}"
        self.wall.refuse(msg)
        log.warning("%s", msg)
        if self.warn is not None:
            self.warn(msg)


def shipper_on_time(keeper: ClockKeeper, client: DockClient) -> Callable[[TimeSync], None]:
    """The shipper's ``on_time`` for ``keeper``: once the wall clock carries the correction,
    the client stops adding the offset to its request stamps (they would count it twice)."""

    def on_time(sync: TimeSync) -> None:
        if keeper.on_time(sync).applied:
            client.offset_us = 0

    return on_time
