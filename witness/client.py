"""A client of a C2SP tlog-witness (what the dock's log and a monitor use), over httpx.

- ``add_checkpoint(signed_note, old_size, proof)``: the cosignature lines (without their
  newlines); ``WitnessConflict`` (409: ``.size`` is the witness's size) or
  ``WitnessRefused`` (any other refusal, ``.status``; ``WitnessUnavailable``, a subclass
  with ``status`` None, when the witness cannot be reached);
- ``submit(signed_note, old_size, proof_from)``: the same, and after a 409 once more from
  the witness's size with ``proof_from(size)``;
- ``latest(origin)``: the latest cosigned checkpoint the witness holds, or None.

With ``vkey`` (the witness's cosignature/v1 vkey, pinned), the lines returned are checked:
only valid cosignatures of the submitted checkpoint from that key are kept, and none is a
``WitnessRefused``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from urllib.parse import quote

import httpx

from tlog.cosignature import CosignatureVerifier
from tlog.note import NoteError, split_note

TIMEOUT_S = 10.0


class WitnessRefused(Exception):
    """The witness did not cosign; ``status`` is its HTTP status (None: not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WitnessUnavailable(WitnessRefused):
    """The witness could not be reached, or answered garbage."""


class WitnessConflict(WitnessRefused):
    """409: the old size is not the witness's; ``size`` is the size it holds."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the witness holds a checkpoint of size {size}", 409)
        self.size = size


def request_body(signed_note: bytes, old_size: int, proof: Sequence[bytes]) -> bytes:
    lines = [f"old {int(old_size)}", *(base64.b64encode(h).decode() for h in proof), ""]
    return ("\n".join(lines) + "\n").encode() + bytes(signed_note)


class WitnessClient:
    def __init__(
        self,
        url: str,
        vkey: str | None = None,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.verifier = None if vkey is None else CosignatureVerifier.from_vkey(vkey)
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, content: bytes | None = None) -> httpx.Response:
        try:
            return self._http.request(method, self.url + path, content=content)
        except httpx.HTTPError as exc:
            raise WitnessUnavailable(f"witness {self.url}: {exc or type(exc).__name__}") from None

    def add_checkpoint(
        self, signed_note: bytes, old_size: int, proof: Sequence[bytes]
    ) -> list[str]:
        r = self._send("POST", "/add-checkpoint", request_body(signed_note, old_size, proof))
        if r.status_code == 409:
            text = r.text.strip()
            if not text.isdigit():
                raise WitnessUnavailable(f"witness {self.url}: a 409 without a size", 409)
            raise WitnessConflict(int(text))
        if r.status_code != 200:
            detail = " ".join(r.text.split())[:200]
            raise WitnessRefused(f"witness {self.url}: {r.status_code} {detail}", r.status_code)
        lines = [line for line in r.text.split("\n") if line]
        if not lines or not all(line.startswith("— ") for line in lines):
            raise WitnessUnavailable(f"witness {self.url}: an answer without cosignatures", 200)
        return self._checked(signed_note, lines)

    def _checked(self, signed_note: bytes, lines: list[str]) -> list[str]:
        if self.verifier is None:
            return lines
        try:
            text, _ = split_note(signed_note)
        except NoteError as exc:
            raise WitnessRefused(f"not a signed note: {exc}") from None
        good = [line for line in lines if self.verifier.verify(text, line) is not None]
        if not good:
            raise WitnessRefused(
                f"witness {self.url}: no valid cosignature from {self.verifier.name}"
            )
        return good

    def submit(
        self,
        signed_note: bytes,
        old_size: int,
        proof_from: Callable[[int], Sequence[bytes]],
        proof: Sequence[bytes] | None = None,
    ) -> list[str]:
        """``add_checkpoint`` from ``old_size``; after a 409, once more from the witness's
        size (``proof_from(size)`` is the consistency proof from it to the checkpoint)."""
        try:
            first = proof_from(old_size) if proof is None else proof
            return self.add_checkpoint(signed_note, old_size, first)
        except WitnessConflict as exc:
            try:
                retry = proof_from(exc.size)
            except ValueError:  # the witness holds more than this checkpoint: no proof
                raise exc from None
            return self.add_checkpoint(signed_note, exc.size, retry)

    def latest(self, origin: str) -> bytes | None:
        r = self._send("GET", "/checkpoint/" + quote(origin, safe=""))
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise WitnessRefused(f"witness {self.url}: {r.status_code}", r.status_code)
        return r.content
