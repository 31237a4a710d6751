"""The problems page (``/problems``): everything at the dock that needs a person, grouped,
each with what, where (a link) and since when (console/problems.py). ``?verify=1`` also
re-checks every stored byte (slow on a large dock: a link, not the default)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from console.auth import console_of, require
from console.core import Account
from console.problems import collect
from console.render import render

router = APIRouter()
Anyone = Annotated[Account, Depends(require("problems.view"))]


@router.get("/problems")
def problems(request: Request, account: Anyone) -> Response:
    reverify = request.query_params.get("verify") == "1"
    report = collect(console_of(request), account, reverify=reverify)
    report.problems = [
        p if openable(account, p.where) else replace(p, where=None) for p in report.problems
    ]
    return render(request, "problems.html", account, report=report, reverified=reverify)


# the pages a problem's link may lead to, and the permission each needs
LINKED_PAGES = (("/custody", "custody.view"), ("/recordings", "recordings.view"))


def openable(account: Account, where: str | None) -> bool:
    """Whether ``account`` may open the link (a link it would get a 403 for is not shown)."""
    if where is None:
        return False
    return all(account.may(perm) for page, perm in LINKED_PAGES if where.startswith(page))
