-- The transparency log's checkpoints and witness sizes, shared by the docks of a fleet
-- (dock/checkpoint_table.py): every checkpoint by size (the latest is the largest), the
-- size each witness last cosigned, and the issuer's epoch (raised by each dock that takes
-- the log's lock: a dock that lost the lock without knowing it cannot write any more).
-- PostgreSQL only: the embedded (SQLite) store keeps its checkpoints as files (STORE/log).
CREATE TABLE IF NOT EXISTS log_checkpoints(
    origin TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size > 0),
    note BYTEA NOT NULL,
    token BYTEA,
    PRIMARY KEY(origin, size));
CREATE TABLE IF NOT EXISTS log_witness_sizes(
    origin TEXT NOT NULL,
    witness TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    PRIMARY KEY(origin, witness));
CREATE TABLE IF NOT EXISTS log_issuer(
    origin TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    since_us BIGINT NOT NULL);
