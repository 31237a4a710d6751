"""The dock, if ``dock.url`` is set: the pinned key answers, signed, and knows this camera."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from bwv.selftest.model import Check, SelftestOptions, Status, describe_error
from capture.config import Config


def check_dock(cfg: Config, opts: SelftestOptions) -> Check:
    import httpx

    from crypto.identity import IdentityError, key_id_of, load_dock_public_key
    from dock.protocol import H_DOCK_SIGNATURE, H_NONCE, verify_response

    url = cfg.dock.url
    if not url:
        return Check(
            "dock", "WARN", "no dock configured (dock.url is empty): footage stays on the camera"
        )
    nonce = secrets.token_hex(16)
    started = time.monotonic()
    try:
        resp = httpx.get(
            url.rstrip("/") + "/v1/dock", headers={H_NONCE: nonce}, timeout=opts.dock_timeout_s
        )
        took_ms = (time.monotonic() - started) * 1000
        info = resp.json()
        theirs = bytes.fromhex(info["dock_public_key"])
    except httpx.HTTPError as exc:
        return Check("dock", "FAIL", f"{url} unreachable: {describe_error(exc)}")
    except (ValueError, KeyError, TypeError):
        return Check("dock", "FAIL", f"{url} answered ({resp.status_code}) but not as a bwv dock")
    data = {"url": url, "dock_key_id": key_id_of(theirs), "round_trip_ms": round(took_ms)}
    try:
        pinned = bytes(load_dock_public_key(Path(cfg.keys.dock_public_key)))
    except IdentityError:
        return Check(
            "dock",
            "WARN",
            f"{url} reachable (key id {key_id_of(theirs)}), but no "
            "usable dock key is pinned to check it against",
            data,
        )
    if theirs != pinned:
        return Check(
            "dock",
            "FAIL",
            f"{url} has key id {key_id_of(theirs)}, the pinned key is "
            f"{key_id_of(pinned)}: wrong dock, or the dock's key changed",
            data,
        )
    if not verify_response(
        pinned, resp.status_code, nonce, resp.content, resp.headers.get(H_DOCK_SIGNATURE)
    ):
        return Check(
            "dock",
            "FAIL",
            f"{url} names the pinned key but its answer is not signed "
            "by it (something between the camera and the dock?)",
            data,
        )
    detail = (
        f"{url} reachable in {took_ms:.0f} ms, key id "
        f"{key_id_of(theirs)} is the pinned one (signed answer)"
    )
    enrolment = check_enrolment(cfg, url, pinned, opts)
    if enrolment is None:
        return Check("dock", "PASS", detail, data)
    status, text = enrolment
    data["enrolment"] = text
    return Check("dock", status, f"{detail}; {text}" if status == "PASS" else text, data)


def check_enrolment(
    cfg: Config, url: str, dock_key: bytes, opts: SelftestOptions
) -> tuple[Status, str] | None:
    """Ask the dock (a signed ``GET /v1/status``) whether it knows this camera and has not
    revoked it. None when there is no usable device key to ask with (its own check fails)."""
    from crypto.identity import DeviceIdentity, IdentityError
    from dock.client import DeviceCredentials, DockClient, DockError, DockRefused
    from dock.protocol import Code

    try:
        ident = DeviceIdentity.load(Path(cfg.keys.device_key), cfg.device_id)
    except IdentityError:
        return None
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
        if exc.code == Code.UNKNOWN_DEVICE:
            return "FAIL", (
                f"device {ident.device_id} is not enrolled at {url}: footage cannot ship "
                "until it is (`bwv provision --token ...`)"
            )
        if exc.code == Code.BAD_SIGNATURE:
            return "FAIL", (
                f"{url} knows {ident.device_id} with another key than this camera's "
                f"(key id {ident.key_id}): wrong device_id, or the key was replaced"
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
