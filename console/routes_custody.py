"""The custody log page (``/custody``: the full log a page at a time, or about one recording
or camera: ``?recording=``, ``?camera=``) and its exports (``/custody.csv``,
``/custody.json``, the same parameters). Rows about a recording restricted to the account
are redacted (console/custody_log.py); each view and each export is a custody event."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from console.auth import console_of, require
from console.core import Account
from console.custody_log import CustodyFilter, detail_text, export, page_of, selected_rows
from console.render import render

router = APIRouter()
Auditor = Annotated[Account, Depends(require("custody.view"))]


def _filter(request: Request) -> CustodyFilter:
    p = request.query_params
    return CustodyFilter(p.get("recording") or None, p.get("camera") or None)


def _page_number(request: Request) -> int | None:
    """The page asked for (None: the last one, the newest entries)."""
    try:
        return max(1, int(request.query_params.get("page", "")))
    except ValueError:
        return None


@router.get("/custody")
def custody(request: Request, account: Auditor) -> Response:
    console = console_of(request)
    f = _filter(request)
    entries = selected_rows(console, account, f)
    _, pages = page_of(entries, 1)
    number = _page_number(request) or pages
    shown, pages = page_of(entries, number)
    number = min(number, pages)
    got = shown
    console.custody(
        account,
        "viewed",
        recording_id=f.recording_id,
        device_id=f.device_id,
        detail={"what": "custody_log", "page": number, "shown": len(got)},
    )
    query = urlencode(
        [(k, v) for k, v in (("recording", f.recording_id), ("camera", f.device_id)) if v]
    )
    return render(
        request,
        "custody.html",
        account,
        rows=[(r, detail_text(r["detail"])) for r in got],
        total=len(entries),
        filter=f,
        page=number,
        pages=pages,
        query=query,
    )


def _download(request: Request, account: Account, fmt: str) -> Response:
    text, name = export(console_of(request), account, _filter(request), fmt)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(
        text,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/custody.csv")
def custody_csv(request: Request, account: Auditor) -> Response:
    return _download(request, account, "csv")


@router.get("/custody.json")
def custody_json(request: Request, account: Auditor) -> Response:
    return _download(request, account, "json")
