"""The JSON bodies of the dock's API (pydantic models: they make the OpenAPI description)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dock import enroll as enroll_mod
from dock.protocol import DEVICE_ID_PATTERN, H_UPLOAD_CHECKSUM, HEX64_PATTERN

# what a request body model accepts: exactly its fields, of exactly their types (no boolean
# for an integer, no number in a string); duplicate keys are refused before (dock.strict)
STRICT = ConfigDict(extra="forbid", strict=True)

UPLOAD_CHECKSUM_PATTERN = r"^sha256 [A-Za-z0-9+/]{43}=$"
UploadChecksum = Annotated[
    str,
    Header(
        alias=H_UPLOAD_CHECKSUM,
        pattern=UPLOAD_CHECKSUM_PATTERN,
        description='the chunk\'s SHA-256, tus style: "sha256 <base64 digest>" '
        "(the same digest as the signed Content-Digest)",
    ),
]


class Problem(BaseModel):
    detail: str = Field(description="what is wrong, for a person")
    code: str | None = Field(
        default=None, description="what is wrong, for a program (dock.protocol.Code)"
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 408, 409, 413, 422, 429)
}

# a chunk's body (PATCH): raw bytes, tus-style
CHUNK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class DockInfo(BaseModel):
    api: str = "bwv-dock-v1"
    dock_public_key: str = Field(description="Ed25519 public key, hex: pin it on the device")
    dock_key_id: str


# a device key: Ed25519 (32 bytes, a key in a file) or P-256 (the 65-byte SEC1 uncompressed
# point 0x04 || X || Y, a key in a TPM: enrolled only with an attestation of it)
DEVICE_KEY_PATTERN = "^([0-9a-f]{64}|04[0-9a-f]{128})$"
MAX_TPM_HEX = 8192  # hex digits of one TPM structure or certificate (4 KiB)


def _tpm_hex(what: str) -> Any:
    return Field(pattern="^([0-9a-f]{2})+$", max_length=MAX_TPM_HEX, description=what + ", hex")


class TpmChallenge(BaseModel):
    """The TPM's endorsement key certificate and its attestation key: the dock answers with
    a credential only that TPM can activate (``TPM2_MakeCredential``)."""

    model_config = STRICT
    ek_certificate: str = _tpm_hex("the endorsement key's X.509 certificate (DER)")
    ak_public: str = _tpm_hex("the attestation key's TPM2B_PUBLIC")


class ChallengeRequest(BaseModel):
    model_config = STRICT
    tpm: TpmChallenge | None = None


class TpmCredential(BaseModel):
    credential_blob: str = Field(description="TPM2B_ID_OBJECT, hex")
    encrypted_secret: str = Field(description="TPM2B_ENCRYPTED_SECRET, hex")


class Attestation(BaseModel):
    """A TPM's word that it holds the key being enrolled: the activated credential (so the
    attestation key is on the TPM the endorsement certificate names) and the attestation
    key's certification of the device key (``TPM2_Certify``, over the challenge)."""

    model_config = STRICT
    ek_certificate: str = _tpm_hex("the endorsement key's X.509 certificate (DER)")
    ak_public: str = _tpm_hex("the attestation key's TPM2B_PUBLIC")
    key_public: str = _tpm_hex("the device key's TPM2B_PUBLIC")
    activated_secret: str = _tpm_hex("the secret TPM2_ActivateCredential recovered")
    certify_info: str = _tpm_hex("TPM2_Certify's TPMS_ATTEST, marshalled")
    certify_signature: str = _tpm_hex("TPM2_Certify's TPMT_SIGNATURE, marshalled")


class EnrollRequest(BaseModel):
    model_config = STRICT
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    public_key: str = Field(
        pattern=DEVICE_KEY_PATTERN,
        description="Ed25519 public key (32 bytes), or a TPM's P-256 key (65 bytes, 04||X||Y), hex",
    )
    token: str = Field(min_length=1, max_length=200, description="one-time enrollment token")
    challenge: str = Field(
        pattern="^[0-9a-f]{64}$", description="from POST /v1/enroll/challenge, used once"
    )
    attestation: Attestation | None = Field(
        default=None, description="required for a P-256 key (a key held in a TPM)"
    )


class ChallengeResponse(BaseModel):
    challenge: str
    expires_in_s: int
    tpm: TpmCredential | None = Field(
        default=None, description="when asked with a TPM's keys: the credential to activate"
    )


class EnrollResponse(BaseModel):
    device_id: str
    key_id: str
    enrolled_at_us: int
    dock_public_key: str
    dock_key_id: str
    key_store: str = Field(description='"file" (Ed25519) or "tpm" (P-256, attested)')
    attested_by: str | None = Field(description="the trusted TPM CA's subject, for a TPM key")


class TimeRequest(BaseModel):
    model_config = STRICT
    device_time_us: int = Field(ge=-(2**62), le=2**62, description="device wall clock, Unix µs")
    nonce: str = Field(
        pattern="^[0-9a-f]{32}$", description="the device's fresh nonce: the answer is bound to it"
    )


class TimeAnswer(BaseModel):
    type: str = Field(description='"bwv-dock-time-v1"')
    device_id: str
    nonce: str = Field(description="the device's nonce, as sent")
    device_time_us: int = Field(description="the device's wall clock, as sent")
    dock_time_us: int = Field(description="the dock's clock when it answered, Unix µs")
    dock_key_id: str


class TimeResponse(BaseModel):
    answer: TimeAnswer
    signature: str = Field(description="base64 Ed25519 by the dock key over canonical(answer)")
    tsa_token: str | None = Field(
        description="base64 RFC 3161 token over SHA-256(canonical(answer)); null: no TSA"
    )


class CreateUpload(BaseModel):
    model_config = STRICT
    manifest: str = Field(min_length=1, max_length=400_000, description="base64 manifest")
    size: int = Field(ge=0, le=2**62, description="stored blob size in bytes")
    sha256: str = Field(pattern=HEX64_PATTERN, description="stored blob SHA-256, hex")


class ReceiptModel(BaseModel):
    device_id: str
    segment_id: str
    seq: int
    manifest_sha256: str
    stored_digest: str
    stored_size: int
    received_at_us: int
    log_index: int
    log_entry_hash: str
    leaf_index: int = Field(description="the record's leaf in the dock's transparency log")
    gap_before: bool
    dock_key_id: str
    type: str


class LogProofModel(BaseModel):
    leaf_index: int
    tree_size: int
    inclusion: list[str] = Field(description="RFC 9162 inclusion proof, base64 hashes")
    checkpoint: str = Field(description="the checkpoint (C2SP signed note, with cosignatures)")
    tsa_token: str | None = Field(description="RFC 3161 token over SHA-256(checkpoint body)")


class SignedReceiptModel(BaseModel):
    receipt: ReceiptModel
    signature: str = Field(description="base64 Ed25519 by the dock key over canonical receipt")
    proof: LogProofModel | None = Field(
        default=None, description="the record in a checkpoint of the dock's log (not signed)"
    )


class UploadStateModel(BaseModel):
    segment_id: str
    size: int
    offset: int
    complete: bool
    receipt: SignedReceiptModel | None = None


class UnsignedReceiptModel(BaseModel):
    device_id: str
    segment_id: str
    file: str
    size: int
    sha256: str
    received_at_us: int
    log_index: int
    log_entry_hash: str
    dock_key_id: str
    type: str


class SignedUnsignedReceiptModel(BaseModel):
    receipt: UnsignedReceiptModel
    signature: str = Field(description="base64 Ed25519 by the dock key over canonical receipt")


class UnsignedStateModel(BaseModel):
    segment_id: str
    size: int
    offset: int
    complete: bool
    receipt: SignedUnsignedReceiptModel | None = None


class Gap(BaseModel):
    from_seq: int
    to_seq: int


class ChainModel(BaseModel):
    held: int
    first_seq: int | None
    last_seq: int | None
    gaps: list[Gap]
    breaks: list[int]


class DeviceStatus(BaseModel):
    device_id: str
    key_id: str
    key_store: str = "file"  # "file" | "tpm"
    attested_by: str | None = None
    enrolled_at_us: int
    revoked: bool
    revoked_at_us: int | None
    revoke_reason: str | None
    time_offset_us: int | None
    time_synced_at_us: int | None
    chain: ChainModel
    log: dict[str, Any] | None = Field(
        default=None,
        description="the dock's transparency log: size, witnesses, TSA, and what it lacks "
        "(unwitnessed, untimestamped)",
    )


class DeviceReport(BaseModel):
    """What a camera reports of itself at the start of each shipping round (telemetry for
    the people who run the dock: kept, the latest per camera; not evidence)."""

    model_config = STRICT
    firmware_version: str | None = Field(
        default=None, pattern=r"^[\x20-\x7e]{1,64}$", description="null: not known"
    )
    battery_percent: int | None = Field(
        default=None, ge=0, le=100, description="null: the camera has no battery gauge"
    )
    storage_free_bytes: int = Field(ge=0, le=2**62, description="free where it keeps footage")
    storage_total_bytes: int | None = Field(default=None, ge=0, le=2**62)
    queued_segments: int = Field(ge=0, le=2**31, description="records waiting to ship")
    queued_bytes: int = Field(ge=0, le=2**62, description="their stored bytes")
    oldest_queued_wall_us: int | None = Field(
        default=None,
        ge=-(2**62),
        le=2**62,
        description="wall-clock start of the oldest record waiting, Unix µs (null: none)",
    )

    @model_validator(mode="after")
    def _free_within_total(self) -> DeviceReport:
        total = self.storage_total_bytes
        if total is not None and self.storage_free_bytes > total:
            raise ValueError("storage_free_bytes is more than storage_total_bytes")
        return self


class DeviceReportAck(BaseModel):
    device_id: str
    received_at_us: int = Field(description="the dock's clock when it kept the report")


class TokenRequest(BaseModel):
    model_config = STRICT
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    ttl_s: int = Field(default=enroll_mod.DEFAULT_TTL_S, ge=1, le=enroll_mod.MAX_TTL_S)


class TokenResponse(BaseModel):
    token: str
    device_id: str
    expires_at_us: int


class RevokeRequest(BaseModel):
    model_config = STRICT
    reason: str = Field(min_length=1, max_length=500)


class LogEntryModel(BaseModel):
    index: int
    at_us: int
    actor: str
    action: str
    device_id: str | None
    segment_id: str | None
    sha256: str | None
    detail: dict[str, Any]
    prev_hash: str
    entry_hash: str
    signature: str
