#!/usr/bin/env python3
"""Build ``verifier/verify.html``: the one self-contained page (no network, no CDN) made of
``src/page.html`` with ``src/page.css`` and every ``src/*.js`` inlined.

The JavaScript files are ES modules that import one another by relative name
(``import { x, y as z } from "./zip.js";``; exports: ``export function``/``const``/``class``
and ``export { a, b as c };``). The page holds them in one module script, each file in its own
function scope (``const __m_zip = (() => { ...; return { readZip, ... }; })();``, its imports
turned into ``const { x, y: z } = __m_zip;``), placed after the files it imports (``ui.js``,
which imports everything, last). No other import or export form is accepted.

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
IMPORT = re.compile(r"^import\s*\{([^}]*)\}\s*from\s*[\"']\./([\w.-]+\.js)[\"'];?", re.M)
EXPORT_DECL = re.compile(r"^export\s+((?:async\s+)?function\*?|const|let|class)\s+([\w$]+)", re.M)
EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\};?", re.M)
LEFT = re.compile(r"^\s*(import|export)\b", re.M)


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
        for _names, dep in IMPORT.findall(sources[name]):
            visit(dep, (*stack, name))
        done.append(name)

    for name in sorted(sources):
        visit(name, ())
    return done


def _var(name: str) -> str:
    return "__m_" + re.sub(r"\W", "_", name.removesuffix(".js"))


def _names(listed: str, sep: str) -> list[str]:
    """``a, b as c`` as ``["a", "b<sep>c"]``."""
    out = []
    for item in (i.strip() for i in listed.split(",")):
        if item:
            parts = item.split()
            out.append(parts[0] if len(parts) == 1 else f"{parts[0]}{sep}{parts[2]}")
    return out


def _module(name: str, src: str) -> str:
    """One file as a function scope returning what it exports."""
    exported: list[str] = []

    def imp(m: re.Match[str]) -> str:
        return f"const {{ {', '.join(_names(m[1], ': '))} }} = {_var(m[2])};"

    def decl(m: re.Match[str]) -> str:
        exported.append(m[2])
        return f"{m[1]} {m[2]}"

    def listed(m: re.Match[str]) -> str:
        for n in _names(m[1], " as "):
            local, _, public = n.partition(" as ")
            exported.append(f"{public}: {local}" if public else local)
        return ""

    body = EXPORT_LIST.sub(listed, EXPORT_DECL.sub(decl, IMPORT.sub(imp, src))).strip()
    if left := LEFT.search(body):
        line = body[: left.start()].count("\n") + 1
        raise SystemExit(f"build.py: {name}:{line}: an import or export build.py cannot take")
    ret = f"return {{ {', '.join(exported)} }};"
    return f"// ---- {name} ----\nconst {_var(name)} = (() => {{\n{body}\n{ret}\n}})();\n"


def build() -> str:
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(SRC.glob("*.js"))}
    parts = [_module(name, sources[name]) for name in _order(sources)]
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
