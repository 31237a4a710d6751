"""The recordings pages: ``/recordings`` (list and search by camera, category, status and
date: GET parameters, so a search is a link) and ``/recordings/{ref}`` (one recording: its
segments, times, verification verdict, witness status, custody history; and the forms this
account may use: categories, sensitive mark, grants, lifting the mark, legal hold, export).

A recording's link names it by the catalog's opaque reference (``RecordingRow.ref``), never
by its camera: a restricted recording's link must not say whose camera it came from. What an
account may see is the catalog's to decide (console/catalog.py): a restricted recording shows
its id and times only, and opening it is refused (``access_refused`` in the custody log)."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from console.auth import check_csrf, console_of, require
from console.catalog import Catalog, CatalogError, Forbidden, NotFound, RecordingQuery
from console.core import Account
from console.custody_log import detail_text
from console.render import render

router = APIRouter()
Viewer = Annotated[Account, Depends(require("recordings.view"))]
Csrf = Annotated[Account, Depends(check_csrf)]

STATUSES = ("verified", "gap", "incomplete", "ended_early", "failed", "deleted")
DAY_US = 86_400 * 1_000_000
DONE = {
    "categorised": "Categories saved.",
    "marked": "Marked sensitive: only accounts granted access see it now.",
    "granted": "Access granted.",
    "lift_requested": "Asked to lift the mark: a second supervisor must approve.",
    "lifted": "The sensitive mark is lifted.",
    "held": "Legal hold set: retention will not delete it.",
    "released": "Legal hold released.",
}


@dataclass(frozen=True)
class SearchForm:
    camera: str = ""
    category: str = ""
    status: str = ""
    date_from: str = ""
    date_to: str = ""
    text: str = ""


def day_us(text: str, end: bool = False) -> int | None:
    """``YYYY-MM-DD`` (UTC) as µs at the day's start (``end``: its last µs); ValueError."""
    if not text:
        return None
    d = datetime.date.fromisoformat(text)
    t = datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.UTC)
    us = int(t.timestamp()) * 1_000_000
    return us + DAY_US - 1 if end else us


def catalog_of(request: Request) -> Catalog:
    return Catalog(console_of(request))


@router.get("/recordings")
def recordings(request: Request, account: Viewer) -> Response:
    p = request.query_params
    form = SearchForm(
        p.get("camera", ""), p.get("category", ""), p.get("status", ""),
        p.get("from", ""), p.get("to", ""), p.get("q", "").strip()[:64],
    )  # fmt: skip
    catalog = catalog_of(request)
    error = None
    try:
        q = RecordingQuery(
            device_id=form.camera or None,
            category=form.category or None,
            status=form.status or None,
            date_from_us=day_us(form.date_from),
            date_to_us=day_us(form.date_to, end=True),
            text=form.text or None,
        )
    except ValueError:
        error = "A date is YYYY-MM-DD (UTC); the search ignored the dates."
        q = RecordingQuery(
            form.camera or None, form.category or None, form.status or None, text=form.text or None
        )
    rows = catalog.list(account, q)
    console = console_of(request)
    assert catalog.policy is not None
    return render(
        request,
        "recordings.html",
        account,
        rows=rows,
        form=form,
        searched=any(vars(form).values()),
        error=error,
        cameras=[d.device_id for d in console.dock.store.list_devices()],
        categories=catalog.policy.categories,
        statuses=STATUSES,
    )


# --------------------------------------------------------------------------- one recording


def _key(request: Request, ref: str) -> tuple[str, str] | None:
    try:
        return catalog_of(request).resolve(ref)
    except NotFound:
        return None


def _not_found(request: Request, account: Account) -> Response:
    return render(
        request, "error.html", account, status=404, title="No such recording",
        message="This dock holds no recording at that address.",
    )  # fmt: skip


@router.get("/recordings/{ref}")
def recording(request: Request, ref: str, account: Viewer) -> Response:
    key = _key(request, ref)
    if key is None:
        return _not_found(request, account)
    return _detail_page(request, account, ref, key)


def _detail_page(
    request: Request,
    account: Account,
    ref: str,
    key: tuple[str, str],
    status: int = 200,
    error: str | None = None,
) -> Response:
    catalog = catalog_of(request)
    try:
        detail = catalog.detail(account, *key)
    except NotFound:
        return _not_found(request, account)
    except Forbidden as exc:
        row = next((r for r in catalog.list(account, log=False) if r.ref == ref), None)
        return render(
            request, "recording.html", account, status=403, ref=ref, d=None, row=row,
            refused=str(exc) or "Restricted.", error=None, done=None, policy=catalog.policy,
            accounts=[], custody=[],
        )  # fmt: skip
    done = DONE.get(request.query_params.get("done", ""))
    return render(
        request, "recording.html", account, status=status, ref=ref, d=detail, row=None,
        refused=None, error=error, done=done, policy=catalog.policy,
        accounts=_grantees(request, account),
        custody=[(e, detail_text(e.detail or {})) for e in detail.custody],
    )  # fmt: skip


def _refused(request: Request, account: Account, exc: Forbidden) -> Response:
    """A refused change or export (already in the custody log): said, nothing more shown."""
    why = str(exc) or "not allowed"
    return render(
        request, "error.html", account, status=403, title="Not allowed",
        message=why[:1].upper() + why[1:] + ". The attempt is in the custody log.",
    )  # fmt: skip


def _grantees(request: Request, account: Account) -> list[str]:
    if not account.may("recordings.change"):
        return []
    accounts = getattr(request.app.state, "accounts", None)
    if accounts is None:
        return []
    return sorted(a.name for a in accounts.list() if not a.disabled and a.name != account.name)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: form.getlist(k) if k == "category" else form.get(k) for k in form}


def _changed(ref: str, done: str) -> Response:
    return RedirectResponse(f"/recordings/{ref}?{urlencode({'done': done})}", status_code=303)


async def _change(request: Request, ref: str, account: Account, what: str) -> Response:
    key = _key(request, ref)
    if key is None:
        return _not_found(request, account)
    form = await _form(request)
    catalog = catalog_of(request)
    reason = str(form.get("reason") or "").strip()
    note = None  # the change is made, but the object store did not lock it (S3 stores)
    try:
        if what == "categorised":
            cats = [str(c) for c in form.get("category") or []]
            note = catalog.set_categories(account, *key, cats)
        elif what == "marked":
            catalog.mark_sensitive(account, *key, reason)
        elif what == "granted":
            catalog.grant(account, *key, str(form.get("grantee") or "").strip(), reason)
        elif what == "lift_requested":
            catalog.request_lift(account, *key, reason)
        elif what == "lifted":
            catalog.approve_lift(account, *key)
        elif what == "held":
            note = catalog.set_hold(account, *key, reason)
        elif what == "released":
            note = catalog.release_hold(account, *key, reason)
    except Forbidden as exc:
        return _refused(request, account, exc)
    except CatalogError as exc:
        return _detail_page(request, account, ref, key, 400, str(exc))
    if note:
        return _detail_page(request, account, ref, key, 200, f"{DONE[what]} But {note}.")
    return _changed(ref, what)


def _post(path: str, what: str) -> None:
    async def handler(
        request: Request,
        ref: str,
        account: Viewer,
        _csrf: Csrf,
    ) -> Response:
        return await _change(request, ref, account, what)

    handler.__name__ = f"recording_{what}"
    router.post(f"/recordings/{{ref}}/{path}")(handler)


for _path, _what in (
    ("categories", "categorised"),
    ("sensitive", "marked"),
    ("grant", "granted"),
    ("lift/request", "lift_requested"),
    ("lift/approve", "lifted"),
    ("hold", "held"),
    ("hold/release", "released"),
):
    _post(_path, _what)


@router.post("/recordings/{ref}/export")
async def export(
    request: Request,
    ref: str,
    account: Viewer,
    _csrf: Csrf,
) -> Response:
    """The exhibit as a zip download (never decrypted: the agency key is not at the dock)."""
    key = _key(request, ref)
    if key is None:
        return _not_found(request, account)
    tmp = Path(tempfile.mkdtemp(prefix="bwv-export-"))
    try:
        path = catalog_of(request).export(account, *key, tmp)
    except Forbidden as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return _refused(request, account, exc)
    except CatalogError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return _detail_page(request, account, ref, key, 400, str(exc))
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=path.name,
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(shutil.rmtree, tmp, True),
    )
