"""A QR code as inline SVG (segno), for the console's pages: no image file, no script, no
request to anyone (an enrolment token must not leave the page)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(text: str, title: str) -> Markup:
    """``text`` as a QR code (error correction M, the standard quiet zone), an ``<svg
    class="qr">`` that scales with its CSS box; ``title`` is what a screen reader says."""
    svg = segno.make(text, error="m", micro=False).svg_inline(
        scale=1, border=4, omitsize=True, svgclass="qr", lineclass=None, title=title,
        dark="#000", light="#fff",
    )  # fmt: skip
    svg = svg.replace("<svg ", '<svg shape-rendering="crispEdges" role="img" ', 1)
    return Markup(svg)  # segno escapes the title; the rest is its own drawing
