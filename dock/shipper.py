"""The device's shipper: finished segments → the dock, oldest first, deleted only on receipt.

``Shipper.step()`` does one unit of work (sync time, ship the oldest pending segment) and says
what it did and when to come back; it never sleeps, and time comes from an injected clock,
so tests drive it step by step. ``ShipperThread`` runs it in its own low-priority thread on
the device, waking when a segment closes or the camera is docked.

Per segment: a stored file of one chunk at most goes whole in one request, signed by its stored
digest (dock/ship_whole.py: the dock creates, takes, completes and answers the receipt);
otherwise, or after a failed attempt, create the upload (idempotent: the id is the manifest's
hash), ask the offset, append the rest in checksummed chunks, complete; check the receipt (dock
key, device, segment id, manifest hash, stored digest and size of the bytes sent), with
witnesses pinned check its proof (dock/log_proof.py: the record in a checkpoint of the pinned
dock cosigned by the quorum of pinned witnesses; otherwise the segment stays, reported as
unwitnessed, and is asked about again after ``witness_retry_s``), check right before the delete
that the local file still holds the bytes the receipt names (a file changed since its upload
stays, and is reported: its stamp shows it unchanged since this step read and sent all of it,
or it is hashed again, dock/ship_stamp.py), keep the receipt, delete the segment. A segment
whose manifest names set-aside unsigned bytes (``unsigned_tail``: what a crash left after the
last signed chunk) ships them next, as their own kind of upload (dock/ship_unsigned.py,
dock/unsigned.py), deleted on the dock's receipt for them. Any fault leaves the segment where
it is; the next attempt resumes at the dock's offset, after an exponential backoff. A segment
the dock refuses (verification, chain conflict) stays on the device, is reported, and is not
retried until ``retry_refused``."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from base.clock import Clock
from dock.client import DockClient, DockFull, DockRefused, DockUnavailable, TimeSync
from dock.device_report import Reporter
from dock.log_proof import WitnessPolicy, check_proof
from dock.outbox import (  # noqa: F401 - ChainOutbox, Outbox, valid_receipts: used from here
    ChainOutbox,
    Outbox,
    OutboxSegment,
    _digest_file,
    valid_receipts,
)
from dock.protocol import Code, segment_id_for
from dock.receipts import SignedReceipt, UploadState
from dock.ship_chunks import ReadAhead, ReceiptInvalid, check_held_file, declared
from dock.ship_stamp import FileStamp, unchanged_since
from dock.ship_unsigned import ship_unsigned
from dock.ship_whole import fits_whole, put_whole

log = logging.getLogger("bwv.shipper")

MIN_CHUNK = 64 << 10
CONTINUE = frozenset({"shipped", "refused", "vanished", "unwitnessed"})  # more to ship now


# --------------------------------------------------------------------------- shipper


@dataclass(frozen=True)
class ShipperConfig:
    chunk_bytes: int = 8 << 20  # the dock's default largest body (dock.instance)
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    backoff_factor: float = 2.0
    jitter: float = 0.2  # ± fraction of each backoff, so docked cameras do not stampede
    resync_time_s: float = 3600.0  # ask the dock's time again this often while docked
    idle_poll_s: float = 10.0  # the thread looks at the outbox this often when idle
    max_rounds: int = 8  # offset re-reads within one attempt before giving up on it
    witness_retry_s: float = 30.0  # ask again for a witnessed proof of a kept segment


class ReceiptUnwitnessed(Exception):
    """A valid receipt whose proof does not (yet) show the record in a checkpoint cosigned
    by the pinned witnesses: the segment stays, and is asked about again later."""


@dataclass(frozen=True)
class StepReport:
    action: str  # shipped | idle | waiting | undocked | failed | refused | vanished | unwitnessed
    segment: str | None = None  # the segment's manifest file name
    detail: str = ""
    retry_at_us: int | None = None  # for waiting/failed: when the next attempt is due
    bytes_sent: int = 0


@dataclass
class ShipperState:
    failures: int = 0
    next_try_us: int = 0
    synced_at_us: int | None = None
    shipped: int = 0
    bytes_sent: int = 0
    last_error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)  # manifest name -> dock's reason
    witnessed: bool = False  # the camera pins witnesses: deletes wait for their cosignature
    # shipped, but kept: the receipt's proof is not (yet) witnessed: name -> why, next try
    unwitnessed: dict[str, str] = field(default_factory=dict)
    unwitnessed_retry_us: dict[str, int] = field(default_factory=dict)


class Shipper:
    """Ships an outbox to a dock, one step at a time. Not thread-safe: one thread drives it."""

    def __init__(
        self,
        outbox: Outbox,
        client: DockClient,
        clock: Clock,
        *,
        config: ShipperConfig | None = None,
        docked: Callable[[], bool] = lambda: True,
        on_time: Callable[[TimeSync], None] | None = None,
        rng: random.Random | None = None,
        witnesses: WitnessPolicy | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        """``docked`` says whether the camera sits in its dock; ``on_time`` receives each
        time sync (the daemon re-anchors its wall clock with it: capture/clock.py);
        ``witnesses``: the pinned witnesses whose cosignature a delete waits for (none: a
        receipt alone, "unwitnessed"); ``reporter``: the device's report to the dock, sent
        at the start of each round, best effort (default: firmware from the outbox's
        records, no battery, storage of the outbox: dock/device_report.py)."""
        self.outbox = outbox
        self.client = client
        self.clock = clock
        self.config = config or ShipperConfig()
        self.docked = docked
        self.on_time = on_time
        self.rng = rng or random.Random(0)
        self.witnesses = witnesses or WitnessPolicy()
        self.state = ShipperState(witnessed=self.witnesses.witnessed)
        self.reporter = reporter or Reporter(outbox)
        self._ahead = ReadAhead(self.config.chunk_bytes)  # next chunk, read while the dock works
        self._reconciled = False
        self._whole = True  # the dock takes a whole segment in one request (until it says no)
        self._in_round = False  # records were pending at the last step (a round under way)

    # -- scheduling

    def step(self) -> StepReport:
        now = self.clock.now_us()
        if not self._reconciled:
            self.reconcile()
        if not self.docked():
            self.state.synced_at_us = None
            self._in_round = False
            return StepReport("undocked")
        if now < self.state.next_try_us:
            return StepReport("waiting", retry_at_us=self.state.next_try_us)
        segment: OutboxSegment | None = None
        try:
            self._sync_time(now)
            pending, later = self._pending(now)
            self._report(now, bool(pending))
            if not pending:
                self._ahead.discard()  # nothing to ship: hold no chunk
                if later is not None:
                    return StepReport("waiting", retry_at_us=later)
                return StepReport("idle")
            segment = pending[0]
            receipt, sent, stamp = self._ship(segment, pending[1] if len(pending) > 1 else None)
            sent += ship_unsigned(
                self.client, self.outbox, segment, self.config.chunk_bytes, self.config.max_rounds
            )
            self._check_witnessed(segment, receipt)
            self._check_unchanged(segment, receipt, stamp)
            self.outbox.delete(segment, receipt)
        except FileNotFoundError:
            return StepReport(
                "vanished",
                segment.name if segment else None,
                "segment left the outbox while being shipped",
            )
        except ReceiptUnwitnessed as exc:
            return self._unwitnessed(segment, str(exc), now)
        except DockRefused as exc:
            return self._refused(segment, exc, now)
        except DockFull as exc:
            return self._failed(segment, str(exc), now, full=True)
        except (DockUnavailable, OSError) as exc:
            return self._failed(segment, str(exc), now)
        self.state.failures = 0
        self.state.last_error = None
        self.state.unwitnessed.pop(segment.name, None)
        self.state.unwitnessed_retry_us.pop(segment.name, None)
        self.state.shipped += 1
        self.state.bytes_sent += sent
        log.info(
            "shipped %s (seq %d): receipt %s",
            segment.name,
            segment.seq,
            receipt.receipt.log_entry_hash[:16],
        )
        return StepReport("shipped", segment.name, bytes_sent=sent)

    def drain(self, max_steps: int = 10_000) -> list[StepReport]:
        """Step until the outbox is empty or a backoff must be waited out."""
        reports = []
        for _ in range(max_steps):
            r = self.step()
            reports.append(r)
            if r.action not in CONTINUE:
                break
        return reports

    def reconcile(self) -> list[str]:
        """Finish the deletes a crash cut short (the first step does it; docked or not)."""
        self._reconciled = True
        ident = self.client.credentials
        reconcile = getattr(self.outbox, "reconcile", None)
        if reconcile is None:
            return []
        try:
            return reconcile(ident.dock_public_key, ident.device_id)
        except OSError as exc:
            log.error("outbox: cannot finish earlier deletes: %s", exc)
            return []

    def retry_refused(self) -> None:
        self.state.refused.clear()

    def _pending(self, now: int) -> tuple[list[OutboxSegment], int | None]:
        """The next two records to ship now, oldest first (read one at a time: a shift's
        outbox holds thousands); with none, when the next kept one (shipped, not yet
        witnessed) is due again (None: none waits)."""
        st, pending, later = self.state, list[OutboxSegment](), None
        for s in self.outbox.ready():
            if s.name in st.refused:
                continue
            due = st.unwitnessed_retry_us.get(s.name)
            if due is not None and due > now:
                later = due if later is None else min(later, due)
                continue
            pending.append(s)
            if len(pending) == 2:
                break
        return pending, later

    def _check_witnessed(self, seg: OutboxSegment, r: SignedReceipt) -> None:
        """With witnesses pinned: the receipt's proof puts this record in a checkpoint of the
        pinned dock, cosigned by the quorum of pinned witnesses (dock/log_proof.py)."""
        if not self.witnesses.witnessed:
            return
        why = check_proof(
            r.proof,
            r.receipt.leaf_index,
            seg.manifest_path.read_bytes(),
            self.client.credentials.dock_public_key,
            self.witnesses,
        )
        if why is not None:
            raise ReceiptUnwitnessed(why)

    def _unwitnessed(self, segment: OutboxSegment | None, why: str, now: int) -> StepReport:
        assert segment is not None
        retry = now + int(self.config.witness_retry_s * 1_000_000)
        self.state.unwitnessed[segment.name] = why
        self.state.unwitnessed_retry_us[segment.name] = retry
        log.warning("%s shipped but kept: %s; asking again later", segment.name, why)
        return StepReport("unwitnessed", segment.name, why, retry)

    def _backoff_us(self) -> int:
        c = self.config
        delay = min(
            c.backoff_max_s, c.backoff_initial_s * c.backoff_factor ** (self.state.failures - 1)
        )
        delay *= 1 + c.jitter * (2 * self.rng.random() - 1)
        return max(1, int(delay * 1_000_000))

    def _failed(
        self, segment: OutboxSegment | None, why: str, now: int, full: bool = False
    ) -> StepReport:
        self.state.failures += 1
        self.state.last_error = why
        self.state.next_try_us = now + self._backoff_us()
        wait_s = (self.state.next_try_us - now) / 1e6
        if full:  # the dock's disk: nothing is wrong with this camera, its keys or footage
            log.warning("dock full: everything stays on the camera; retry in %.1f s", wait_s)
        else:
            log.warning(
                "shipping failed (attempt %d), retry in %.1f s: %s",
                self.state.failures,
                wait_s,
                why,
            )
        return StepReport("failed", segment.name if segment else None, why, self.state.next_try_us)

    def _refused(self, segment: OutboxSegment | None, exc: DockRefused, now: int) -> StepReport:
        if segment is not None and exc.code in Code.SEGMENT:
            # about this segment: keep it, report it, go on with the others
            self.state.refused[segment.name] = exc.detail
            log.error("dock refused %s: %s", segment.name, exc.detail)
            return StepReport("refused", segment.name, exc.detail)
        if exc.code == Code.STALE:
            self.state.synced_at_us = None  # our clock drifted: sync on the next attempt
        return self._failed(segment, str(exc), now)

    def _report(self, now: int, pending: bool) -> None:
        """The device's report to the dock when due: best effort, shipping goes on."""
        round_start, emptied = pending and not self._in_round, self._in_round and not pending
        self._in_round = pending
        if self.reporter.due(now, round_start, emptied):
            self.reporter.send(self.client, now)

    def _sync_time(self, now: int) -> None:
        s = self.state.synced_at_us
        if s is None or now - s >= self.config.resync_time_s * 1_000_000:
            sync = self.client.sync_time()
            self.state.synced_at_us = now
            log.info(
                "dock time: offset %+d µs (round trip %d µs)", sync.offset_us, sync.round_trip_us
            )
            if self.on_time is not None:
                self.on_time(sync)

    # -- one segment

    def _ship(
        self, seg: OutboxSegment, after: OutboxSegment | None
    ) -> tuple[SignedReceipt, int, FileStamp | None]:
        """Ship one record: whole in one request if it fits (dock/routes/whole.py), else in
        chunks; its receipt, the bytes sent, and the file's stamp if this step read and sent
        all of it (dock/ship_stamp.py)."""
        manifest = seg.manifest_path.read_bytes()
        sid = segment_id_for(manifest)
        digest, size = declared(manifest, seg.blob_path, self.outbox.verifier)
        state, receipt, stamp, sent = None, None, None, 0
        if self._goes_whole(seg):
            nxt = after.blob_path if after is not None else None
            state, receipt, stamp = self._put_whole(seg, sid, manifest, digest, size, nxt)
            sent = size if receipt is not None else 0
        if receipt is None:
            if self._goes_whole(after):
                after = None  # it goes whole, read as it is sent: nothing to read ahead
            receipt, n, stamp = self._ship_chunks(seg, sid, manifest, digest, size, state, after)
            sent += n
        self._check_receipt(receipt, seg, sid, manifest, digest, size)
        return receipt, sent, stamp

    def _goes_whole(self, seg: OutboxSegment | None) -> bool:
        """Whether the record ships whole (dock/ship_whole.py): not after a failed attempt
        (a resumed upload goes on in chunks from the dock's offset), nor to a dock that
        takes chunks only."""
        return self._whole and not self.state.failures and fits_whole(seg, self.config.chunk_bytes)

    def _put_whole(
        self,
        seg: OutboxSegment,
        sid: str,
        manifest: bytes,
        digest: str,
        size: int,
        next_file: Path | None,
    ) -> tuple[UploadState | None, SignedReceipt | None, FileStamp | None]:
        answer = put_whole(self.client, seg, sid, manifest, digest, size, next_file)
        if answer.chunks_only:
            self._whole = False
        return answer.state, answer.receipt, answer.stamp

    def _ship_chunks(
        self,
        seg: OutboxSegment,
        sid: str,
        manifest: bytes,
        digest: str,
        size: int,
        state: UploadState | None,
        after: OutboxSegment | None,
    ) -> tuple[SignedReceipt, int, FileStamp | None]:
        """Ship the record in chunks from the dock's offset (``state``: where it stands, if
        known; ``after``'s first chunk read while the dock completes this one)."""
        sent = 0
        chunk_bytes = self.config.chunk_bytes
        if state is None:
            state = self.client.create_upload(sid, manifest, size, digest)
        stamp = None
        for _ in range(self.config.max_rounds):
            if state.complete:  # held already (a delete cut short, or a file changed since)
                check_held_file(seg, digest, size)
                if state.receipt is None:
                    raise ReceiptInvalid(f"{seg.name}: upload complete but no receipt given")
                return state.receipt, sent, None
            try:
                state, n, stamp = self._ahead.send(self.client, seg, sid, state, chunk_bytes, after)
                sent += n
                return state.receipt or self.client.complete(sid), sent, stamp  # last has it
            except DockRefused as exc:
                if exc.code == Code.BODY_TOO_LARGE and chunk_bytes > MIN_CHUNK:
                    chunk_bytes = max(MIN_CHUNK, chunk_bytes // 2)  # the dock takes less
                elif exc.code not in Code.REREAD:
                    raise
                # the dock's offset moved (a retried chunk landed after all), the upload is
                # gone, a chunk was damaged on the way, or it is not all there: ask again
                state = self._reread(sid, manifest, size, digest)
        raise DockUnavailable(f"{seg.name}: no progress after {self.config.max_rounds} rounds")

    def _reread(self, sid: str, manifest: bytes, size: int, digest: str) -> UploadState:
        state = self.client.upload_state(sid)
        if state is None:  # the dock dropped it: start again
            state = self.client.create_upload(sid, manifest, size, digest)
        return state

    def _check_receipt(
        self,
        r: SignedReceipt,
        seg: OutboxSegment,
        sid: str,
        manifest: bytes,
        digest: str,
        size: int,
    ) -> None:
        ident = self.client.credentials
        rc = r.receipt
        problems = []
        if not r.verify(ident.dock_public_key):
            problems.append("not signed by the pinned dock key")
        if rc.device_id != ident.device_id:
            problems.append("names another device")
        if rc.segment_id != sid or rc.manifest_sha256 != segment_id_for(manifest):
            problems.append("names another manifest")
        if not (rc.stored_digest == digest and rc.stored_size == size):
            problems.append("names other stored bytes")
        if problems:
            raise ReceiptInvalid(f"{seg.name}: receipt refused: " + ", ".join(problems))

    def _check_unchanged(
        self, seg: OutboxSegment, r: SignedReceipt, stamp: FileStamp | None = None
    ) -> None:
        """Right before the delete: delete only the exact bytes the dock vouches for (a file
        changed since its upload stays, and is reported). The file is hashed again, unless
        its stamp shows it is the one this step read and sent, unchanged since
        (dock/ship_stamp.py)."""
        rc = r.receipt
        if (
            stamp is not None
            and stamp.size == rc.stored_size
            and unchanged_since(stamp, seg.blob_path)
        ):
            return
        if _digest_file(seg.blob_path) != (rc.stored_digest, rc.stored_size):
            what = seg.blob_path.name if seg.blob_path is not None else seg.name
            log.error(
                "%s changed on the camera since its upload: not the bytes the dock's receipt "
                "names; kept",
                what,
            )
            raise ReceiptInvalid(f"{seg.name}: receipt refused: names other stored bytes")


# --------------------------------------------------------------------------- thread


class ShipperThread:
    """Runs a shipper in its own thread (niced on Linux), so uploads never hold up capture.

    ``wake()`` asks for an attempt now (a segment closed, the camera was docked); otherwise
    it waits until the shipper's next attempt is due, or ``idle_poll_s``.
    """

    def __init__(self, shipper: Shipper, *, nice: int = 10) -> None:
        self.shipper = shipper
        self.nice = nice
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bwv-shipper", daemon=True)

    def start(self) -> ShipperThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while not self._stop.is_set():
            try:
                r = self.shipper.step()
            except Exception:  # never let the thread die silently; report and back off
                log.exception("shipper step failed")
                r = StepReport("failed")
            if r.action in CONTINUE:
                continue
            delay = self.shipper.config.idle_poll_s
            if r.retry_at_us is not None:
                delay = max(0.0, (r.retry_at_us - self.shipper.clock.now_us()) / 1e6)
            self._wake.wait(delay)
            self._wake.clear()
