"""The dock, if ``dock.url`` is set: over TLS, the pinned key answers (its certificate and its
signature), knows this camera; a key taken on first use is a warning."""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

from bwv.selftest.model import Check, SelftestOptions, Status, describe_error
from capture.config import Config


def _pinned(cfg: Config) -> bytes | None:
    from crypto.identity import IdentityError, load_dock_public_key

    try:
        return bytes(load_dock_public_key(Path(cfg.keys.dock_public_key)))
    except IdentityError:
        return None


def check_dock(cfg: Config, opts: SelftestOptions) -> Check:
    import httpx

    from crypto.identity import key_id_of
    from dock.protocol import H_DOCK_SIGNATURE, H_NONCE, verify_response
    from dock.tls import FirstSeen, pinned_client_context, pinned_to

    url = cfg.dock.url
    if not url:
        return Check(
            "dock", "WARN", "no dock configured (dock.url is empty): footage stays on the camera"
        )
    if not url.lower().startswith("https://"):
        return Check("dock", "FAIL", f"dock.url {url} is not https://: a dock serves TLS only")
    pinned = _pinned(cfg)
    seen = FirstSeen()
    nonce = secrets.token_hex(16)
    started = time.monotonic()
    try:
        verify = pinned_to(pinned) if pinned is not None else pinned_client_context(seen)
        resp = httpx.get(
            url.rstrip("/") + "/v1/dock",
            headers={H_NONCE: nonce},
            timeout=opts.dock_timeout_s,
            verify=verify,
        )
        took_ms = (time.monotonic() - started) * 1000
        info = resp.json()
        theirs = bytes.fromhex(info["dock_public_key"])
    except httpx.HTTPError as exc:
        if pinned is not None and "pinned dock key" in str(exc):
            return _wrong_dock(url, pinned, opts)
        return Check("dock", "FAIL", f"{url} unreachable: {describe_error(exc)}")
    except (ValueError, KeyError, TypeError):
        return Check("dock", "FAIL", f"{url} answered ({resp.status_code}) but not as a bwv dock")
    data = {"url": url, "dock_key_id": key_id_of(theirs), "round_trip_ms": round(took_ms)}
    if pinned is None:
        return Check(
            "dock",
            "WARN",
            f"{url} reachable (key id {key_id_of(theirs)}), but no "
            "usable dock key is pinned to check it against",
            data,
        )
    if theirs != pinned or not verify_response(
        pinned, resp.status_code, nonce, resp.content, resp.headers.get(H_DOCK_SIGNATURE)
    ):
        return Check(
            "dock",
            "FAIL",
            f"{url} holds the pinned key but its answer is not signed by it, or names "
            "another (something between the camera and the dock?)",
            data,
        )
    detail = (
        f"{url} reachable in {took_ms:.0f} ms over TLS, key id "
        f"{key_id_of(theirs)} is the pinned one (signed answer)"
    )
    return _with_enrolment(cfg, url, pinned, opts, detail, data)


def _wrong_dock(url: str, pinned: bytes, opts: SelftestOptions) -> Check:
    """The dock at ``url`` does not hold the pinned key: which key it holds (asked with
    ``GET /v1/dock`` only, which says nothing about this camera)."""
    import httpx

    from crypto.identity import key_id_of
    from dock.tls import FirstSeen, pinned_client_context

    seen = FirstSeen()
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(
            url.rstrip("/") + "/v1/dock",
            timeout=opts.dock_timeout_s,
            verify=pinned_client_context(seen),
        )
    theirs = f"key id {key_id_of(seen.key)}" if seen.key else "another key"
    return Check(
        "dock",
        "FAIL",
        f"{url} holds {theirs}, the pinned key is {key_id_of(pinned)}: wrong dock, or the "
        "dock's key changed (the camera sends it nothing)",
        {"url": url},
    )


def _with_enrolment(
    cfg: Config, url: str, pinned: bytes, opts: SelftestOptions, detail: str, data: dict[str, Any]
) -> Check:
    from bwv.provision_enrol import FIRST_USE_SUFFIX

    enrolment = check_enrolment(cfg, url, pinned, opts)
    status: Status = "PASS"
    if enrolment is not None:
        status, text = enrolment
        data["enrolment"] = text
        detail = f"{detail}; {text}" if status == "PASS" else text
    pin_path = Path(cfg.keys.dock_public_key)
    if status == "PASS" and pin_path.with_name(pin_path.name + FIRST_USE_SUFFIX).exists():
        data["trusted_on_first_use"] = True
        return Check(
            "dock",
            "WARN",
            f"{detail}; but the dock key was taken on first use (--trust-first-dock), not "
            "checked against the dock's own: compare its key id with `bwv dock serve`'s, then "
            "provision again with --dock-key",
            data,
        )
    return Check("dock", status, detail, data)


def check_enrolment(
    cfg: Config, url: str, dock_key: bytes, opts: SelftestOptions
) -> tuple[Status, str] | None:
    """Ask the dock (a signed ``GET /v1/status``) whether it knows this camera and has not
    revoked it. None when there is no usable device key to ask with (its own check fails)."""
    from capture.device_key import open_configured_key
    from crypto.identity import IdentityError

    try:
        key = open_configured_key(cfg)
    except IdentityError:
        return None
    with key:
        return _ask_dock(url, key.signer, dock_key, opts)


def _ask_dock(
    url: str, ident: Any, dock_key: bytes, opts: SelftestOptions
) -> tuple[Status, str] | None:
    from dock.client import DeviceCredentials, DockClient, DockError, DockRefused
    from dock.protocol import Code

    creds = DeviceCredentials(ident.device_id, ident, dock_key)
    try:
        with DockClient(
            url, creds, wall_clock=lambda: time.time_ns() // 1000, timeout=opts.dock_timeout_s
        ) as client:
            status = client.status()
    except DockRefused as exc:
        if exc.code == Code.REVOKED:
            return "FAIL", (
                f"camera revoked at the dock ({url}: {exc.detail}): it cannot ship; a "
                "replacement camera needs a new device_id (technician's guide, section 10)"
            )
        if exc.code in (Code.UNKNOWN_DEVICE, Code.BAD_SIGNATURE):
            return "FAIL", (
                f"{url} does not know {ident.device_id} with this camera's key (key id "
                f"{ident.key_id}): not enrolled there (`bwv provision --token ...`), or "
                "enrolled with another key (wrong device_id, or the key was replaced)"
            )
        if exc.code == Code.STALE:
            return "WARN", (
                f"device {ident.device_id} is enrolled at {url}, but its clock is off from "
                "the dock's by more than the dock accepts: it is set when docked"
            )
        return "FAIL", f"{url} refused this camera: {exc.detail}"
    except DockError as exc:
        return "FAIL", f"could not ask {url} about this camera: {exc}"
    held = (status.get("chain") or {}).get("held", 0) if isinstance(status, dict) else 0
    return "PASS", f"enrolled there (key id {ident.key_id}), not revoked; {held} records held"
