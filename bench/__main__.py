"""``python -m bench [--quick] [--only NAME ...] [--list]``

Runs the registered benchmarks (see ``bench/__init__.py``), then prints a table and one JSON
line per figure (``{"name", "value", "unit"}``, plus ``"baseline"`` and ``"ratio"`` when
measured against a baseline in the same run) on stdout; progress goes to stderr. Exits 1
when a benchmark failed (its figures are missing), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
import traceback

from bench import REGISTRY, BenchError, Benchmark, Context, Result, as_results, discover
from bench.report import json_lines, table


def select(only: list[str]) -> tuple[list[Benchmark], set[str] | None]:
    """The benchmarks to run, and the figure names to keep (None: all). NAME matches a
    benchmark or a figure name, exactly or as a glob (``ringbuffer_*``)."""
    if not only:
        return list(REGISTRY.values()), None
    patterns = [p for arg in only for p in arg.split(",") if p]
    chosen: list[Benchmark] = []
    keep: set[str] = set()
    for pat in patterns:
        hit = False
        for b in REGISTRY.values():
            names = [n for n in (b.name, *b.produces()) if fnmatch.fnmatchcase(n, pat)]
            if names:
                hit = True
                if b not in chosen:
                    chosen.append(b)
                keep |= set(b.produces()) if b.name in names else set(names)
        if not hit:
            known = ", ".join(
                sorted({n for b in REGISTRY.values() for n in (b.name, *b.produces())})
            )
            raise SystemExit(f"bench: no benchmark or figure matches {pat!r} (known: {known})")
    order = list(REGISTRY.values())
    return sorted(chosen, key=order.index), keep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark or figure (glob; repeatable or a,b)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller workloads and fewer repeats: a smoke run, rougher figures",
    )
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)

    import_failures = discover()
    if args.list:
        for b in REGISTRY.values():
            figs = "" if b.produces() == (b.name,) else f"  -> {', '.join(b.produces())}"
            print(f"{b.name}{figs}\n    {b.description}")
        for mod, err in import_failures.items():
            print(f"(bench/{mod}.py did not import: {err})")
        return 1 if import_failures else 0
    try:
        chosen, keep = select(args.only)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2

    ctx = Context(quick=args.quick)
    results: list[Result] = []
    failures: list[tuple[str, str]] = [(f"bench/{m}.py", e) for m, e in import_failures.items()]
    t_all = time.perf_counter()
    for b in chosen:
        ctx.log(f"bench: {b.name} ...")
        t0 = time.perf_counter()
        try:
            got = [r for r in as_results(b.fn(ctx)) if keep is None or r.name in keep]
        except BenchError as e:
            failures.append((b.name, str(e)))
            ctx.log(f"bench: {b.name} FAILED: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - report it and run the others
            failures.append((b.name, f"{type(e).__name__}: {e}"))
            ctx.log(traceback.format_exc())
            continue
        results += got
        ctx.log(f"bench: {b.name} done in {time.perf_counter() - t0:.1f} s")
    ctx.log(f"bench: all done in {time.perf_counter() - t_all:.1f} s")

    print(table(results, failures))
    print()
    print(json_lines(results))
    sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
