"""Ask an RFC 3161 time-stamping authority for a token: ``TsaClient(url).timestamp(digest)``.

The query (RFC 3161 2.4.1) carries the SHA-256 digest, a fresh random 64-bit nonce and
certReq (the token then carries the TSA's certificate, so that it verifies with the CA
alone). Over HTTP (RFC 3161 3.4): ``POST`` with ``Content-Type:
application/timestamp-query``, the answer ``application/timestamp-reply``.

The answer is accepted only if its status is granted (0, or 1 "with modifications") and its
token's nonce and message imprint are the query's; the token's signature and certificate are
not checked here (``tsa.verify.verify_token`` does, with the CA).
"""

from __future__ import annotations

import secrets

from tsa import der

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 1 << 20
# PKIFailureInfo (RFC 3161 2.4.2): bit -> name
FAILURES = {
    0: "badAlg",
    2: "badRequest",
    5: "badDataFormat",
    14: "timeNotAvailable",
    15: "unacceptedPolicy",
    16: "unacceptedExtension",
    17: "addInfoNotAvailable",
    25: "systemFailure",
}
STATUSES = {2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}


class TsaError(Exception):
    """No token: ``kind`` is ``unreachable`` (no HTTP answer), ``refused`` (the TSA said no,
    by HTTP status or PKIStatus) or ``malformed`` (an answer that is not a matching reply)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TsaClient:
    """An RFC 3161 TSA at ``url`` (``http://`` or ``https://``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def timestamp(self, digest_sha256: bytes) -> bytes:
        """The DER TimeStampToken (a CMS ContentInfo) for ``digest_sha256``."""
        nonce = secrets.randbits(64)
        reply = self._post(der.timestamp_query(digest_sha256, nonce))
        return token_from_reply(reply, digest_sha256, nonce, self.url)

    def _post(self, query: bytes) -> bytes:
        import httpx

        headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
        try:
            with httpx.stream(
                "POST", self.url, content=query, headers=headers, timeout=self.timeout
            ) as r:
                body = b""
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise TsaError("malformed", f"the TSA at {self.url} answered over 1 MiB")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TsaError(
                "unreachable", f"the TSA at {self.url} did not answer ({_say(exc)})"
            ) from None
        if r.status_code != 200:
            detail = " ".join(body[:200].decode("utf-8", "replace").split())
            raise TsaError(
                "refused",
                f"the TSA at {self.url} refused the query: HTTP {r.status_code}"
                + (f" ({detail})" if detail else ""),
            )
        kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != REPLY_TYPE:
            raise TsaError(
                "malformed", f"the TSA at {self.url} answered {kind or 'no type'}, not {REPLY_TYPE}"
            )
        return body


def token_from_reply(reply: bytes, digest_sha256: bytes, nonce: int, url: str = "the TSA") -> bytes:
    """The token in a DER TimeStampResp, checked as the module's docstring says (its
    certificates SET put in DER order when a TSA sent it unsorted: not a signed part)."""
    try:
        parts = der.reply_parts(reply)
    except der.DerError as exc:
        raise TsaError("malformed", f"{url}: not an RFC 3161 reply ({exc})") from None
    if parts.status not in (0, 1):
        raise TsaError("refused", f"{url} refused the query: {describe_refusal(parts)}")
    if parts.token is None:
        raise TsaError("malformed", f"{url}: a granted reply without a token")
    from rfc3161_client import decode_timestamp_response

    try:
        token = der.with_sorted_certificates(parts.token)  # DER, as strict parsers want it
        info = decode_timestamp_response(der.wrap_token(token)).tst_info
        got_nonce, imprint = info.nonce, info.message_imprint
        algorithm = imprint.hash_algorithm.dotted_string
    except (ValueError, der.DerError) as exc:
        raise TsaError("malformed", f"{url}: the token does not parse ({exc})") from None
    if got_nonce != nonce:
        raise TsaError("malformed", f"{url}: the token's nonce is not the query's")
    if algorithm != "2.16.840.1.101.3.4.2.1" or imprint.message != digest_sha256:
        raise TsaError("malformed", f"{url}: the token is for another digest than the query's")
    return token


def describe_refusal(parts: der.ReplyParts) -> str:
    words = [f"status {parts.status} ({STATUSES.get(parts.status, 'unknown')})"]
    if parts.fail_info:
        names = [FAILURES.get(b, f"bit {b}") for b in range(32) if parts.fail_info >> b & 1]
        words.append("failure " + ", ".join(names))
    if parts.status_text:
        words.append(repr(" ".join(parts.status_text.split())[:200]))
    return ", ".join(words)


def _say(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
