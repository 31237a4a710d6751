"""The problems page (``/problems``): everything at the dock that needs a person, grouped,
each with what, where (a link) and since when (console/problems.py). ``?verify=1`` also
re-checks every stored byte (slow on a large dock: a link, not the default)."""

from __future__ import annotations

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
    return render(request, "problems.html", account, report=report, reverified=reverify)
