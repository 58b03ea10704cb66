-- The box's store (outbox/store.py). Every statement is idempotent: it runs at each open.
CREATE TABLE IF NOT EXISTS messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,            -- reading, device
    serial    TEXT NOT NULL,
    topic     TEXT NOT NULL,
    payload   BLOB NOT NULL,            -- the message JSON, zlib-compressed (older rows: plain text)
    created   REAL NOT NULL,
    sent_at   REAL,                     -- stores before `sent` existed; moved there on open
    read_at   REAL,                     -- readings: wall-clock time, corrected after a clock sync
    clock     TEXT,                     -- ntp, corrected, unsynced, or held (waiting for sync; never sent)
    mono      REAL,                     -- CLOCK_BOOTTIME at the reading: local only, never sent
    boot      TEXT,                     -- the boot mono counts in
    refused   TEXT                      -- outside the wire contract: why; kept here, never sent
);
CREATE TABLE IF NOT EXISTS sent (       -- delivered (PUBACK): seq of the message, and when
    seq INTEGER PRIMARY KEY,
    at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (     -- each printer's newest reading: a few small rows, cheap to rewrite
    serial  TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    serial        TEXT PRIMARY KEY,
    manufacturer  TEXT,
    model         TEXT,
    sys_object_id TEXT,
    profile       TEXT,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS printers (   -- local only: addresses never leave the box
    address    TEXT PRIMARY KEY,
    serial     TEXT,
    last_poll  REAL,
    last_ok    REAL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS meter_state (  -- what the validator knows that no reading carries (validate.py)
    serial TEXT PRIMARY KEY,
    state  TEXT NOT NULL
);
