"""The ``bwv`` commands and the dock console stay small rooms: no module over 500 lines, no
function over 80.

A command that grows past these (as ``bwv selftest`` did, at 747 lines, and ``bwv
provision``'s 168-line function) is split into named steps and modules before it is merged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BWV = ROOT / "bwv"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MODULES = sorted(BWV.rglob("*.py")) + sorted((ROOT / "console").rglob("*.py"))


def test_the_commands_are_all_looked_at():
    names = {p.relative_to(ROOT).as_posix() for p in MODULES}
    assert {"bwv/cli.py", "bwv/provision_cmd.py", "bwv/dock_cmd.py", "console/app.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_and_functions_are_small(path):
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
