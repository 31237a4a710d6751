-- The index as it was before migrations were versioned: every statement is idempotent, so an
-- index made then opens unchanged (and is marked as at version 1).
CREATE TABLE IF NOT EXISTS devices(
    device_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, key_id TEXT NOT NULL,
    enrolled_at_us INTEGER NOT NULL, revoked_at_us INTEGER, revoke_reason TEXT,
    time_offset_us INTEGER, time_synced_at_us INTEGER);
CREATE TABLE IF NOT EXISTS tokens(
    token_sha256 TEXT PRIMARY KEY, device_id TEXT, issued_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL, used_at_us INTEGER, used_by TEXT);
CREATE TABLE IF NOT EXISTS nonces(
    device_id TEXT NOT NULL, nonce TEXT NOT NULL, keep_until_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, nonce));
CREATE TABLE IF NOT EXISTS device_reports(
    device_id TEXT PRIMARY KEY, received_at_us INTEGER NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, manifest BLOB NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, offset INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE IF NOT EXISTS segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size INTEGER NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index INTEGER, received_at_us INTEGER NOT NULL, receipt TEXT NOT NULL,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE IF NOT EXISTS retired_segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size INTEGER NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index INTEGER, received_at_us INTEGER NOT NULL, receipt TEXT NOT NULL,
    retired_at_us INTEGER NOT NULL, log_index INTEGER NOT NULL, objects_gone_at_us INTEGER,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE IF NOT EXISTS unsigned_tails(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, file TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at_us INTEGER NOT NULL,
    receipt TEXT NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE IF NOT EXISTS custody_log(
    idx INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, device_id TEXT, segment_id TEXT, sha256 TEXT, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_leaves(
    idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL);
