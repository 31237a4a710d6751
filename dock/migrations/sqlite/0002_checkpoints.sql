-- The transparency log's checkpoints and witness sizes, shared by the docks of a fleet
-- (dock/checkpoint_table.py): every checkpoint by size (the latest is the largest), the
-- size each witness last cosigned, and the issuer's epoch (raised by each dock that takes
-- the log's lock: a dock that lost the lock without knowing it cannot write any more).
CREATE TABLE IF NOT EXISTS log_checkpoints(
    origin TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size > 0),
    note BLOB NOT NULL,
    token BLOB,
    PRIMARY KEY(origin, size));
CREATE TABLE IF NOT EXISTS log_witness_sizes(
    origin TEXT NOT NULL,
    witness TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY(origin, witness));
CREATE TABLE IF NOT EXISTS log_issuer(
    origin TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    holder TEXT NOT NULL,
    since_us INTEGER NOT NULL);
