#!/usr/bin/env python3
"""Build ``verifier/verify.html``: the one self-contained page (no network, no CDN) made of
``src/page.html`` with ``src/page.css`` and every ``src/*.js`` inlined.

The JavaScript files are ES modules that import one another by relative name
(``import { x } from "./zip.js";``). The page holds them as one module: each file's local
imports are dropped, its ``export`` keywords removed, and the files are placed so that each
comes after those it imports (``ui.js``, which imports everything, last).

    python3 verifier/build.py           # write verifier/verify.html
    python3 verifier/build.py --check   # exit 1 if the checked-in page is not what this makes
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUT = HERE / "verify.html"
IMPORT = re.compile(r"^\s*import\s[^;]*?from\s+[\"']\./([\w.-]+\.js)[\"'];?[ \t]*\n", re.M | re.S)
EXPORT = re.compile(r"^export\s+(?=(async\s+)?function|const|let|class)", re.M)


def _order(sources: dict[str, str]) -> list[str]:
    """The file names, each after the files it imports (dependency order, then by name)."""
    done: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in stack:
            raise SystemExit(f"build.py: import cycle: {' -> '.join((*stack, name))}")
        if name not in sources:
            raise SystemExit(f"build.py: {stack[-1]} imports {name}, which is not in src/")
        for dep in IMPORT.findall(sources[name]):
            visit(dep, (*stack, name))
        done.append(name)

    for name in sorted(sources):
        visit(name, ())
    return done


def build() -> str:
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(SRC.glob("*.js"))}
    parts = []
    for name in _order(sources):
        body = EXPORT.sub("", IMPORT.sub("", sources[name]))
        parts.append(f"// ---- {name} ----\n{body.strip()}\n")
    js = "\n".join(parts)
    if "</script" in js.lower():
        raise SystemExit(
            "build.py: a source file holds '</script', which would end the page's script"
        )
    page = (SRC / "page.html").read_text(encoding="utf-8")
    css = (SRC / "page.css").read_text(encoding="utf-8").strip()
    for mark, text in (("/*@PAGE_CSS@*/", css), ("/*@PAGE_JS@*/", js.strip())):
        if page.count(mark) != 1:
            raise SystemExit(f"build.py: page.html must hold {mark} once")
        page = page.replace(mark, text)
    return page


def main(argv: list[str]) -> int:
    page = build()
    if argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != page:
            print(
                "verifier/verify.html is out of date: run python3 verifier/build.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(page, encoding="utf-8")
    print(f"wrote {OUT} ({len(page.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
