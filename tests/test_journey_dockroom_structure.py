"""Issue 9, the dock's rooms: the app is built from routers that get the dock through a
dependency, the store has one documented interface, and no dock module or function is a
hall (under 500 lines a module, 80 a function)."""

import ast
import inspect
from pathlib import Path

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from dock.instance import Dock
from dock.server import create_admin_app, create_app, open_dock
from dock.store import Store
from dock.store_sqlite import DirectoryStore

DOCK = Path(__file__).resolve().parent.parent / "dock"

# what the cameras' API offers (issue 12 added the enrollment challenge): path -> methods
API = {
    "/v1/dock": {"GET"},
    "/v1/enroll": {"POST"},
    "/v1/enroll/challenge": {"POST"},
    "/v1/time": {"POST"},
    "/v1/segments/{segment_id}": {"GET", "POST", "PATCH", "PUT"},
    "/v1/segments/{segment_id}/complete": {"POST"},
    "/v1/segments/{segment_id}/unsigned": {"GET", "PATCH"},
    "/v1/status": {"GET"},
    "/v1/device/report": {"POST"},  # issue 14: the camera's report (firmware, battery, queue)
    # issue 11: the transparency log, public
    "/v1/log/checkpoint": {"GET"},
    "/v1/log/checkpoint.tsr": {"GET"},
    "/v1/log/proof/{index}": {"GET"},
    "/v1/log/status": {"GET"},
}
# the admin side, apart (issue 12): its own app, on its own listener
ADMIN_API = {
    "/v1/admin/tokens": {"POST"},
    "/v1/admin/devices": {"GET"},
    "/v1/admin/devices/{device_id}": {"GET"},
    "/v1/admin/devices/{device_id}/revoke": {"POST"},
    "/v1/admin/log": {"GET"},
}


def _app(tmp_path: Path):
    return create_app(open_dock(tmp_path / "store"))


def _flat(routes) -> list:
    """The app's routes, with those of included routers (kept apart by newer FastAPI)."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_flat(inner.routes) if inner is not None else [r])
    return out


def _api_routes(app) -> list[APIRoute]:
    return [r for r in _flat(app.routes) if isinstance(r, APIRoute) and r.path.startswith("/v1/")]


def test_the_api_offers_the_same_paths_and_methods(tmp_path):
    with TestClient(_app(tmp_path)) as client:
        spec = client.get("/openapi.json").json()
    offered = {path: {m.upper() for m in ops} for path, ops in spec["paths"].items()}
    assert offered == API
    with TestClient(create_admin_app(open_dock(tmp_path / "store"))) as client:
        admin_spec = client.get("/openapi.json").json()
    assert {p: {m.upper() for m in ops} for p, ops in admin_spec["paths"].items()} == ADMIN_API
    # one problem body for every refusal, whichever router refuses
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas and not [n for n in schemas if n.endswith("__Problem")]


def test_every_route_is_a_router_function_not_a_closure_in_create_app(tmp_path):
    routes = _api_routes(_app(tmp_path))
    assert {r.path for r in routes} == set(API)
    routes += _api_routes(create_admin_app(open_dock(tmp_path / "store")))
    for r in routes:
        assert r.endpoint.__module__.startswith("dock.routes."), (r.path, r.endpoint.__module__)
        assert "<locals>" not in r.endpoint.__qualname__, (r.path, r.endpoint.__qualname__)


def test_two_docks_in_one_process_each_answer_for_itself(tmp_path):
    """The routers hold no dock of their own: each app answers with its dock's key."""
    a = create_app(open_dock(tmp_path / "a"))
    b = create_app(open_dock(tmp_path / "b"))
    with TestClient(a) as ca, TestClient(b) as cb:
        ka = ca.get("/v1/dock").json()["dock_key_id"]
        kb = cb.get("/v1/dock").json()["dock_key_id"]
    assert ka != kb
    assert ka == a.state.dock.key_id and kb == b.state.dock.key_id


def test_a_dock_built_by_hand_is_served_through_the_dependency(tmp_path):
    key = SigningKey(bytes(range(32)))
    dock = Dock(DirectoryStore(tmp_path / "s", key), key, admin_token=None)
    with TestClient(create_app(dock)) as client:
        info = client.get("/v1/dock").json()
    with TestClient(create_admin_app(dock)) as admin:
        refused = admin.get("/v1/admin/devices", headers={"Authorization": "Bearer x"})
    assert info["dock_public_key"] == bytes(key.verify_key).hex()
    assert refused.status_code == 403 and refused.json()["code"] == "admin_required"


def _store_methods() -> list[str]:
    return [
        n for n, v in vars(Store).items() if callable(v) and not n.startswith("_") and n != "close"
    ]


def test_the_store_interface_is_documented_once_and_implemented_as_declared():
    names = _store_methods()
    # issue 14: deletion under retention (retire_record, ...), devices' reports (record_report, ...)
    # issue 16: chunks written straight into the staged file (open_chunk, finish_chunk, and
    # received_digest) in place of a spool file (spool_path)
    assert len(names) == 34
    for name in names:
        declared = getattr(Store, name)
        assert inspect.getdoc(declared), f"Store.{name} says nothing"
        impl = getattr(DirectoryStore, name)
        assert list(inspect.signature(impl).parameters) == list(
            inspect.signature(declared).parameters
        ), name
        # the implementation does not restate the interface's description
        assert impl.__doc__ is None, f"DirectoryStore.{name} restates Store.{name}"


def test_dock_modules_and_functions_are_small():
    too_big = []
    for path in sorted(DOCK.rglob("*.py")):
        src = path.read_text()
        lines = src.count("\n")
        if lines > 500:
            too_big.append(f"{path.relative_to(DOCK)}: {lines} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_big.append(f"{path.relative_to(DOCK)}:{node.lineno} {node.name}: {length}")
    assert not too_big, too_big


def test_commit_segment_reads_as_named_steps():
    src = inspect.getsource(DirectoryStore.commit_segment)
    steps = ("_upload_row", "_check_chain", "_publish", "_log_arrival", "_record_segment")
    assert all(f"self.{s}(" in src for s in steps)
    assert src.count("\n") < 40
