-- The shared index's tables: the embedded index's (sqlite/0001_initial.sql) in PostgreSQL's
-- types: BIGINT for every integer (microseconds, sizes, indices), BYTEA for bytes.
CREATE TABLE devices(
    device_id TEXT PRIMARY KEY, public_key BYTEA NOT NULL, key_id TEXT NOT NULL,
    enrolled_at_us BIGINT NOT NULL, revoked_at_us BIGINT, revoke_reason TEXT,
    time_offset_us BIGINT, time_synced_at_us BIGINT);
CREATE TABLE tokens(
    token_sha256 TEXT PRIMARY KEY, device_id TEXT, issued_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL, used_at_us BIGINT, used_by TEXT);
CREATE TABLE nonces(
    device_id TEXT NOT NULL, nonce TEXT NOT NULL, keep_until_us BIGINT NOT NULL,
    PRIMARY KEY(device_id, nonce));
CREATE TABLE device_reports(
    device_id TEXT PRIMARY KEY, received_at_us BIGINT NOT NULL, report TEXT NOT NULL);
CREATE TABLE uploads(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, manifest BYTEA NOT NULL,
    size BIGINT NOT NULL, sha256 TEXT NOT NULL, "offset" BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size BIGINT NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index BIGINT, received_at_us BIGINT NOT NULL, receipt TEXT NOT NULL,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE retired_segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size BIGINT NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index BIGINT, received_at_us BIGINT NOT NULL, receipt TEXT NOT NULL,
    retired_at_us BIGINT NOT NULL, log_index BIGINT NOT NULL, objects_gone_at_us BIGINT,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE unsigned_tails(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, file TEXT NOT NULL,
    size BIGINT NOT NULL, sha256 TEXT NOT NULL, received_at_us BIGINT NOT NULL,
    receipt TEXT NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE custody_log(
    idx BIGINT PRIMARY KEY, at_us BIGINT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, device_id TEXT, segment_id TEXT, sha256 TEXT, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, signature TEXT NOT NULL);
CREATE INDEX custody_log_device_action ON custody_log(device_id, action);
CREATE TABLE log_leaves(
    idx BIGINT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, data BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL);
CREATE INDEX log_leaves_ref ON log_leaves(kind, ref);
