-- Connectors configured in this data directory. Secrets are never stored here: the config names files.
CREATE TABLE connectors (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  source_kind TEXT NOT NULL,
  destination_kind TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- Per-stream read position: the `since`/`skip` pair of the next GET /agent/v4/stream/{sid}/message.
-- It moves only past messages whose every copy is terminal in the ledger. `drained_through` is the
-- stream's lastMessageDate when it was last read to the end: equal on the next listing means nothing new.
CREATE TABLE checkpoints (
  connector_id TEXT NOT NULL REFERENCES connectors (id),
  stream_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  count INTEGER NOT NULL,
  drained_through INTEGER,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (connector_id, stream_id)
) WITHOUT ROWID;

CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  connector_id TEXT NOT NULL REFERENCES connectors (id),
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  pid INTEGER NOT NULL,
  error TEXT,
  streams INTEGER NOT NULL DEFAULT 0,
  messages INTEGER NOT NULL DEFAULT 0,
  delivered INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  unmapped INTEGER NOT NULL DEFAULT 0,
  quarantined INTEGER NOT NULL DEFAULT 0,
  warnings INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_connector ON runs (connector_id, id);

-- One row per (message, mailbox): the import log and the exactly-once ledger. `mailbox` is the
-- lower-cased address, or `unmapped:<userId>` for a participant who has no mailbox.
CREATE TABLE ledger (
  connector_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  mailbox TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  message_ts INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'unmapped')),
  user_id TEXT,
  staged_ref TEXT,
  receipt TEXT,
  reason TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  run_id INTEGER,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (connector_id, message_id, mailbox)
) WITHOUT ROWID;
CREATE INDEX ledger_by_status ON ledger (connector_id, status);

-- Messages that could not be converted or whose attachments could not be fetched: kept verbatim with
-- the reason, counted, and tried again on every cycle until they go through.
CREATE TABLE quarantine (
  connector_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  message_ts INTEGER NOT NULL,
  reason TEXT NOT NULL,
  raw TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1,
  first_run_id INTEGER NOT NULL,
  last_run_id INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  resolved_at TEXT,
  PRIMARY KEY (connector_id, message_id)
) WITHOUT ROWID;

-- What a run noticed: unmapped users, quarantined messages, unknown stream types, failed copies.
CREATE TABLE run_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  at TEXT NOT NULL,
  level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
  kind TEXT NOT NULL,
  item_id TEXT,
  reason TEXT NOT NULL
);
CREATE INDEX run_events_by_run ON run_events (run_id, id);
