"""Benchmark harness: ``python -m bench`` (``make bench``).

A benchmark is a function taking a :class:`Context` and returning one :class:`Result` (or
several), registered under a name::

    from bench import Context, Result, benchmark

    @benchmark("crypto_seal_mb_per_s", description="secretstream sealing of 1 MiB chunks")
    def seal_speed(ctx: Context) -> Result:
        seconds = ctx.best(lambda: ..., repeat=3 if ctx.quick else 7)
        return Result("crypto_seal_mb_per_s", 64 / seconds, "MB/s")

Put it in any module of this package (``bench/<area>.py``): ``python -m bench`` imports
every module here and runs everything registered, in registration order. A figure measured
against a baseline in the same run carries ``baseline`` and ``ratio`` (see
:meth:`Result.against`). A function that is already written and returns some other object
with ``name``, ``value``, ``unit`` (and optionally ``detail``) attributes can be registered
as is: :func:`as_results` converts it.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark cannot run (a missing baseline, a broken setup): the message says what
    to do; no traceback is printed."""


@dataclass(frozen=True)
class Result:
    """One figure.

    ``ratio`` > 1 always means *ours is better than the baseline*: it is
    ``baseline / value`` for a figure where lower is better (time, memory) and
    ``value / baseline`` where higher is better (throughput). ``goal`` is a human-readable
    target (``"<= 0.01"``) and ``goal_met`` whether this run met it.
    """

    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    baseline_label: str = ""
    lower_is_better: bool = True
    goal: str = ""
    goal_met: bool | None = None
    detail: str = ""

    def against(self, baseline: float, label: str = "") -> Result:
        """This result compared with ``baseline`` measured in the same run."""
        if self.lower_is_better:
            ratio = baseline / self.value if self.value else math.inf
        else:
            ratio = self.value / baseline if baseline else math.inf
        return replace(self, baseline=baseline, ratio=ratio, baseline_label=label)

    def with_goal(self, goal: str, met: bool) -> Result:
        return replace(self, goal=goal, goal_met=met)

    def json_dict(self) -> dict:
        """``{"name", "value", "unit"}`` plus ``"baseline"`` and ``"ratio"`` when compared."""
        d: dict = {"name": self.name, "value": _num(self.value), "unit": self.unit}
        if self.baseline is not None:
            d["baseline"] = _num(self.baseline)
            d["ratio"] = _num(self.ratio) if self.ratio is not None else None
        return d


def _num(x: float) -> float | None:
    if x is None or not math.isfinite(x):
        return None  # JSON has no inf/nan
    return float(f"{x:.6g}")


@dataclass
class Context:
    """What a benchmark is told about the run."""

    quick: bool = False
    root: Path = ROOT
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))

    @property
    def build_dir(self) -> Path:
        """``build/`` at the repository root (git-ignored): for downloaded baselines."""
        return self.root / "build"

    @staticmethod
    def timings(fn: Callable[[], object], repeat: int) -> list[float]:
        """Wall seconds (``perf_counter``) of ``repeat`` calls of ``fn``."""
        out = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    def best(self, fn: Callable[[], object], repeat: int) -> float:
        return min(self.timings(fn, repeat))

    def median(self, fn: Callable[[], object], repeat: int) -> float:
        return statistics.median(self.timings(fn, repeat))


BenchFn = Callable[[Context], "Result | Iterable[Result] | object"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    fn: BenchFn
    description: str = ""
    figures: tuple[str, ...] = ()  # the figure names it produces, when not just ``name``

    def produces(self) -> tuple[str, ...]:
        return self.figures or (self.name,)


REGISTRY: dict[str, Benchmark] = {}


def register(
    name: str, fn: BenchFn, *, description: str = "", figures: Iterable[str] = ()
) -> Benchmark:
    """Register ``fn`` under ``name``; registering a name twice is an error."""
    if name in REGISTRY:
        raise ValueError(f"benchmark {name!r} is already registered")
    b = Benchmark(
        name, fn, description or (fn.__doc__ or "").strip().split("\n")[0], tuple(figures)
    )
    REGISTRY[name] = b
    return b


def benchmark(
    name: str | None = None, *, description: str = "", figures: Iterable[str] = ()
) -> Callable[[BenchFn], BenchFn]:
    """Decorator form of :func:`register` (the name defaults to the function's)."""

    def deco(fn: BenchFn) -> BenchFn:
        register(name or fn.__name__, fn, description=description, figures=figures)
        return fn

    return deco


def as_results(out: object) -> list[Result]:
    """A benchmark's return value as a list of results: a Result, an iterable of them, or
    any object with ``name``, ``value`` and ``unit`` (and optionally ``detail``)."""
    if out is None:
        return []
    if isinstance(out, Result):
        return [out]
    if hasattr(out, "name") and hasattr(out, "value") and hasattr(out, "unit"):
        return [Result(out.name, float(out.value), out.unit, detail=getattr(out, "detail", ""))]
    if isinstance(out, Iterable) and not isinstance(out, (str, bytes)):
        return [r for o in out for r in as_results(o)]
    raise TypeError(f"a benchmark returned {type(out).__name__}, not a Result")


SKIP_MODULES = {"__main__", "report"}


def discover() -> dict[str, str]:
    """Import every module of this package so that its benchmarks register. Returns the
    modules that failed to import, with the error."""
    failed = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name in SKIP_MODULES or mod.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{mod.name}")
        except Exception as e:  # noqa: BLE001 - reported, the other modules still run
            failed[mod.name] = f"{type(e).__name__}: {e}"
    return failed
