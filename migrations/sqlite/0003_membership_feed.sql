-- Joins and leaves with their exact times, as the real-time feeds report them (USERJOINEDROOM / USERLEFTROOM).
-- The REST membership lists have no leave date, so these rows are the only record of when someone left.
CREATE TABLE membership_changes (
  connector_id TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('join', 'leave')),
  PRIMARY KEY (connector_id, stream_id, user_id, ts, kind)
) WITHOUT ROWID;

-- Position in a Datafeed v5 or Datahose feed: the `ackId` of the last batch whose items are durably filed
-- (symphony-api.md §8: persist it only after), and the datafeed's id.
CREATE TABLE feeds (
  connector_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('datafeed', 'datahose')),
  feed_id TEXT,
  ack_id TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- When the stream list was last read whole, and when a sweep last started: later sweeps list only streams with
-- activity since the one before (the admin list's startDate filter), with a whole listing again every week.
CREATE TABLE discovery (
  connector_id TEXT PRIMARY KEY,
  full_at INTEGER NOT NULL,
  last_at INTEGER NOT NULL
);
