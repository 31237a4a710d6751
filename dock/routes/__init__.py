"""The dock's HTTP routes, one ``APIRouter`` per concern; each gets the dock through
``Depends(get_dock)`` (dock/routes/deps.py) and ``dock.server.create_app`` includes them:

- ``enrollment``  ``GET /v1/dock``, ``POST /v1/enroll``
- ``time``        ``POST /v1/time``
- ``uploads``     ``/v1/segments/{segment_id}`` (create, state, chunks, complete)
- ``whole``       ``PUT /v1/segments/{segment_id}`` (a whole segment in one request)
- ``unsigned``    ``/v1/segments/{segment_id}/unsigned`` (set-aside unsigned bytes)
- ``status``      ``GET /v1/status``
- ``report``      ``POST /v1/device/report`` (firmware, battery, storage, queue)
- ``admin``       ``/v1/admin/...`` (tokens, devices, revocation, custody log)
- ``verify_page`` ``GET /verify.html`` (the offline verifier page, public)

The pages for people (``/``, ``/docs``, ``/redoc``) are dock/pages.py.
"""
