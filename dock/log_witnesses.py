"""Asking one witness to cosign one of the dock log's checkpoints (C2SP tlog-witness
``add-checkpoint``), for dock/translog.py.

The dock asks from the size it believes the witness last cosigned. That belief may be stale
(lost, or left by another dock of a fleet that issued before this one took over): the
witness then answers 409 with the size it holds, and the dock asks once more from that size
with the consistency proof from it. A witness that holds more than the checkpoint offered
(or keeps naming other sizes) is an error the next sync retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dock.checkpoints import StoredCheckpoint
from dock.log_status import WitnessState

log = logging.getLogger("bwv.dock.log")

MAX_CONFLICTS = 3


class WitnessAhead(RuntimeError):
    """The witness holds a checkpoint this one cannot extend, or keeps naming sizes."""


def ask_witness(
    tree: Any,
    url: str,
    vkey: str,
    state: WitnessState,
    cp: StoredCheckpoint,
    body: str,
    client_factory: Callable[[str], Any] | None = None,
) -> list[str]:
    """The witness's valid cosignature lines for ``cp`` ([] and noted in ``state`` when
    none); ``state.size`` becomes ``cp.size`` when it cosigned."""
    from tlog.cosignature import CosignatureVerifier

    verifier = CosignatureVerifier.from_vkey(vkey)
    try:
        got = add_checkpoint(tree, url, cp, min(state.size, cp.size), client_factory)
    except Exception as exc:  # an unreachable or refusing witness: the next sync retries
        state.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("witness %s (%s): no cosignature: %s", state.name, url, exc)
        return []
    valid = [line for line in got if verifier.verify(body, line) is not None]
    if not valid:
        state.last_error = "answered without a valid cosignature"
        return []
    state.size, state.last_error = cp.size, None
    return valid


def add_checkpoint(
    tree: Any,
    url: str,
    cp: StoredCheckpoint,
    old: int,
    client_factory: Callable[[str], Any] | None = None,
) -> list[str]:
    """C2SP tlog-witness add-checkpoint from ``old``; a 409 names the size the witness
    holds: once more from that one (a witness ahead of this checkpoint is an error).
    ``client_factory(url)``: a client the caller owns (default: a ``WitnessClient``, closed
    here)."""
    from witness.client import WitnessClient, WitnessConflict

    client = (client_factory or WitnessClient)(url)
    try:
        for _ in range(MAX_CONFLICTS):
            try:
                lines: list[str] = client.add_checkpoint(
                    cp.note, old, tree.consistency_proof(old, cp.size)
                )
                return lines
            except WitnessConflict as exc:
                if not 0 <= exc.size <= cp.size or exc.size == old:
                    raise WitnessAhead(
                        f"the witness holds a checkpoint of size {exc.size}, which this "
                        f"log's checkpoint of size {cp.size} cannot extend"
                    ) from None
                log.info("witness %s holds size %d, not %d: asking from it", url, exc.size, old)
                old = exc.size
        raise WitnessAhead("the witness keeps naming another size")
    finally:
        close = getattr(client, "close", None)
        if close is not None and client_factory is None:
            close()
