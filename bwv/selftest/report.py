"""The selftest's findings as a user reads them: one line per check and a verdict, or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from bwv.selftest.model import Check


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{c.status}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "WARN" for c in checks)
    passed = len(checks) - failed - warned
    lines.append(
        f"selftest: {passed} passed, {warned} warnings, {failed} failed"
        + (" -- NOT READY" if failed else " -- ready")
    )
    return "\n".join(lines)


def emit(checks: list[Check], as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2
            )
        )
    else:
        click.echo(render(checks))
