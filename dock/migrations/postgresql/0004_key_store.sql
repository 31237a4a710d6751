-- Issue 17: a device key is held in a file (Ed25519) or in a TPM (P-256, enrolled with the
-- TPM's attestation, vouched for by a TPM maker's CA the dock trusts). Devices enrolled
-- before held theirs in a file.
ALTER TABLE devices ADD COLUMN key_store TEXT NOT NULL DEFAULT 'file';
ALTER TABLE devices ADD COLUMN attested_by TEXT;
