"""The API as exact as its schema: JSON bodies with a key twice (or NaN, Infinity) are
refused (``StrictJSONRoute``; the models refuse wrong types, dock/routes/models.py), and a
method a path does not take is answered with the ``Allow`` of every route on that path
(``method_not_allowed``; OPTIONS is answered 204 with it)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

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


_VERBS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allow_table(app: Any) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each path of the API's description, as a pattern, with the methods it takes."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        app.state, "allow_table", None
    )
    if table is None:
        table = []
        for path, ops in app.openapi()["paths"].items():
            parts = re.split(r"\{[^/{}]+\}", path)
            pattern = re.compile("[^/]+".join(re.escape(p) for p in parts))
            methods = {m.upper() for m in ops if m in _VERBS}
            if "GET" in methods:
                methods.add("HEAD")
            table.append((pattern, frozenset(methods)))
        app.state.allow_table = table
    return table


def allowed_methods(request: Request, fallback: str = "") -> list[str]:
    """Every method some route of the app takes at this request's path."""
    methods: set[str] = set()
    for pattern, verbs in _allow_table(request.app):
        if pattern.fullmatch(request.url.path):
            methods |= verbs
    if not methods:
        methods = {m.strip() for m in fallback.split(",") if m.strip()}
    return sorted(methods | {"OPTIONS"})


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with the path's whole ``Allow``; OPTIONS answered 204 with it."""
    assert isinstance(exc, HTTPException)
    if exc.status_code != 405:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    allow = ", ".join(allowed_methods(request, (exc.headers or {}).get("Allow", "")))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here (Allow: {allow})", "code": Code.INVALID},
        status_code=405,
        headers={"Allow": allow},
    )
