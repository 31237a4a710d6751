"""The one configuration file (TOML), read and validated at start-up.

Every key has a default; a file names only what it changes. Anything wrong (an unknown key,
a wrong type, a value out of range) is refused with a ``ConfigError`` that names the key, e.g.
``pre_record.seconds: must be >= 0 (got -5)``.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from gpio.devices import DEBOUNCE_S, HOLD_TO_STOP_S

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    _Table = TypeVar("_Table", bound=DataclassInstance)

MAX_CONFIG_BYTES = 1 << 20
MAX_LOW_SPACE_MINUTES = 1e9
MAX_PRE_RECORD_MB = 1_000_000


TCTI_KINDS = ("device", "swtpm", "mssim", "tabrmd")  # how tpm2-tss reaches a TPM


class ConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class VideoConfig:
    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate: int = 5_000_000  # bits per second
    gop: int = 30  # frames between keyframes (one fragment per GOP)


@dataclass(frozen=True)
class AudioConfig:
    enabled: bool = True
    sample_rate: int = 48_000
    channels: int = 1
    bitrate: int = 64_000
    device: str = ""  # the microphone's PortAudio/ALSA device name ("" = the default input)


@dataclass(frozen=True)
class PreRecordConfig:
    seconds: float = 30.0
    max_mb: int = 256  # byte budget of the RAM buffer
    audio: bool = True  # keep audio in the pre-record buffer


@dataclass(frozen=True)
class SegmentConfig:
    seconds: float = 10.0


@dataclass(frozen=True)
class StorageConfig:
    dir: str = "/var/lib/bwv"
    low_space_minutes: float = 30.0  # warn when less than this much recording time is left


@dataclass(frozen=True)
class KeysConfig:
    device_key: str = "/var/lib/bwv/keys/device.key"  # made by `bwv provision`, mode 0600
    agency_public_key: str = "/var/lib/bwv/keys/agency.pub"  # footage is sealed to it
    dock_public_key: str = "/var/lib/bwv/keys/dock.pub"  # receipts and time are signed by it
    tsa_ca: str = "/var/lib/bwv/keys/tsa-ca.pem"  # `bwv provision --tsa-ca`: the TSA's CA
    witnesses: str = "/var/lib/bwv/keys/witnesses"  # pinned witness vkeys, one a line
    witness_quorum: int = 1  # witnesses whose cosignature a delete waits for
    # where the TPM is when `bwv provision --key-store tpm` put the device key in one
    # ("" = $BWV_TPM_TCTI, else the kernel's resource manager, device:/dev/tpmrm0)
    tpm_tcti: str = ""


@dataclass(frozen=True)
class DockConfig:
    url: str = ""  # e.g. "http://dock.local:8443"; "" = not enrolled: nothing is shipped


@dataclass(frozen=True)
class ClockConfig:
    max_step_s: float = 5.0  # a larger correction needs the dock's RFC 3161 token (tsa_ca)


@dataclass(frozen=True)
class ControlsConfig:
    debounce_ms: int = round(DEBOUNCE_S * 1000)  # the file's unit: milliseconds
    hold_to_stop_s: float = HOLD_TO_STOP_S
    reminder_interval_s: float = 120.0
    stealth: bool = False


@dataclass(frozen=True)
class PinsConfig:
    """BCM pin numbers."""

    button: int = 17
    red_led: int = 27
    green_led: int = 22
    haptic: int = 23
    dock_detect: int = 24


@dataclass(frozen=True)
class Config:
    device_id: str = "bwv-unset"
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    pre_record: PreRecordConfig = field(default_factory=PreRecordConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    dock: DockConfig = field(default_factory=DockConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    pins: PinsConfig = field(default_factory=PinsConfig)


def _build(cls: type[_Table], data: dict[str, Any], prefix: str) -> _Table:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(prefix + key, f"unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        key, value, typ = prefix + f.name, data[f.name], hints[f.name]
        if isinstance(typ, type) and is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(key, "must be a table")
            values[f.name] = _build(typ, value, key + ".")
        elif typ is bool:
            if not isinstance(value, bool):
                raise ConfigError(key, f"must be true or false (got {value!r})")
            values[f.name] = value
        elif typ is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(key, f"must be a whole number (got {value!r})")
            values[f.name] = value
        elif typ is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(key, f"must be a number (got {value!r})")
            if not math.isfinite(value):
                raise ConfigError(key, f"must be a finite number (got {value!r})")
            values[f.name] = float(value)
        elif typ is str:
            if not isinstance(value, str):
                raise ConfigError(key, f"must be a string (got {value!r})")
            values[f.name] = value
        else:  # pragma: no cover - every field type is handled above
            raise ConfigError(key, "unsupported type")
    return cls(**values)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


def validate(cfg: Config) -> Config:
    """``cfg`` if every value is in range; else ConfigError naming the first key that is not."""
    _check_identity(cfg)
    _check_media(cfg)
    _check_buffers(cfg)
    _check_controls(cfg)
    return cfg


def _check_identity(cfg: Config) -> None:
    _check(
        bool(cfg.device_id.strip()) and cfg.device_id.isprintable() and len(cfg.device_id) <= 64,
        "device_id",
        "must be 1-64 printable characters",
    )
    _check(
        all(c.isalnum() or c in "-_." for c in cfg.device_id),
        "device_id",
        f"may hold only letters, digits, '-', '_' and '.' (got {cfg.device_id!r})",
    )
    _check(bool(cfg.storage.dir), "storage.dir", "must not be empty")
    _check(
        0 <= cfg.clock.max_step_s <= 86_400,
        "clock.max_step_s",
        f"must be between 0 and 86400 (a day) (got {cfg.clock.max_step_s:g})",
    )
    _check(
        cfg.dock.url == "" or cfg.dock.url.startswith("https://"),
        "dock.url",
        f"must start with https:// (docks serve HTTPS only) (got {cfg.dock.url!r})",
    )
    q = cfg.keys.witness_quorum
    _check(1 <= q <= 16, "keys.witness_quorum", f"must be 1..16 (got {q})")
    t = cfg.keys.tpm_tcti
    _check(
        t == "" or (t.isprintable() and len(t) <= 256 and t.split(":", 1)[0] in TCTI_KINDS),
        "keys.tpm_tcti",
        f"must be empty or start with one of {', '.join(k + ':' for k in TCTI_KINDS)} (got {t!r})",
    )


def _check_media(cfg: Config) -> None:
    v, a = cfg.video, cfg.audio
    _check(
        320 <= v.width <= 4096 and v.width % 32 == 0,
        "video.width",
        f"must be a multiple of 32 between 320 and 4096 (got {v.width})",
    )
    _check(
        240 <= v.height <= 2304 and v.height % 2 == 0,
        "video.height",
        f"must be even and between 240 and 2304 (got {v.height})",
    )
    _check(1 <= v.fps <= 120, "video.fps", f"must be between 1 and 120 (got {v.fps})")
    _check(
        100_000 <= v.bitrate <= 50_000_000,
        "video.bitrate",
        f"must be between 100000 and 50000000 bit/s (got {v.bitrate})",
    )
    _check(
        1 <= v.gop <= 10 * v.fps,
        "video.gop",
        f"must be between 1 and 10 s of frames ({10 * v.fps}) (got {v.gop})",
    )
    _check(
        a.sample_rate in (16_000, 22_050, 24_000, 32_000, 44_100, 48_000),
        "audio.sample_rate",
        f"must be one of 16000, 22050, 24000, 32000, 44100, 48000 (got {a.sample_rate})",
    )
    _check(a.channels in (1, 2), "audio.channels", f"must be 1 or 2 (got {a.channels})")
    _check(
        16_000 <= a.bitrate <= 320_000,
        "audio.bitrate",
        f"must be between 16000 and 320000 (got {a.bitrate})",
    )


def _check_buffers(cfg: Config) -> None:
    v, p = cfg.video, cfg.pre_record
    _check(
        0 <= p.seconds <= 600, "pre_record.seconds", f"must be >= 0 and <= 600 (got {p.seconds:g})"
    )
    need_mb = (v.bitrate * (p.seconds + v.gop / v.fps)) / 8 / 1e6
    _check(
        p.max_mb <= MAX_PRE_RECORD_MB,
        "pre_record.max_mb",
        f"must be at most {MAX_PRE_RECORD_MB} (got {p.max_mb})",
    )
    _check(
        p.max_mb >= need_mb,
        "pre_record.max_mb",
        f"must hold pre_record.seconds at video.bitrate: at least {need_mb:.0f} (got {p.max_mb})",
    )
    _check(
        1 <= cfg.segments.seconds <= 600,
        "segments.seconds",
        f"must be between 1 and 600 (got {cfg.segments.seconds:g})",
    )
    _check(
        cfg.segments.seconds >= v.gop / v.fps, "segments.seconds", "must be at least one GOP long"
    )
    low = cfg.storage.low_space_minutes
    _check(
        0 <= low <= MAX_LOW_SPACE_MINUTES,
        "storage.low_space_minutes",
        f"must be between 0 and {MAX_LOW_SPACE_MINUTES:g} (got {low:g})",
    )


def _check_controls(cfg: Config) -> None:
    c = cfg.controls
    _check(
        0 <= c.debounce_ms <= 500,
        "controls.debounce_ms",
        f"must be between 0 and 500 (got {c.debounce_ms})",
    )
    _check(
        0.5 <= c.hold_to_stop_s <= 10,
        "controls.hold_to_stop_s",
        f"must be between 0.5 and 10 (got {c.hold_to_stop_s:g})",
    )
    _check(
        10 <= c.reminder_interval_s <= 86_400,
        "controls.reminder_interval_s",
        f"must be between 10 and 86400 (a day) (got {c.reminder_interval_s:g})",
    )
    pins = [(f.name, getattr(cfg.pins, f.name)) for f in fields(cfg.pins)]
    for name, pin in pins:
        _check(2 <= pin <= 27, f"pins.{name}", f"must be a BCM GPIO number 2-27 (got {pin})")
    seen: dict[int, str] = {}
    for name, pin in pins:
        _check(
            pin not in seen, f"pins.{name}", f"pin {pin} is already used by pins.{seen.get(pin)}"
        )
        seen[pin] = name


def from_dict(data: dict[str, Any]) -> Config:
    return validate(_build(Config, data, ""))


def read_config_text(path: Path) -> str:
    """The file's text, or ``ConfigError`` naming it: refused at once (never opened for
    reading, so never blocking) unless it is a regular file of at most 1 MiB; bytes that are
    not UTF-8 are named by their offset."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    _check_regular(path, st)
    try:  # O_NONBLOCK: if it became a FIFO since the stat, the open does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        _check_regular(path, os.fstat(f.fileno()))
        try:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES} bytes: not a configuration")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path),
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); "
            "save the file as UTF-8",
        ) from None


def _check_regular(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(str(path), "is a folder, not a configuration file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(str(path), "not a regular file (a FIFO, device or socket): not read")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES} bytes: not a configuration")


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (or only defaults when None), apply ``overrides`` and validate."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(read_config_text(Path(path)))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_dict(data)


def with_changes(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with some fields of some sections changed (validated)."""
    out = cfg
    for name, changes in sections.items():
        out = replace(out, **{name: replace(getattr(out, name), **changes)})
    return validate(out)
