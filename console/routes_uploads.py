"""The uploads page (``/uploads``): per camera, what it has queued (as it last reported),
what it is uploading now (a progress bar with bytes and rate) and what the dock receipted
lately; a stalled upload (no bytes for ``ConsoleConfig.stalled_upload_s``) or a failing camera
(the dock's last answer to it was a refusal: its reason shown) comes first and stands out.

The page reads without JavaScript (reload to update). With it, console/static/console.js
asks ``/uploads.json`` every second and swaps in the same rows, rendered by the same template
(``uploads_rows.html``), so the bars move. Both need ``uploads.view``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from console.auth import console_of, require
from console.core import Account
from console.render import render, templates, utc
from dock.fleet import UploadRow, upload_rows

router = APIRouter()
Viewer = Annotated[Account, Depends(require("uploads.view"))]
ORDER = {"failing": 0, "stalled": 1, "uploading": 2, "queued": 3, "idle": 4}


def rows_now(request: Request, account: Account) -> tuple[list[UploadRow], int]:
    """The rows, the ones that need a person first, and the time they were read at."""
    console = console_of(request)
    now = console.now_us()
    rows = upload_rows(
        console.dock.store, console.dock.activity, now, console.config.stalled_upload_s
    )
    rows = _firewalled(console, account, rows)
    return sorted(rows, key=lambda r: (ORDER[r.state], r.device_id)), now


def _firewalled(console: Any, account: Account, rows: list[UploadRow]) -> list[UploadRow]:
    """A receipted segment of a recording restricted to ``account`` (sensitive, no grant)
    does not name its recording: beside its camera that would say whose camera it was."""
    from console.catalog_db import Marks

    marks = Marks(console.db)
    restricted = {r for _, r in set(marks.sensitive()) - marks.granted(account.name)}
    if not restricted:
        return rows
    return [
        replace(
            row,
            receipted=[
                replace(x, recording_id=None) if x.recording_id in restricted else x
                for x in row.receipted
            ],
        )
        for row in rows
    ]


@router.get("/uploads")
def uploads(request: Request, account: Viewer) -> Response:
    rows, now = rows_now(request, account)
    return render(request, "uploads.html", account, rows=rows, as_of_us=now)


@router.get("/uploads.json")
def uploads_json(request: Request, account: Viewer) -> JSONResponse:
    rows, now = rows_now(request, account)
    html = templates.get_template("uploads_rows.html").render(rows=rows, now_us=now)
    return JSONResponse(
        {
            "as_of_us": now,
            "as_of": utc(now),
            "cameras": [row_json(r) for r in rows],
            "html": html,
        },
        headers={"Cache-Control": "no-store"},
    )


def row_json(r: UploadRow) -> dict[str, Any]:
    d = asdict(r)
    d["state"] = r.state
    d["uploading"] = [{**asdict(u), "fraction": u.fraction} for u in r.uploading]
    return d
