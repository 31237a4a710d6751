"""The camera's own work a shipper step, in an outbox a shift has filled (a plain function;
the bench harness registers it): ``outbox_step_ms``, the time to find the next two records
to ship (the one shipped, the one read ahead) and to remove the one shipped once its receipt
is kept, with a shift's records waiting (8 hours of 10 s segments: 2880), no network. A
dock visit at the end of a shift takes that many steps."""

from __future__ import annotations

import tempfile
import time
from itertools import islice
from pathlib import Path

from nacl.signing import SigningKey

from dock.bench import Figure
from dock.outbox import ChainOutbox
from dock.protocol import segment_id_for
from dock.receipts import Receipt, sign_receipt
from dock.testing import OutboxDevice, segment_bytes

SHIFT_RECORDS = 8 * 3600 // 10


def outbox_step_ms(records: int = SHIFT_RECORDS, steps: int = 50) -> Figure:
    key = SigningKey(bytes(32))
    with tempfile.TemporaryDirectory() as tmp:
        dev = OutboxDevice(Path(tmp) / "outbox", "bench-cam")
        for i in range(records):
            dev.add_segment(segment_bytes(1_000, seed=i))
        outbox = ChainOutbox(dev.root)
        next(outbox.ready())  # the shipper's start reads the queue once
        t = time.perf_counter()
        for _ in range(steps):
            seg, _ahead = islice(outbox.ready(), 2)
            sid = segment_id_for(seg.manifest_path.read_bytes())
            fields = (dev.device_id, sid, seg.seq, sid, "0" * 64, 1, 1, 0, "0" * 64, 0)
            outbox.delete(seg, sign_receipt(key, Receipt(*fields, False, "bench")))
        per_step = (time.perf_counter() - t) / steps
    return Figure(
        "outbox_step_ms",
        round(per_step * 1000, 2),
        "ms",
        f"the camera's work a step (next two records, the shipped one's receipt kept "
        f"(fsync'd) and its files removed) with {records} records waiting, mean of {steps}",
    )
