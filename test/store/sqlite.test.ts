import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { isAppError, type ErrorCode } from '../../src/core/errors.ts';
import { openSqliteStore } from '../../src/store/sqlite/index.ts';
import { loadMigrations, migrate } from '../../src/store/sqlite/migrate.ts';
import type { LedgerRow, PageCommit, QuarantineRow, StateStore } from '../../src/store/state-store.ts';

const CONNECTOR = { id: 'acme', name: 'Acme pod', sourceKind: 'symphony', destinationKind: 'maildir' };

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sa-store-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const freshPath = () => join(dir, `db-${++n}`, 'state.db');

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isAppError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** A pid that existed a moment ago and has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.ok(child.pid);
  return child.pid;
}

function row(messageId: string, mailbox: string, overrides: Partial<LedgerRow> = {}): LedgerRow {
  return {
    messageId,
    mailbox,
    streamId: 'stream-1',
    messageTs: 1_000,
    status: 'pending',
    userId: '7215545078461',
    stagedRef: 'a'.repeat(64),
    receipt: null,
    reason: null,
    attempts: 0,
    ...overrides,
  };
}

function page(runId: number, overrides: Partial<PageCommit> = {}): PageCommit {
  return {
    connectorId: CONNECTOR.id,
    runId,
    ledger: [],
    quarantined: [],
    released: [],
    events: [],
    counts: {},
    ...overrides,
  };
}

function quarantineRow(messageId: string, reason = 'bad MessageML'): QuarantineRow {
  return {
    messageId,
    streamId: 'stream-1',
    messageTs: 2_000,
    reason,
    raw: `{"messageId":"${messageId}"}`,
    attempts: 1,
  };
}

describe('migrations', () => {
  it('apply on a fresh database and record the schema version', async () => {
    const path = freshPath();
    const store = openSqliteStore(path);
    await store.close();
    const db = new BetterSqlite3(path, { readonly: true });
    try {
      const versions = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
      const expected = loadMigrations().map((m) => ({ version: m.version, name: m.name }));
      assert.ok(expected.length >= 1);
      assert.deepEqual(versions, expected);
      const tables = db
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
        .all()
        .map((r) => (r as { name: string }).name);
      for (const t of ['checkpoints', 'connectors', 'ledger', 'quarantine', 'run_events', 'runs']) {
        assert.ok(tables.includes(t), `table ${t} missing`);
      }
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  it('are idempotent on reopen and keep the data', async () => {
    const path = freshPath();
    const first = openSqliteStore(path);
    await first.ensureConnector(CONNECTOR);
    const runId = await first.startRun(CONNECTOR.id);
    await first.finishRun(runId, 'succeeded');
    await first.close();

    const second = openSqliteStore(path);
    try {
      assert.equal((await second.run(runId))?.status, 'succeeded');
    } finally {
      await second.close();
    }
    const db = new BetterSqlite3(path);
    try {
      const count = db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number };
      assert.equal(count.n, loadMigrations().length);
      assert.deepEqual(migrate(db), []);
    } finally {
      db.close();
    }
  });

  it('roll back a failing migration as a whole and do not record it', () => {
    const db = new BetterSqlite3(':memory:');
    try {
      assert.deepEqual(migrate(db, [{ version: 1, name: 'one', sql: 'CREATE TABLE one (a INTEGER);' }]), [1]);
      const bad = { version: 2, name: 'two', sql: 'CREATE TABLE two (a INTEGER); THIS IS NOT SQL;' };
      assert.throws(() => migrate(db, [{ version: 1, name: 'one', sql: 'SELECT 1' }, bad]));
      const tables = db.prepare(`SELECT name FROM sqlite_master WHERE name = 'two'`).all();
      assert.deepEqual(tables, []);
      assert.deepEqual(db.prepare('SELECT version FROM schema_migrations').all(), [{ version: 1 }]);
    } finally {
      db.close();
    }
  });

  it('loads only numbered .sql files, in order', () => {
    const mdir = join(dir, 'migrations-only') + '/';
    mkdirSync(mdir, { recursive: true });
    writeFileSync(mdir + '0002_second.sql', 'SELECT 2;');
    writeFileSync(mdir + '0001_first.sql', 'SELECT 1;');
    writeFileSync(mdir + 'README.md', 'not a migration');
    writeFileSync(mdir + '0003_Bad-Name.sql', 'SELECT 3;');
    assert.deepEqual(
      loadMigrations(mdir).map((m) => [m.version, m.name]),
      [
        [1, 'first'],
        [2, 'second'],
      ],
    );
  });
});

describe('SqliteStateStore', () => {
  let path: string;
  let store: StateStore;
  beforeEach(async () => {
    path = freshPath();
    store = openSqliteStore(path);
    await store.ensureConnector(CONNECTOR);
  });
  afterEach(() => store.close());

  /** A second connection to the same file, for what the interface does not expose. */
  function raw<T>(fn: (db: BetterSqlite3.Database) => T): T {
    const db = new BetterSqlite3(path);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  it('ensureConnector inserts once and updates in place', async () => {
    await store.ensureConnector({ ...CONNECTOR, name: 'Renamed' });
    const rows = raw((db) => db.prepare('SELECT id, name, source_kind, destination_kind FROM connectors').all());
    assert.deepEqual(rows, [{ id: 'acme', name: 'Renamed', source_kind: 'symphony', destination_kind: 'maildir' }]);
  });

  it('keeps joins and leaves per stream, once each, and the feed position with the commit', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    assert.equal(await store.feedPosition(CONNECTOR.id), undefined);
    const join = { streamId: 's1', userId: '7', ts: 100, kind: 'join' as const };
    const leave = { streamId: 's1', userId: '7', ts: 200, kind: 'leave' as const };
    await store.commit(page(runId, { membership: [leave, join], feed: { kind: 'datahose', ackId: 'a1' } }));
    await store.commit(
      page(runId, {
        membership: [join, { ...join, streamId: 's2' }],
        feed: { kind: 'datafeed', feedId: 'f1', ackId: 'a2' },
      }),
    );
    assert.deepEqual(await store.membershipChanges(CONNECTOR.id, 's1'), [join, leave]);
    assert.deepEqual(await store.feedPosition(CONNECTOR.id), { kind: 'datafeed', feedId: 'f1', ackId: 'a2' });
  });

  it('remembers the last whole listing and the latest listed activity', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    assert.equal(await store.discovery(CONNECTOR.id), undefined);
    await store.commit(page(runId, { discovery: { fullAt: 1000, lastAt: 50 } }));
    await store.commit(page(runId, { discovery: { lastAt: 70 } }));
    assert.deepEqual(await store.discovery(CONNECTOR.id), { fullAt: 1000, lastAt: 70 });
  });

  it('startRun/finishRun accumulate counts across commits', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    const started = await store.run(runId);
    assert.equal(started?.status, 'running');
    assert.equal(started?.finishedAt, null);
    await store.commit(page(runId, { counts: { streams: 2, messages: 10, delivered: 7 } }));
    await store.commit(page(runId, { counts: { messages: 5, delivered: 3, failed: 1, warnings: 2 } }));
    await store.commit(page(runId, { counts: { duplicates: 4, unmapped: 1, quarantined: 1 } }));
    const done = await store.finishRun(runId, 'failed', 'boom');
    assert.equal(done.status, 'failed');
    assert.equal(done.error, 'boom');
    assert.ok(done.finishedAt && !Number.isNaN(Date.parse(done.finishedAt)));
    assert.deepEqual(
      {
        streams: done.streams,
        messages: done.messages,
        delivered: done.delivered,
        duplicates: done.duplicates,
        failed: done.failed,
        unmapped: done.unmapped,
        quarantined: done.quarantined,
        warnings: done.warnings,
      },
      { streams: 2, messages: 15, delivered: 10, duplicates: 4, failed: 1, unmapped: 1, quarantined: 1, warnings: 2 },
    );
    const other = await store.startRun(CONNECTOR.id);
    assert.equal((await store.run(other))?.messages, 0, 'counts are per run');
    assert.deepEqual(
      (await store.runs(CONNECTOR.id)).map((r) => r.id),
      [other, runId],
    );
    assert.deepEqual(
      (await store.runs(CONNECTOR.id, 1)).map((r) => r.id),
      [other],
    );
    assert.equal(await store.run(9999), undefined);
    await rejectsWith(store.finishRun(9999, 'succeeded'), 'ERR_STORE_IO', /run 9999 does not exist/);
  });

  it('refuses a second run while the first run belongs to a live process', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    await rejectsWith(store.startRun(CONNECTOR.id), 'ERR_STORE_LOCKED');
    // Another live process (our parent) holding the connector locks it too.
    raw((db) => db.prepare('UPDATE runs SET pid = ? WHERE id = ?').run(process.ppid, runId));
    await rejectsWith(store.startRun(CONNECTOR.id), 'ERR_STORE_LOCKED');
    assert.equal((await store.run(runId))?.status, 'running');
    assert.equal((await store.runs(CONNECTOR.id)).length, 1);
  });

  it('marks a run whose process is gone as interrupted and starts a new one', async () => {
    const stale = await store.startRun(CONNECTOR.id);
    raw((db) => db.prepare('UPDATE runs SET pid = ? WHERE id = ?').run(deadPid(), stale));
    const fresh = await store.startRun(CONNECTOR.id);
    assert.notEqual(fresh, stale);
    const old = await store.run(stale);
    assert.equal(old?.status, 'interrupted');
    assert.ok(old?.finishedAt);
    assert.ok(old?.error);
    assert.equal((await store.run(fresh))?.status, 'running');
  });

  it('a finished run does not lock the connector', async () => {
    const first = await store.startRun(CONNECTOR.id);
    await store.finishRun(first, 'succeeded');
    const second = await store.startRun(CONNECTOR.id);
    assert.equal((await store.run(first))?.status, 'succeeded');
    assert.equal((await store.run(second))?.status, 'running');
  });

  it('startRun of an unknown connector fails with a store error', async () => {
    await rejectsWith(store.startRun('nobody'), 'ERR_STORE_IO');
  });

  it('plan writes pending rows once; pendingCopies lists them in message order', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    await store.plan(CONNECTOR.id, runId, [
      row('m2', 'bob@bank.example', { messageTs: 2_000 }),
      row('m1', 'bob@bank.example', { messageTs: 1_000 }),
      row('m1', 'alice@bank.example', { messageTs: 1_000 }),
    ]);
    // Planning again never overwrites what is recorded.
    await store.plan(CONNECTOR.id, runId, [row('m1', 'alice@bank.example', { status: 'delivered', attempts: 9 })]);
    await store.plan(CONNECTOR.id, runId, []);
    const pending = await store.pendingCopies(CONNECTOR.id);
    assert.deepEqual(
      pending.map((r) => [r.messageId, r.mailbox, r.status, r.attempts]),
      [
        ['m1', 'alice@bank.example', 'pending', 0],
        ['m1', 'bob@bank.example', 'pending', 0],
        ['m2', 'bob@bank.example', 'pending', 0],
      ],
    );
    assert.deepEqual(pending[0], row('m1', 'alice@bank.example'));
    assert.deepEqual(await store.pendingCopies('other'), []);
    assert.equal((await store.runLedger(runId)).length, 3);
  });

  it('commit settles ledger, quarantine, releases, events and checkpoint together', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    await store.plan(CONNECTOR.id, runId, [row('m1', 'alice@bank.example'), row('m1', 'bob@bank.example')]);
    await store.commit(
      page(runId, {
        checkpoint: { streamId: 'stream-1', cursor: { ts: 1_000, count: 1 } },
        ledger: [
          row('m1', 'alice@bank.example', { status: 'delivered', receipt: 'file-a', attempts: 1 }),
          row('m1', 'bob@bank.example', { status: 'failed', reason: 'ERR_SINK_IO: disk full', attempts: 1 }),
          row('m1', 'unmapped:68719476737', { status: 'unmapped', userId: '68719476737', stagedRef: null }),
        ],
        quarantined: [quarantineRow('q1')],
        events: [
          { level: 'warning', kind: 'unmapped', itemId: 'm1', reason: 'user 68719476737 has no email address' },
          { level: 'info', kind: 'note', reason: 'no item id' },
        ],
        counts: { delivered: 1, failed: 1, unmapped: 1, quarantined: 1 },
      }),
    );
    assert.deepEqual(await store.pendingCopies(CONNECTOR.id), []);
    const ledger = await store.ledger(CONNECTOR.id, ['m1', 'nope']);
    assert.deepEqual([...ledger.keys()], ['m1']);
    const m1 = ledger.get('m1')!;
    assert.deepEqual([...m1.keys()].sort(), ['alice@bank.example', 'bob@bank.example', 'unmapped:68719476737']);
    assert.equal(m1.get('alice@bank.example')?.status, 'delivered');
    assert.equal(m1.get('alice@bank.example')?.receipt, 'file-a');
    assert.equal(m1.get('bob@bank.example')?.reason, 'ERR_SINK_IO: disk full');
    assert.equal(m1.get('unmapped:68719476737')?.stagedRef, null);
    assert.deepEqual(
      (await store.quarantined(CONNECTOR.id)).map((q) => [q.messageId, q.attempts, q.reason]),
      [['q1', 1, 'bad MessageML']],
    );
    const events = await store.events(runId);
    assert.equal(events.length, 2);
    assert.equal(events[0]?.itemId, 'm1');
    assert.equal(events[0]?.level, 'warning');
    assert.equal(events[0]?.runId, runId);
    assert.ok(!('itemId' in events[1]!), 'an event without an item has no itemId key');
    assert.deepEqual(await store.checkpoint(CONNECTOR.id, 'stream-1'), {
      cursor: { ts: 1_000, count: 1 },
      drainedThrough: null,
    });
    const run = await store.run(runId);
    assert.equal(run?.delivered, 1);
    assert.equal(run?.quarantined, 1);
  });

  it('commit is all-or-nothing when a statement fails midway', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    await store.commit(page(runId, { checkpoint: { streamId: 'stream-1', cursor: { ts: 10, count: 1 } } }));
    await store.plan(CONNECTOR.id, runId, [row('m1', 'alice@bank.example')]);
    const good = {
      checkpoint: { streamId: 'stream-1', cursor: { ts: 99, count: 3 }, drainedThrough: 99 },
      ledger: [row('m1', 'alice@bank.example', { status: 'delivered' as const, attempts: 1 })],
      quarantined: [quarantineRow('q1')],
      counts: { delivered: 1, messages: 1 },
    };
    // The event's level violates a CHECK constraint after ledger and quarantine rows were written.
    await rejectsWith(
      store.commit(
        page(runId, { ...good, events: [{ level: 'fatal' as 'error', kind: 'x', reason: 'violates the CHECK' }] }),
      ),
      'ERR_STORE_IO',
    );
    // A ledger row violating its CHECK after the first row was written.
    await rejectsWith(
      store.commit(
        page(runId, {
          ...good,
          ledger: [...good.ledger, row('m2', 'bob@bank.example', { status: 'bogus' as 'failed' })],
        }),
      ),
      'ERR_STORE_IO',
    );
    const after = async () => ({
      pending: (await store.pendingCopies(CONNECTOR.id)).map((r) => r.messageId),
      ledger: (await store.ledger(CONNECTOR.id, ['m1', 'm2'])).size,
      quarantine: (await store.quarantined(CONNECTOR.id)).length,
      events: (await store.events(runId)).length,
      checkpoint: await store.checkpoint(CONNECTOR.id, 'stream-1'),
      delivered: (await store.run(runId))?.delivered,
    });
    assert.deepEqual(await after(), {
      pending: ['m1'],
      ledger: 1,
      quarantine: 0,
      events: 0,
      checkpoint: { cursor: { ts: 10, count: 1 }, drainedThrough: null },
      delivered: 0,
    });
    // The same page without the bad statement goes through.
    await store.commit(page(runId, good));
    assert.deepEqual(await after(), {
      pending: [],
      ledger: 1,
      quarantine: 1,
      events: 0,
      checkpoint: { cursor: { ts: 99, count: 3 }, drainedThrough: 99 },
      delivered: 1,
    });
  });

  it('failedCopies honours maxAttempts', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    await store.commit(
      page(runId, {
        ledger: [
          row('m1', 'a@x.example', { status: 'failed', attempts: 1, messageTs: 5 }),
          row('m2', 'a@x.example', { status: 'failed', attempts: 3, messageTs: 4 }),
          row('m3', 'a@x.example', { status: 'delivered', attempts: 1 }),
          row('m4', 'a@x.example', { status: 'pending' }),
        ],
      }),
    );
    assert.deepEqual(
      (await store.failedCopies(CONNECTOR.id, 3)).map((r) => r.messageId),
      ['m1'],
    );
    assert.deepEqual(
      (await store.failedCopies(CONNECTOR.id, 4)).map((r) => r.messageId),
      ['m2', 'm1'],
    );
    assert.deepEqual(await store.failedCopies(CONNECTOR.id, 1), []);
    assert.deepEqual(await store.failedCopies('other', 10), []);
    // A later success replaces the failed row.
    await store.commit(page(runId, { ledger: [row('m1', 'a@x.example', { status: 'delivered', attempts: 2 })] }));
    assert.deepEqual(
      (await store.failedCopies(CONNECTOR.id, 4)).map((r) => r.messageId),
      ['m2'],
    );
  });

  it('checkpoint round-trips cursor and drainedThrough per stream', async () => {
    const runId = await store.startRun(CONNECTOR.id);
    assert.equal(await store.checkpoint(CONNECTOR.id, 'stream-1'), undefined);
    await store.commit(
      page(runId, {
        checkpoint: { streamId: 'stream-1', cursor: { ts: 1718262000123, count: 2 }, drainedThrough: 1718262000123 },
      }),
    );
    await store.commit(page(runId, { checkpoint: { streamId: 'stream-2', cursor: { ts: 5, count: 1 } } }));
    assert.deepEqual(await store.checkpoint(CONNECTOR.id, 'stream-1'), {
      cursor: { ts: 1718262000123, count: 2 },
      drainedThrough: 1718262000123,
    });
    assert.deepEqual(await store.checkpoint(CONNECTOR.id, 'stream-2'), {
      cursor: { ts: 5, count: 1 },
      drainedThrough: null,
    });
    // A commit without a checkpoint leaves it alone; one without drainedThrough clears it (not known drained).
    await store.commit(page(runId, { counts: { messages: 1 } }));
    assert.equal((await store.checkpoint(CONNECTOR.id, 'stream-1'))?.drainedThrough, 1718262000123);
    await store.commit(page(runId, { checkpoint: { streamId: 'stream-1', cursor: { ts: 1718262000200, count: 1 } } }));
    assert.deepEqual(await store.checkpoint(CONNECTOR.id, 'stream-1'), {
      cursor: { ts: 1718262000200, count: 1 },
      drainedThrough: null,
    });
    assert.equal(await store.checkpoint('other', 'stream-1'), undefined);
  });

  it('quarantine counts attempts, releases, and reopens', async () => {
    const r1 = await store.startRun(CONNECTOR.id);
    await store.commit(page(r1, { quarantined: [quarantineRow('q1'), quarantineRow('q2')] }));
    await store.commit(page(r1, { quarantined: [quarantineRow('q1', 'still bad')] }));
    assert.deepEqual(
      (await store.quarantined(CONNECTOR.id)).map((q) => [q.messageId, q.attempts, q.reason]),
      [
        ['q1', 2, 'still bad'],
        ['q2', 1, 'bad MessageML'],
      ],
    );
    const q = (await store.quarantined(CONNECTOR.id))[0]!;
    assert.equal(q.raw, '{"messageId":"q1"}');
    assert.equal(q.streamId, 'stream-1');
    assert.equal(q.messageTs, 2_000);
    await store.finishRun(r1, 'succeeded');

    const r2 = await store.startRun(CONNECTOR.id);
    await store.commit(page(r2, { released: ['q1', 'never-quarantined'] }));
    assert.deepEqual(
      (await store.quarantined(CONNECTOR.id)).map((x) => x.messageId),
      ['q2'],
    );
    // Releasing twice is harmless; quarantining again reopens the item.
    await store.commit(page(r2, { released: ['q1'] }));
    await store.commit(page(r2, { quarantined: [quarantineRow('q1', 'broke again')] }));
    assert.deepEqual(
      (await store.quarantined(CONNECTOR.id)).map((x) => [x.messageId, x.attempts, x.reason]),
      [
        ['q1', 3, 'broke again'],
        ['q2', 1, 'bad MessageML'],
      ],
    );
    assert.deepEqual(await store.quarantined('other'), []);
  });

  it('ledger lookup is scoped to the connector and the given ids', async () => {
    await store.ensureConnector({ ...CONNECTOR, id: 'other' });
    const runA = await store.startRun(CONNECTOR.id);
    const runB = await store.startRun('other');
    await store.commit(page(runA, { ledger: [row('m1', 'a@x.example', { status: 'delivered' })] }));
    await store.commit({
      ...page(runB, { ledger: [row('m1', 'b@x.example', { status: 'delivered' }), row('m9', 'b@x.example')] }),
      connectorId: 'other',
    });
    const mine = await store.ledger(CONNECTOR.id, ['m1', 'm9']);
    assert.deepEqual([...mine.keys()], ['m1']);
    assert.deepEqual([...mine.get('m1')!.keys()], ['a@x.example']);
    assert.equal((await store.ledger(CONNECTOR.id, [])).size, 0);
    assert.deepEqual(
      (await store.runLedger(runB)).map((r) => r.messageId),
      ['m1', 'm9'],
    );
  });
});
