"""The API as exact as its schema: JSON bodies with a key twice (or NaN, Infinity) are
refused (``StrictJSONRoute``; the models refuse wrong types, dock/routes/models.py), and a
method a path does not take is answered with the ``Allow`` of every route on that path
(``method_not_allowed``; OPTIONS is answered 204 with it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from dock.middleware import Refused
from dock.protocol import Code


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise Refused(422, Code.INVALID, f"duplicate key {key!r} in the JSON body")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise Refused(422, Code.INVALID, f"{name} is not JSON")


def strict_loads(data: bytes) -> Any:
    """JSON as RFC 8259 has it, with each key once per object."""
    return json.loads(data, object_pairs_hook=_pairs, parse_constant=_no_constant)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by ``strict_loads``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at this request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods | {"OPTIONS"}) if methods else []


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with the path's whole ``Allow``; OPTIONS answered 204 with it."""
    assert isinstance(exc, HTTPException)
    if exc.status_code != 405:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    allow = ", ".join(allowed_methods(request))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here (Allow: {allow})", "code": Code.INVALID},
        status_code=405,
        headers={"Allow": allow},
    )
