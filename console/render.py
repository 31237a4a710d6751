"""Server-rendered pages: ``render(request, "cameras.html", account, rows=...)``.

Templates live in console/templates/ (Jinja2, autoescaped) and extend ``base.html``. Every
page gets ``account``, ``csrf`` (for its forms: ``<input type="hidden" name="csrf"
value="{{ csrf }}">``), ``nav`` (the pages this account may open) and ``now_us``; answers
are never cached (``Cache-Control: no-store``: footage metadata stays off shared machines'
disks). Filters: ``utc`` (µs -> "2026-12-02 06:00:00 UTC"), ``size`` (bytes -> "1.2 MB"),
``ago`` (µs, now_us -> "5 min ago").
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.routing import Match

from console.core import Account
from dock.fleet import age_text

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    permission: str
    about: str  # one line for the home page


NAV: tuple[NavItem, ...] = (
    NavItem("Cameras", "/cameras", "cameras.view", "Enrolled cameras; enrol and revoke."),
    NavItem("Uploads", "/uploads", "uploads.view", "What each docked camera is uploading now."),
    NavItem("Recordings", "/recordings", "recordings.view", "Find, check and export footage."),
    NavItem("Problems", "/problems", "problems.view", "Everything that needs a person."),
    NavItem("Custody log", "/custody", "custody.view", "Every view, export and change."),
    NavItem("Retention", "/retention", "retention.view", "Deletions due, legal holds, jobs."),
)


def utc(us: int | None) -> str:
    if us is None:
        return "—"
    t = datetime.datetime.fromtimestamp(us / 1e6, datetime.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def ago(us: int | None, now_us: int) -> str:
    """How long ago ``us`` was, for a person ("45 s ago", "3 min ago", "25 h ago")."""
    if us is None:
        return "never"
    if us > now_us:
        return "in the future"
    return f"{age_text(now_us - us)} ago"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html", "xml"), default_for_string=True),
        undefined=StrictUndefined,  # a typo in a template is an error in the tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=utc, size=size, ago=ago)
    return env


templates = _environment()


def serves(request: Request, path: str) -> bool:
    """Whether this console has a page at ``path`` (pages come and go with their modules)."""
    scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}
    return any(r.matches(scope)[0] == Match.FULL for r in request.app.router.routes)


def nav_for(request: Request, account: Account | None) -> list[NavItem]:
    """The pages ``account`` may open (and that this console serves)."""
    if account is None:
        return []
    return [n for n in NAV if account.may(n.permission) and serves(request, n.href)]


def render(
    request: Request,
    template: str,
    account: Account | None,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    console = request.app.state.console
    page = templates.get_template(template).render(
        request=request,
        account=account,
        csrf=getattr(request.state, "csrf", None) or "",
        nav=nav_for(request, account),
        now_us=console.now_us(),
        path=request.url.path,
        **ctx,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})
