"""The retention page (``/retention``): the policy (each category's rule, the default
category), the deletions due now (a held recording is listed, and kept), the legal holds,
the jobs run (by whom, what each deleted, what a hold kept, what failed) and a "Run now"
button (``retention.run``; the job is console/retention.py's). A recording the account may
not see is named by its id only."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from console.auth import check_csrf, console_of, require
from console.catalog import Catalog, Forbidden
from console.core import Account
from console.render import render
from console.retention import PolicyError, due, jobs, load_policy, run_job

router = APIRouter()
Reader = Annotated[Account, Depends(require("retention.view"))]
Runner = Annotated[Account, Depends(require("retention.run"))]
Csrf = Annotated[Account, Depends(check_csrf)]


def _seen(catalog: Catalog, account: Account, item: dict[str, Any]) -> dict[str, Any]:
    """A recording in a list, as the account may read it (restricted: id only), with its
    page's address."""
    dev, rec = item.get("device_id"), item.get("recording_id")
    if not isinstance(dev, str) or not isinstance(rec, str):
        return item | {"restricted": False, "href": None}
    ref = catalog.marks.refs([(dev, rec)]).get((dev, rec))
    href = f"/recordings/{quote(ref, safe='')}" if ref else None
    if catalog.may_see(account, dev, rec):
        return item | {"restricted": False, "href": href}
    return {"recording_id": rec, "restricted": True, "href": href} | {
        k: item[k] for k in ("custody_entries", "why") if k in item
    }


def _in_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The visible recordings in the list's order (by camera, by due time), the restricted
    ones after them by id: a restricted one's place among the others would tell its camera
    or when it falls due."""
    shown = [x for x in items if not x.get("restricted")]
    hidden = [x for x in items if x.get("restricted")]
    return shown + sorted(hidden, key=lambda x: str(x.get("recording_id")))


def _error(catalog: Catalog, account: Account, error: str) -> str:
    """A job's error line (``device/recording: why``) as the account may read it."""
    where, sep, _why = error.partition(": ")
    dev, slash, rec = where.partition("/")
    if sep and slash and not catalog.may_see(account, dev, rec):
        return f"recording {rec}: failed (restricted)"
    return error


@router.get("/retention")
def retention(request: Request, account: Reader) -> Response:
    console = console_of(request)
    catalog = Catalog(console)
    error = None
    try:
        policy = load_policy(console.store_dir)
    except PolicyError as exc:
        error, policy = str(exc), None
    now = console.now_us()
    due_now = _in_order([
        _seen(catalog, account, d.to_json()) for d in due(console, now, policy, include_held=True)
    ]) if policy is not None else []  # fmt: skip
    holds = _in_order([
        _seen(catalog, account, {"device_id": d, "recording_id": r, "reason": m.reason,
                                 "by": m.who, "at_us": m.at_us})
        for (d, r), m in sorted(catalog.marks.holds().items())
    ])  # fmt: skip
    listed = jobs(console, 20)
    ran = [
        {
            "job": j,
            "deleted": _in_order([_seen(catalog, account, x) for x in j.deleted]),
            "refused": _in_order([_seen(catalog, account, x) for x in j.refused]),
            "errors": [_error(catalog, account, e) for e in j.errors],
        }
        for j in listed
    ]
    wanted = request.query_params.get("job")
    if request.query_params.get("busy") == "1":
        error = "Another retention job is running: this one did nothing. It is in the list below."
    just = next((r for r, j in zip(ran, listed, strict=True) if str(j.id) == wanted), None)
    return render(
        request,
        "retention.html",
        account,
        policy=policy,
        error=error,
        due=due_now,
        holds=holds,
        jobs=ran,
        just_ran=just,
    )


@router.post("/retention/run")
def run_now(request: Request, account: Runner, _csrf: Csrf) -> Response:
    console = console_of(request)
    try:
        job = run_job(console, account)
    except Forbidden as exc:  # pragma: no cover - require() refused it first
        return render(request, "error.html", account, 403, title="Not allowed", message=str(exc))
    except PolicyError as exc:
        return render(request, "error.html", account, 400, title="Retention", message=str(exc))
    if not job.id:  # another job was running: this one did nothing
        return RedirectResponse("/retention?busy=1", status_code=303)
    return RedirectResponse(f"/retention?job={job.id}", status_code=303)
