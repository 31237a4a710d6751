"""The packages import each other in one direction only (README, "Architecture").

Every ``import`` in a package's modules (at the top or inside a function: a lazy import is
still a dependency) is read with ``ast`` and checked against the table below. A package may
import the ones listed for it and nothing else of bwv's. ``bwv`` alone (the package itself:
its ``__version__``) may be imported from anywhere; ``bwv.*`` (the command) only from the
front ends.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FRONT_ENDS = {"bwv", "simulator", "bench"}
# package -> the packages of bwv it may import (besides itself)
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "pre_record": {"base"},
    "gpio": {"base"},
    "crypto": {"base", "tlog"},
    "tlog": {"base"},
    "tsa": {"base", "crypto"},
    "witness": {"base", "crypto", "tlog"},
    "tpm": {"base", "crypto"},  # the only package that imports tpm2-pytss
    "capture": {"base", "pre_record", "gpio", "crypto", "tpm"},
    "dock": {"base", "crypto", "capture", "tlog", "witness", "tsa"},
    "console": {"base", "crypto", "capture", "tlog", "witness", "tsa", "dock"},
    "device_app": {"base", "pre_record", "gpio", "crypto", "capture", "dock", "tsa", "tpm"},
}
PACKAGES = set(MAY_IMPORT) | FRONT_ENDS


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, lazy ones included."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in PACKAGES:  # "from crypto import canonical" imports crypto.canonical
                out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def forbidden_imports(package: str, root: Path = ROOT) -> list[str]:
    allowed = MAY_IMPORT[package] | {package}
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            top = module.split(".")[0]
            if top not in PACKAGES or top in allowed:
                continue
            if module == "bwv" or module == "bwv.__version__":
                continue  # the version, nothing of the command
            bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_what_lies_below_it(package: str) -> None:
    assert forbidden_imports(package) == []


def test_the_table_has_no_cycle() -> None:
    """What may be imported never leads back: the layers are a strict order."""
    seen: dict[str, set[str]] = {}

    def below(p: str, path: tuple[str, ...]) -> set[str]:
        assert p not in path, f"cycle: {' -> '.join((*path, p))}"
        if p not in seen:
            seen[p] = set()
            for q in MAY_IMPORT[p]:
                seen[p] |= {q} | below(q, (*path, p))
        return seen[p]

    for p in MAY_IMPORT:
        assert p not in below(p, ())


def test_every_package_is_in_the_table() -> None:
    """A new top-level package must be given its place in the layers."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages - {"tests"} == PACKAGES


def test_a_backward_edge_is_caught(tmp_path: Path) -> None:
    """The check itself: crypto importing capture (as it did for SEGMENTS_DIR's sake) or gpio
    importing capture's clock is reported, lazy imports included."""
    (tmp_path / "crypto").mkdir()
    (tmp_path / "crypto" / "evidence.py").write_text(
        "from capture.sink import SegmentInfo\n"
        "def f():\n    import capture.fmp4\n"
        "from bwv import __version__\n"
    )
    assert forbidden_imports("crypto", tmp_path) == [
        "crypto/evidence.py:1 imports capture.sink",
        "crypto/evidence.py:3 imports capture.fmp4",
    ]
    (tmp_path / "gpio").mkdir()
    (tmp_path / "gpio" / "sim.py").write_text("from bwv.verify_cmd import x\nimport base.clock\n")
    assert forbidden_imports("gpio", tmp_path) == ["gpio/sim.py:1 imports bwv.verify_cmd"]
