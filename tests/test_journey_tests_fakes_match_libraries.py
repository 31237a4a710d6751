"""The fakes of picamera2, pyaudio and RPi.GPIO (tests/fakes/) take the same parameters as the
real libraries, so an adapter that passes the tests over a fake calls the real thing right.

The real signatures come from the installed package where there is one (pyaudio), else from
the published source, pinned in tests/data/hw_api/ (repository, path, commit or file hash;
how each list was read is written in it). For each method bwv or a fake relies on: the same
parameters in the same order, of the same kind, with the same defaults; a name is compared
when a caller could pass it by keyword to every real library that module name stands for
(RPi.GPIO: RPi.GPIO itself and rpi-lgpio). Every public callable of a fake is either checked
here or named below as the fake's board side (what a test drives, not the library's API).
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fakes.picamera2 import make_fake_picamera2
from tests.fakes.pyaudio import make_fake_pyaudio
from tests.fakes.rpi_gpio import make_fake_rpi_gpio

DATA = Path(__file__).parent / "data" / "hw_api"

BOARD_SIDE = {  # the fakes' own handles for tests: not part of any library's API
    "picamera2.Picamera2.run",
    "picamera2.Picamera2.sensor_timestamp_ns",
    "pyaudio.PyAudio.Stream.deliver",
    # made by the fake itself (the camera thread, PyAudio.open), never by bwv
    "picamera2.CompletedRequest.__init__",
    "pyaudio.PyAudio.Stream.__init__",
}

NON_LITERAL = object()  # a default that is an expression (libcamera.Transform()): any default


def pinned(library: str) -> dict[str, Any]:
    return json.loads((DATA / f"{library}.json").read_text())


def real_default(text: str, constants: dict[str, Any]) -> Any:
    try:
        return ast.literal_eval(text)
    except ValueError:
        return constants.get(text, NON_LITERAL)


def differences(
    name: str,
    real: list[list[str]],
    fake: Callable[..., Any],
    constants: dict[str, Any],
    keywords: list[str] | None | bool = True,
) -> list[str]:
    """How ``fake``'s signature differs from ``real`` ([name, kind, default text?] each).
    ``keywords``: True, every real name counts; else the names a second real library takes
    as keywords (None: none), and a name counts only where both libraries agree on it."""
    got = list(inspect.signature(fake).parameters.values())
    if len(got) != len(real):
        return [
            f"{name}: {len(got)} parameters ({', '.join(p.name for p in got)}), "
            f"the library has {len(real)} ({', '.join(r[0] for r in real)})"
        ]
    out = []
    for i, (p, r) in enumerate(zip(got, real, strict=True)):
        r_name, r_kind = r[0], r[1]
        portable = r_kind != "POSITIONAL_ONLY" and (
            keywords is True
            or (isinstance(keywords, list) and i < len(keywords) and keywords[i] == r_name)
        )
        if portable and p.name != r_name:
            out.append(f"{name}: parameter {i} is {p.name!r}, the library's is {r_name!r}")
        kind_ok = p.kind.name == r_kind or (
            r_kind == "POSITIONAL_ONLY" and p.kind.name == "POSITIONAL_OR_KEYWORD"
        )
        if not kind_ok:
            out.append(f"{name}: {p.name} is {p.kind.name}, the library's {r_kind}")
        has_default = p.default is not inspect.Parameter.empty
        if has_default != (len(r) > 2):
            out.append(f"{name}: {p.name} {'has' if has_default else 'lacks'} a default")
        elif has_default:
            want = real_default(r[2], constants)
            if want is not NON_LITERAL and (type(want), want) != (type(p.default), p.default):
                out.append(f"{name}: {p.name}={p.default!r}, the library's {r[2]}")
    return out


def resolve(modules: dict[str, ModuleType], dotted: str) -> Any:
    """``package.module.Class.method`` in the fake modules."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        mod = modules.get(".".join(parts[:cut]))
        if mod is not None:
            obj: Any = mod
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
    raise KeyError(dotted)


def unchecked(modules: dict[str, ModuleType], checked: Any) -> set[str]:
    """The public functions of the fake modules and the public methods their classes define,
    by name, that are neither among ``checked`` (dotted names) nor on the board side."""
    seen = set()
    for name in checked:
        obj = resolve(modules, name)
        seen.add(obj.__init__ if inspect.isclass(obj) else obj)
    seen |= {resolve(modules, n) for n in BOARD_SIDE if n.split(".")[0] in modules}
    found = {}
    for mod_name, mod in modules.items():
        classes = []
        for attr, value in vars(mod).items():
            if attr.startswith("_") or isinstance(value, ModuleType):
                continue
            if inspect.isclass(value):
                classes.append((f"{mod_name}.{attr}", value))
                inner = [(a, v) for a, v in vars(value).items() if inspect.isclass(v)]
                classes += [(f"{mod_name}.{attr}.{a}", v) for a, v in inner]
            elif callable(value):
                found.setdefault(value, f"{mod_name}.{attr}")
        for cls_name, cls in classes:
            for m, f in vars(cls).items():
                if inspect.isfunction(f) and (not m.startswith("_") or m == "__init__"):
                    found.setdefault(f, f"{cls_name}.{m}")
    return {name for f, name in found.items() if f not in seen}


# -- picamera2 -------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["vc4", "pisp"])
def test_the_picamera2_fake_takes_what_picamera2_takes(platform):
    data = pinned("picamera2")
    modules = make_fake_picamera2(platform=platform).modules
    problems = []
    for name, entry in data["api"].items():
        if entry.get("platform", platform) != platform:
            continue
        problems += differences(name, entry["params"], resolve(modules, name), {})
    if platform == "pisp":  # picamera2/encoders/__init__.py: H264Encoder is libav's on a Pi 5
        enc = modules["picamera2.encoders"]
        if enc.H264Encoder is not enc.LibavH264Encoder:
            problems.append("on pisp, H264Encoder must be LibavH264Encoder")
    cam = modules["picamera2"].Picamera2()
    encoder = modules["picamera2.encoders"].H264Encoder()
    for owner, attrs in data["attributes"].items():
        obj = cam if owner.endswith("Picamera2") else encoder
        problems += [f"{owner}.{a} missing" for a in attrs if not hasattr(obj, a)]
    assert problems == []


def test_every_picamera2_fake_method_is_checked():
    for platform in ("vc4", "pisp"):
        modules = make_fake_picamera2(platform=platform).modules
        api = pinned("picamera2")["api"]
        names = [n for n, e in api.items() if e.get("platform", platform) == platform]
        assert unchecked(modules, names) == set()


# -- pyaudio -----------------------------------------------------------------------------------


def real_pyaudio_api() -> tuple[dict[str, list[list[str]]], dict[str, int]] | None:
    """Signatures of the installed PyAudio, as the pinned list writes them (None: not here)."""
    try:
        import pyaudio
    except ImportError:
        return None

    def norm(fn: Callable[..., Any], drop: tuple[str, ...] = ()) -> list[list[str]]:
        return [
            [p.name, p.kind.name] + ([] if p.default is p.empty else [repr(p.default)])
            for p in inspect.signature(fn).parameters.values()
            if p.name not in drop
        ]

    api = {}
    for name in pinned("pyaudio")["api"]:
        if name == "pyaudio.PyAudio.open":  # open(*args, **kwargs) is Stream(self, ...)
            api[name] = norm(pyaudio.PyAudio.Stream.__init__, drop=("PA_manager",))
        else:
            api[name] = norm(resolve({"pyaudio": pyaudio}, name))
    constants = {k: getattr(pyaudio, k) for k in pinned("pyaudio")["constants"]}
    return api, constants


def test_the_pyaudio_fake_takes_what_pyaudio_takes():
    data = pinned("pyaudio")
    installed = real_pyaudio_api()
    api = installed[0] if installed else {n: e["params"] for n, e in data["api"].items()}
    constants = installed[1] if installed else data["constants"]
    modules = make_fake_pyaudio().modules
    problems = []
    for name, params in api.items():
        problems += differences(name, params, resolve(modules, name), {})
    fake = modules["pyaudio"]
    problems += [
        f"pyaudio.{k} is {getattr(fake, k, None)}, the library's {v}"
        for k, v in constants.items()
        if getattr(fake, k, None) != v
    ]
    assert problems == []


def test_the_pinned_pyaudio_list_is_the_installed_pyaudio():
    installed = real_pyaudio_api()
    if installed is None:
        pytest.skip("pyaudio is not installed here: the pinned list stands in for it")
    data = pinned("pyaudio")
    assert installed == ({n: e["params"] for n, e in data["api"].items()}, data["constants"])


def test_every_pyaudio_fake_method_is_checked():
    assert unchecked(make_fake_pyaudio().modules, pinned("pyaudio")["api"]) == set()


# -- RPi.GPIO ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["RPi.GPIO", "rpi-lgpio"])
def test_the_rpi_gpio_fake_takes_what_rpi_gpio_and_rpi_lgpio_take(flavour):
    data = pinned("rpi_gpio")
    env = make_fake_rpi_gpio(flavour)
    problems = []
    for name, entry in data["api"].items():
        fake = resolve(env.modules, name)
        keywords = data["c_keywords"][name]
        problems += differences(name, entry["params"], fake, data["constants"], keywords)
    gpio = env.GPIO
    problems += [
        f"GPIO.{k} is {getattr(gpio, k, None)}, the library's {v}"
        for k, v in data["constants"].items()
        if getattr(gpio, k, None) != v
    ]
    env.board.stop()
    assert problems == []


def test_every_rpi_gpio_fake_function_is_checked():
    assert unchecked(make_fake_rpi_gpio().modules, pinned("rpi_gpio")["api"]) == set()


# -- the check itself ----------------------------------------------------------------------------


def test_the_check_sees_a_renamed_a_reordered_and_a_changed_default_parameter():
    real = pinned("picamera2")["api"]["picamera2.outputs.Output.outputframe"]["params"]

    def renamed(self, frame, keyframe=True, ts=None, packet=None, audio=False): ...
    def reordered(self, frame, timestamp=None, keyframe=True, packet=None, audio=False): ...
    def default(self, frame, keyframe=False, timestamp=None, packet=None, audio=False): ...
    def fewer(self, frame, keyframe=True, timestamp=None, packet=None): ...
    def same(self, frame, keyframe=True, timestamp=None, packet=None, audio=False): ...

    for fake in (renamed, reordered, default, fewer):
        assert differences("outputframe", real, fake, {}), fake.__name__
    assert differences("outputframe", real, same, {}) == []

    # 1 is not True: a default of another type is another default
    def one(self, frame, keyframe=1, timestamp=None, packet=None, audio=False): ...

    assert differences("outputframe", real, one, {})
