"""The investigator's verifier page, ``verifier/verify.html`` (a second, independent
verifier in one offline HTML file: verifier/build.py makes it): ``bwv dock export`` puts it
into every exhibit and the dock serves it at ``GET /verify.html``."""

from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "verifier" / "verify.html"


def verify_page() -> bytes | None:
    """The page's bytes, or None where it is not installed (a wheel without the repo)."""
    try:
        return PAGE.read_bytes()
    except OSError:
        return None
