"""The enrollment's challenge, as the device asks for it (dock.client.enroll): with a TPM's
keys (``dock.attestor.Attestor``), the answer carries the credential the TPM activates."""

from __future__ import annotations

import httpx

from dock.attestor import Attestor
from dock.client import DockRefused, DockUnavailable


def ask_challenge(http: httpx.Client, attestor: Attestor | None) -> tuple[str, dict[str, str]]:
    """A fresh one-time challenge, and (``attestor``) the credential its TPM activates."""
    ask = {"tpm": attestor.begin()} if attestor is not None else None
    try:
        resp = http.post("/v1/enroll/challenge", json=ask)
        body = resp.json()
        if resp.status_code >= 400 and isinstance(body.get("detail"), str):
            raise DockRefused(resp.status_code, body["detail"], body.get("code"))
        value, credential = body["challenge"], body.get("tpm") or {}
    except httpx.HTTPError as exc:
        raise DockUnavailable(f"enroll: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DockUnavailable("enroll: the dock gave no challenge (not a bwv dock?)") from None
    if (
        not isinstance(value, str)
        or not isinstance(credential, dict)
        or (attestor and not credential)
    ):
        raise DockUnavailable("enroll: malformed challenge")
    return value, credential
