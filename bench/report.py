"""Printing results: a table for people, one JSON line per figure for machines."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from bench import Result


def fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def goal_cell(r: Result) -> str:
    if not r.goal:
        return ""
    mark = {True: "met", False: "MISSED", None: "?"}[r.goal_met]
    return f"{r.goal} {mark}"


def wrap(text: str) -> str:
    return textwrap.fill(
        text, 100, subsequent_indent="    ", break_on_hyphens=False, break_long_words=False
    )


def table(results: Sequence[Result], failures: Sequence[tuple[str, str]] = ()) -> str:
    """A plain-text table; details (and failures) follow it as notes."""
    head = ("figure", "value", "unit", "baseline", "ratio", "goal")
    rows = [
        (
            r.name,
            fmt(r.value),
            r.unit,
            fmt(r.baseline),
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            goal_cell(r),
        )
        for r in results
    ]
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    right = {1, 3, 4}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    notes = []
    if any(r.ratio is not None for r in results):
        notes.append(
            "ratio > 1x: ours is better than the baseline (baseline/ours when lower is better)."
        )
    for r in results:
        text = "; ".join(
            x for x in (f"baseline: {r.baseline_label}" if r.baseline_label else "", r.detail) if x
        )
        if text:
            notes.append(wrap(f"{r.name}: {text}"))
    for name, msg in failures:
        notes.append(wrap(f"FAILED {name}: {msg}"))
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def json_lines(results: Sequence[Result]) -> str:
    return "\n".join(json.dumps(r.json_dict()) for r in results)
