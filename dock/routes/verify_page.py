"""``GET /verify.html``: the offline verifier page (dock/verify_page.py), public: an
investigator fetches it from the dock once and opens it in a browser."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from dock.verify_page import verify_page

router = APIRouter()


@router.get("/verify.html", include_in_schema=False)
def verify_html() -> Response:
    page = verify_page()
    if page is None:
        raise HTTPException(404, "the verifier page is not installed with this dock")
    return Response(page, media_type="text/html; charset=utf-8")
