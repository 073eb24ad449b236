-- Transcript mode (convert.format = daily-transcript). Each item of a conversation-day, as the renderer needs it,
-- with the mailboxes entitled to it; kept after the day's transcript is built, since an item arriving later makes a
-- revision that holds the whole day again.
CREATE TABLE transcript_entries (
  connector_id TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  item_id TEXT NOT NULL,
  day TEXT NOT NULL,
  ts INTEGER NOT NULL,
  mailboxes TEXT NOT NULL,
  entry TEXT NOT NULL,
  PRIMARY KEY (connector_id, stream_id, item_id)
) WITHOUT ROWID;
CREATE INDEX transcript_entries_day ON transcript_entries (connector_id, stream_id, day);

-- Conversation-days with items that no transcript holds yet.
CREATE TABLE transcript_days (
  connector_id TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  day TEXT NOT NULL,
  PRIMARY KEY (connector_id, stream_id, day)
) WITHOUT ROWID;

-- Every transcript built: its item id in the ledger, its revision, the items it holds and who it is for.
CREATE TABLE transcripts (
  connector_id TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  day TEXT NOT NULL,
  item_id TEXT NOT NULL,
  revision INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  entries TEXT NOT NULL,
  mailboxes TEXT NOT NULL,
  built_at TEXT NOT NULL,
  PRIMARY KEY (connector_id, stream_id, day, item_id)
) WITHOUT ROWID;
