"""``GET /healthz`` (JSON; 503 when the dock cannot take footage) and ``GET /metrics``
(Prometheus text), for operators' monitoring: no account needed (a monitor does not sign
in), and neither says anything about a recording or a person: counts and sizes only.

A test may set ``app.state.disk_usage`` (``shutil.disk_usage``'s shape) to give a full disk.
"""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from console.metrics import health, new_registry

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


def _disk_usage(request: Request) -> Any:
    return getattr(request.app.state, "disk_usage", shutil.disk_usage)


def registry_of(request: Request) -> CollectorRegistry:
    """This app's registry, made on first use (two racing first scrapes make two; one is kept:
    both are private to the app)."""
    state = request.app.state._state  # the app's own dict: setdefault is atomic
    found = state.get("metrics_registry")
    if found is None:
        made = new_registry(request.app.state.console, _disk_usage(request))
        found = state.setdefault("metrics_registry", made)
    return found


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> JSONResponse:
    h = health(request.app.state.console, _disk_usage(request))
    return JSONResponse(h.to_json(), status_code=200 if h.ok else 503, headers=NO_STORE)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(registry_of(request)), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE
    )
