"""The device's side of the wire: a signed httpx client for the dock.

Every request is signed with the device key (``DeviceAuth``); every answer must carry a valid
signature of the pinned dock key over its status, body and this request's nonce, or it is
treated as no answer at all (``DockUnavailable``): a device never acts on an unsigned word.

Errors: ``DockUnavailable`` (network, 5xx, an answer that is not the dock's: retry later),
``DockFull`` (a signed 507: the dock's disk is full; retry later, nothing is lost),
``DockRefused`` (a signed 4xx: ``status`` and the dock's ``detail``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import httpx

from dock.attestor import Attestor
from dock.protocol import (
    H_CONTENT_DIGEST,
    H_DOCK_SIGNATURE,
    H_NONCE,
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    H_UPLOAD_RECORD,
    ProtocolError,
    Signer,
    b64e,
    chunk_checksum_header,
    key_id,
    parse_chunk_checksum,
    sign_request,
    stored_content_digest,
    verify_detached,
    verify_response,
)
from dock.receipts import SignedReceipt, UnsignedState, UploadState
from dock.time_sync import TimeSync, read_time_answer
from dock.tls import FirstSeen, pinned_client_context, pinned_to


class DockError(Exception):
    pass


class DockUnavailable(DockError):
    """No usable answer: network fault, server error, or an answer the dock did not sign."""


class DockFull(DockUnavailable):
    """The dock said its storage is full (a signed 507): keep everything, try again later."""

    def __init__(self, detail: str) -> None:
        super().__init__("dock full (its storage is full); retry later")
        self.detail = detail  # the dock's own words


class DockRefused(DockError):
    """The dock said no (a signed 4xx): ``code`` is one of dock.protocol.Code (or None)."""

    def __init__(self, status: int, detail: str, code: str | None = None) -> None:
        super().__init__(f"dock refused ({status}): {detail}")
        self.status = status
        self.detail = detail
        self.code = code


@dataclass(frozen=True)
class DeviceCredentials:
    """What provisioning leaves on the device: its id, its key (as a signer: the device's
    ``crypto.identity.DeviceIdentity``, or a ``KeySigner``) and the dock key it pinned."""

    device_id: str
    signer: Signer
    dock_public_key: bytes


class DeviceAuth(httpx.Auth):
    """Signs each request: method, raw path, the body's Content-Digest (sent with it), device
    id, timestamp, nonce; the dock checks the signature before it reads the body."""

    requires_request_body = False  # a chunk's hash is in its Upload-Checksum; else read

    def __init__(
        self,
        device_id: str,
        signer: Signer,
        timestamp_us: Callable[[], int],
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.device_id = device_id
        self.signer = signer
        self.timestamp_us = timestamp_us
        self.nonce = nonce

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = b""
        digest = None
        given = request.headers.get(H_CONTENT_DIGEST)  # a whole segment's, by its record
        if given is None and H_UPLOAD_CHECKSUM in request.headers:  # a chunk: hash known
            digest = parse_chunk_checksum(request.headers[H_UPLOAD_CHECKSUM]).hex()
        elif given is None:
            body = request.read()
        signed = sign_request(
            self.signer,
            request.method,
            request.url.raw_path.decode("ascii"),
            body,
            self.device_id,
            self.timestamp_us(),
            self.nonce(),
            digest,
            given,
        )
        request.headers.update(signed.as_dict())
        yield request


class DockClient:
    """A device's session with one dock. ``wall_clock`` is the device's wall clock (Unix
    µs); requests are stamped with it plus the offset learned from ``sync_time``."""

    def __init__(
        self,
        base_url: str,
        credentials: DeviceCredentials,
        *,
        wall_clock: Callable[[], int],
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.credentials = credentials
        self.wall_clock = wall_clock
        self.offset_us = 0
        self._plain = _plain_http(base_url, transport)
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            verify=pinned_to(credentials.dock_public_key),
            auth=DeviceAuth(credentials.device_id, credentials.signer, self._dock_time_us),
        )

    def _dock_time_us(self) -> int:
        return self.wall_clock() + self.offset_us

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DockClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing

    def _call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        if self._plain is not None:
            raise DockUnavailable(self._plain)
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise DockUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        return check_answer(resp, self.credentials.dock_public_key)

    # -- the protocol

    def sync_time(self) -> TimeSync:
        """Ask the dock its time with a fresh nonce; the answer must be signed by the pinned
        dock key, for this device and this nonce. Adopts the offset for request stamps only:
        the device's wall clock is the caller's to correct (dock/clocksync.py)."""
        nonce = secrets.token_hex(16)
        device_now = self.wall_clock()
        _, body = self._call(
            "POST", "/v1/time", json={"device_time_us": device_now, "nonce": nonce}
        )
        round_trip = self.wall_clock() - device_now
        sync = self._time_sync(body, nonce, device_now, round_trip)
        self.offset_us = sync.offset_us
        return sync

    def _time_sync(self, body: Any, nonce: str, device_now: int, round_trip: int) -> TimeSync:
        creds = self.credentials
        try:
            sync = read_time_answer(body, round_trip)
        except ValueError as exc:
            raise DockUnavailable(f"time: {exc}") from None
        if (sync.nonce, sync.device_time_us, sync.device_id) != (
            nonce,
            device_now,
            creds.device_id,
        ):
            raise DockUnavailable("time: the answer is not for this request")
        if sync.dock_key_id != key_id(creds.dock_public_key) or not verify_detached(
            creds.dock_public_key, sync.answer_bytes, sync.signature
        ):
            raise DockUnavailable("time: the answer is not signed by the pinned dock key")
        return sync

    def create_upload(
        self, segment_id: str, manifest: bytes, size: int, sha256: str
    ) -> UploadState:
        _, body = self._call(
            "POST",
            f"/v1/segments/{segment_id}",
            json={"manifest": b64e(manifest), "size": size, "sha256": sha256},
        )
        return _state(UploadState, body)

    def put_segment(
        self,
        segment_id: str,
        manifest: bytes,
        stored_digest: str,
        size: int,
        body: BinaryIO,
        on_sent: Callable[[], None] | None = None,
    ) -> tuple[UploadState, bool]:
        """A whole segment in one request (dock/routes/whole.py): ``size`` bytes of ``body``
        (read as they are sent), signed by the stored digest its record names; ``on_sent`` is
        called once the last byte has gone. The answer, and whether the dock took the body
        (False: it held the upload already and says where it stands, receipt included if
        complete)."""
        status, answer = self._call(
            "PUT",
            f"/v1/segments/{segment_id}",
            content=_read(body, on_sent),
            headers={
                "Content-Length": str(size),
                H_UPLOAD_RECORD: b64e(manifest),
                H_CONTENT_DIGEST: stored_content_digest(stored_digest),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        return _state(UploadState, answer), status == 201

    def upload_state(self, segment_id: str) -> UploadState | None:
        try:
            _, body = self._call("GET", f"/v1/segments/{segment_id}")
        except DockRefused as exc:
            if exc.status == 404:
                return None
            raise
        return _state(UploadState, body)

    def append(
        self, segment_id: str, offset: int, chunk: bytes, sha256: bytes | None = None
    ) -> UploadState:
        """Append ``chunk`` at ``offset`` (``sha256``: its hash, if taken already). The
        answer to the last chunk may be the complete upload with its receipt."""
        body = self._patch_chunk(f"/v1/segments/{segment_id}", offset, chunk, sha256)
        return _state(UploadState, body)

    def _patch_chunk(
        self, path: str, offset: int, chunk: bytes, sha256: bytes | None = None
    ) -> Any:
        """PATCH one chunk at ``offset`` with its checksum (tus-style); the answer's body."""
        _, body = self._call(
            "PATCH",
            path,
            content=self._body(chunk),  # streamed: the dock takes the first while the rest go
            headers={
                "Content-Length": str(len(chunk)),
                H_UPLOAD_OFFSET: str(offset),
                H_UPLOAD_CHECKSUM: (
                    chunk_checksum_header(chunk) if sha256 is None else f"sha256 {b64e(sha256)}"
                ),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        return body

    def _body(self, chunk: bytes) -> Iterable[memoryview]:
        return _Pieces(chunk)

    def complete(self, segment_id: str) -> SignedReceipt:
        _, body = self._call("POST", f"/v1/segments/{segment_id}/complete")
        try:
            return SignedReceipt.from_json(body)
        except ProtocolError as exc:
            raise DockUnavailable(f"complete: malformed receipt ({exc})") from None

    def unsigned_state(self, segment_id: str) -> UnsignedState:
        """Where the upload of a held segment's set-aside unsigned bytes stands."""
        _, body = self._call("GET", f"/v1/segments/{segment_id}/unsigned")
        return _state(UnsignedState, body)

    def append_unsigned(self, segment_id: str, offset: int, chunk: bytes) -> UnsignedState:
        """Append a chunk of them; the last one completes the upload (and brings the
        dock's receipt, of its own type: these bytes are never signed evidence)."""
        body = self._patch_chunk(f"/v1/segments/{segment_id}/unsigned", offset, chunk)
        return _state(UnsignedState, body)

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")[1]

    def report(self, report: dict[str, Any]) -> dict[str, Any]:
        """Send the device's report (firmware, battery, storage, queue: dock/device_report.py);
        the dock's acknowledgement ``{device_id, received_at_us}``. A dock that does not
        know the endpoint answers 404 (``DockRefused``)."""
        body = self._call("POST", "/v1/device/report", json=report)[1]
        return body if isinstance(body, dict) else {}


S = TypeVar("S", UploadState, UnsignedState)
SEND_PIECE = 1 << 20


@dataclass(frozen=True)
class _Pieces:
    """A chunk held in memory, sent in pieces without a copy (the TLS layer encrypts one
    while the dock reads the one before); iterable again if the request is sent again."""

    chunk: bytes

    def __iter__(self) -> Iterator[memoryview]:
        view = memoryview(self.chunk)
        for i in range(0, len(view), SEND_PIECE):
            yield view[i : i + SEND_PIECE]


def _read(body: BinaryIO, on_sent: Callable[[], None] | None) -> Iterator[bytes]:
    """``body`` a piece at a time, then ``on_sent`` (httpx asks for the next piece only once
    it has written the one before)."""
    while piece := body.read(SEND_PIECE):
        yield piece
    if on_sent is not None:
        on_sent()


def _state(kind: type[S], body: Any) -> S:
    """The dock's answer as an upload state of ``kind``; a malformed one: DockUnavailable."""
    try:
        return kind.from_json(body)
    except ProtocolError as exc:
        raise DockUnavailable(str(exc)) from None


def _plain_http(base_url: str, transport: httpx.BaseTransport | None) -> str | None:
    """Why ``base_url`` is refused (a camera talks to its dock over HTTPS only), or None.
    A test's own transport (no network) is taken as it is."""
    if transport is not None or base_url.lower().startswith("https://"):
        return None
    return f"{base_url}: not https:// (a camera talks to its dock over TLS only)"


def check_answer(resp: httpx.Response, dock_public_key: bytes) -> tuple[int, Any]:
    """The answer's status and JSON body, once its dock signature checks out."""
    nonce = resp.request.headers.get(H_NONCE, "")
    if not verify_response(
        dock_public_key, resp.status_code, nonce, resp.content, resp.headers.get(H_DOCK_SIGNATURE)
    ):
        if resp.status_code >= 500:  # a server fault (a proxy, a crash), not a key problem
            raise DockUnavailable(f"dock server error {resp.status_code} (an unsigned answer)")
        raise DockUnavailable(f"answer ({resp.status_code}) not signed by the pinned dock key")
    try:
        body = resp.json() if resp.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DockUnavailable(f"answer ({resp.status_code}) is not JSON") from None
    if resp.status_code == 507:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise DockFull(str(detail or "the dock's storage is full"))
    if resp.status_code >= 500:
        raise DockUnavailable(f"dock error {resp.status_code}")
    if resp.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        code = body.get("code") if isinstance(body, dict) else None
        raise DockRefused(
            resp.status_code,
            str(detail or resp.reason_phrase),
            code if isinstance(code, str) else None,
        )
    return resp.status_code, body


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    key_id: str
    dock_public_key: bytes  # pin this (check its id with the technician's dock)
    dock_key_id: str
    key_store: str = "file"  # "file" | "tpm", as the dock recorded it
    attested_by: str | None = None  # for "tpm": the TPM CA the dock trusted


def enroll(
    base_url: str,
    device_id: str,
    signer: Signer,
    public_key: bytes,
    token: str,
    *,
    wall_clock: Callable[[], int],
    expected_dock_key: bytes | None = None,
    dock_fingerprint: str | None = None,
    trust_first_dock: bool = False,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 30.0,
    attestor: Attestor | None = None,
) -> Enrolled:
    """Provisioning: bind ``device_id`` to ``key`` at the dock with a technician's token
    (a key held in a TPM: with its ``attestor``'s attestation of it, dock/enroll_tpm.py).

    With ``expected_dock_key`` (given out of band), or its ``dock_fingerprint`` (as ``bwv
    dock serve`` prints it), the TLS handshake completes only with the dock that holds it,
    and its answer must be signed by it. Without, only if ``trust_first_dock``: the key the
    dock shows is taken on first use and must be pinned by the caller. The token is sent
    only inside that TLS channel, with a fresh challenge from the dock, in a request signed
    by the key being enrolled (a replayed request is refused)."""
    if expected_dock_key is None and dock_fingerprint is None and not trust_first_dock:
        raise ValueError("enroll needs expected_dock_key, or trust_first_dock=True")
    plain = _plain_http(base_url, transport)
    if plain is not None:
        raise DockUnavailable(f"enroll: {plain}")
    first = FirstSeen(dock_fingerprint)
    verify = (
        pinned_to(expected_dock_key)
        if expected_dock_key is not None
        else pinned_client_context(first)
    )
    from dock.client_enroll import ask_challenge

    auth = DeviceAuth(device_id, signer, wall_clock)
    with httpx.Client(
        base_url=base_url, transport=transport, timeout=timeout, auth=auth, verify=verify
    ) as http:
        challenge, credential = ask_challenge(http, attestor)
        payload: dict[str, Any] = {
            "device_id": device_id,
            "public_key": bytes(public_key).hex(),
            "token": token,
            "challenge": challenge,
        }
        if attestor is not None:
            payload["attestation"] = attestor.finish(credential, challenge)
        try:
            resp = http.post("/v1/enroll", json=payload)
        except httpx.HTTPError as exc:
            raise DockUnavailable(f"enroll: {type(exc).__name__}: {exc}") from exc
        dock_key = expected_dock_key or first.key
        if dock_key is None:  # a test's transport, no TLS: the key in the answer
            dock_key = _answer_key(resp) or _published_dock_key(http)
            if dock_fingerprint is not None and not FirstSeen(dock_fingerprint)(dock_key):
                raise DockUnavailable("enroll: the dock's key is not the fingerprint given")
        _, body = check_answer(resp, dock_key)
    if body["dock_public_key"] != dock_key.hex():
        raise DockUnavailable("enroll: the dock names another key than the one it holds")
    return Enrolled(
        body["device_id"],
        body["key_id"],
        bytes.fromhex(body["dock_public_key"]),
        body["dock_key_id"],
        body.get("key_store", "file"),
        body.get("attested_by"),
    )


def _answer_key(resp: httpx.Response) -> bytes | None:
    try:
        return bytes.fromhex(resp.json()["dock_public_key"])
    except (ValueError, KeyError, TypeError):
        return None


def _published_dock_key(http: httpx.Client) -> bytes:
    try:
        return bytes.fromhex(http.get("/v1/dock", auth=None).json()["dock_public_key"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DockUnavailable(f"dock key: {exc}") from None
