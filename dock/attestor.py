"""The device's side of enrolling a key held in a TPM, as dock.client.enroll uses it
(tpm/attest.py implements it: ``TpmAttestor``; the wire: dock/README.md, "Enrollment")."""

from __future__ import annotations

from typing import Protocol


class Attestor(Protocol):
    def begin(self) -> dict[str, str]:
        """The challenge request's ``"tpm"``: ``ek_certificate``, ``ak_public`` (hex)."""
        ...

    def finish(self, credential: dict[str, str], challenge: str) -> dict[str, str]:
        """The enrollment's ``"attestation"`` (hex fields), from the challenge answer's
        ``"tpm"`` (the credential to activate) and the challenge (certify's qualifying data)."""
        ...
