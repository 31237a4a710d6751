"""The checks that need no hardware: the configuration, the keys, the storage, the clocks."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

from bwv.selftest.model import Check
from capture.config import Config

PLAUSIBLE_YEAR = 2024
DEFAULT_DEVICE_IDS = ("bwv-unset", "bwv-0000")


# -- configuration and keys ------------------------------------------------------------------


def check_config(cfg: Config, source: str) -> Check:
    if cfg.device_id in DEFAULT_DEVICE_IDS:
        return Check(
            "config",
            "WARN",
            f"valid ({source}), but device_id is still "
            f"{cfg.device_id!r}: give every camera its own id",
            {"device_id": cfg.device_id},
        )
    return Check(
        "config", "PASS", f"valid ({source}), device {cfg.device_id}", {"device_id": cfg.device_id}
    )


def check_keys(cfg: Config) -> list[Check]:
    from capture.device_key import open_configured_key
    from crypto.identity import (
        IdentityError,
        key_id_of,
        load_agency_public_key,
        load_dock_public_key,
    )

    k = cfg.keys
    out = []
    try:
        with open_configured_key(cfg) as key:
            where = "held in the TPM" if key.store == "tpm" else f"in {k.device_key}"
            out.append(
                Check(
                    "device key",
                    "PASS",
                    f"key id {key.key_id} ({where})",
                    {"key_id": key.key_id, "key_store": key.store},
                )
            )
            if key.store == "tpm":
                out.append(check_tpm_key(key))
    except IdentityError as exc:
        hint = "" if os.path.lexists(k.device_key) else ": run `bwv provision`"
        out.append(Check("device key", "FAIL", f"{exc}{hint}"))
    try:
        agency = load_agency_public_key(Path(k.agency_public_key))
        kid = key_id_of(bytes(agency))
        out.append(Check("agency key", "PASS", f"pinned, key id {kid}", {"key_id": kid}))
    except IdentityError as exc:
        out.append(Check("agency key", "FAIL", f"{exc}: footage cannot be sealed"))
    if not Path(k.dock_public_key).exists():
        out.append(
            Check(
                "dock key",
                "WARN",
                f"none pinned at {k.dock_public_key}: the camera records but cannot ship "
                "until it is enrolled at a dock (technician's guide, section 5)",
            )
        )
    else:
        try:
            dock = load_dock_public_key(Path(k.dock_public_key))
            kid = key_id_of(bytes(dock))
            out.append(Check("dock key", "PASS", f"pinned, key id {kid}", {"key_id": kid}))
        except IdentityError as exc:
            out.append(Check("dock key", "FAIL", f"{exc} (the daemon refuses to record)"))
    out.append(check_witnesses(cfg))
    return out


def check_tpm_key(key: Any) -> Check:
    """The TPM signs a fresh message with the device key and the signature verifies against
    the pinned public key; its counter answers. The counter is only read: every count must
    belong to a chain record, so a self-test never spends one."""
    from crypto.suites import verify_signature

    message = b"bwv:selftest\0" + secrets.token_bytes(32)
    try:
        sig = key.signer.sign(message)
        value = key.counter.value()
    except Exception as exc:  # the TPM's own error, in its words
        return Check("TPM", "FAIL", f"the TPM did not answer: {exc}")
    if not verify_signature(key.public_key, message, sig):
        return Check("TPM", "FAIL", "the TPM's signature does not verify with device.key.pub")
    return Check(
        "TPM",
        "PASS",
        f"signs with the device key (ECDSA P-256, cannot leave the TPM); counter at {value}",
        {"counter": value},
    )


def check_witnesses(cfg: Config) -> Check:
    """The witnesses pinned (keys.witnesses): none is allowed (the camera deletes on the
    dock's receipt alone) and said: "unwitnessed"."""
    from dock.log_proof import WitnessKeysError, load_policy

    k = cfg.keys
    try:
        policy = load_policy(Path(k.witnesses), k.witness_quorum)
    except WitnessKeysError as exc:
        return Check("witnesses", "FAIL", f"{exc} (the camera does not ship)")
    if not policy.witnessed:
        return Check(
            "witnesses",
            "PASS",
            f"none pinned at {k.witnesses}: unwitnessed (footage is deleted on the dock's "
            "receipt alone; bwv provision --witness-key pins one)",
            {"unwitnessed": True},
        )
    names = ", ".join(v.split("+", 1)[0] for v in policy.vkeys)
    return Check(
        "witnesses",
        "PASS",
        f"{names}: a delete waits for {policy.quorum} cosignature(s)",
        {"unwitnessed": False, "quorum": policy.quorum},
    )


# -- storage -------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def _write_probe(d: Path) -> None:
    """Write a probe file in ``d``, fsync it, read it back, remove it (and fsync ``d``);
    an OSError says why that failed. The probe never stays behind."""
    probe = d / f".selftest-{os.getpid()}-{secrets.token_hex(4)}.probe"
    payload = secrets.token_bytes(64 << 10)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if probe.read_bytes() != payload:
            raise OSError("the probe file reads back different bytes")
        probe.unlink()
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise


def check_storage(cfg: Config) -> Check:
    from capture.device import recorder_config

    d = Path(cfg.storage.dir)
    low = recorder_config(cfg).low_space_bytes
    if not d.is_dir():
        return Check("storage", "FAIL", f"{d} does not exist (or is not a directory)")
    try:
        st = os.statvfs(d)
    except OSError as exc:
        return Check("storage", "FAIL", f"{d}: {exc.strerror}")
    free = st.f_bavail * st.f_frsize
    data = {"dir": str(d), "free_bytes": free, "low_space_bytes": low}
    try:
        _write_probe(d)
    except OSError as exc:
        return Check("storage", "FAIL", f"{d} is not writable: {exc.strerror or exc}", data)
    minutes = cfg.storage.low_space_minutes
    if free < low:
        return Check(
            "storage",
            "FAIL",
            f"{d}: only {_size(free)} free, less than the "
            f"low-space threshold {_size(low)} ({minutes:g} min of recording)",
            data,
        )
    return Check(
        "storage",
        "PASS",
        f"{d}: writable, {_size(free)} free (threshold {_size(low)}: {minutes:g} min of recording)",
        data,
    )


# -- clocks -------------------------------------------------------------------------------------


def check_clock(clock_start_us: int, clock_end_us: int, wall_us: int) -> Check:
    year = time.gmtime(wall_us / 1e6).tm_year
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_us / 1e6))
    data = {"capture_advanced_us": clock_end_us - clock_start_us, "wall_us": wall_us}
    if clock_end_us <= clock_start_us:
        return Check(
            "clock",
            "FAIL",
            f"the capture clock did not advance ({clock_start_us} -> {clock_end_us} us)",
            data,
        )
    if year < PLAUSIBLE_YEAR:
        return Check(
            "clock",
            "FAIL",
            f"the wall clock says {when}: not set (no network "
            "time, no RTC?); the dock sets it when docked, but footage recorded "
            "before then carries this time",
            data,
        )
    return Check("clock", "PASS", f"capture clock advances; wall clock {when}", data)
