"""The dock: segments leave the camera only for a dock that verifies them and signs a receipt.

- ``dock.server``: the dock's HTTP server (``create_app``, ``open_dock``, ``serve``), built
  from the routers in ``dock.routes``.
- ``dock.store``: its evidence store's interface (``Store``); ``dock.store_sqlite`` the
  embedded one (SQLite index + objects) with its hash-chained custody log.
- ``dock.client`` / ``dock.shipper``: the device's side (signed client; shipper thread).
- ``dock.protocol``: the wire protocol shared by both; ``dock/README.md`` describes it.
"""
