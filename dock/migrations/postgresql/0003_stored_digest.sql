-- Format v3 (docs/evidence-format.md, "Stored digest"): a stored segment is named by its
-- stored digest, made from its header's and chunks' SHA-256s, no longer by a SHA-256 of the
-- whole file. The column keeps its values' role; only its name changes.
ALTER TABLE segments RENAME COLUMN stored_sha256 TO stored_digest;
ALTER TABLE retired_segments RENAME COLUMN stored_sha256 TO stored_digest;
