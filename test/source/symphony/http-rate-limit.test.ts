import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { createSymphonySource } from '../../../src/source/symphony/index.ts';
import { TokenBucket, type Clock } from '../../../src/source/symphony/rate-limit.ts';
import { abortedError } from '../../../src/source/symphony/retry.ts';
import { botKeys, startFake, type FakeServer } from './helpers.ts';

/**
 * Virtual time: `sleep` records the wait and returns at once, so a caller is granted its token at
 * `now() + ms` without the test waiting. Time moves only when the test sets `time`. With `hold`, a
 * cancellable wait lasts until it is cancelled.
 */
class FakeClock implements Clock {
  time = 0;
  hold = false;
  readonly grants: number[] = [];
  readonly sleeps: number[] = [];

  now(): number {
    return this.time;
  }

  sleep(ms: number, signals: readonly (AbortSignal | undefined)[]): Promise<void> {
    this.sleeps.push(ms);
    const active = signals.filter((s): s is AbortSignal => s !== undefined);
    if (active.some((s) => s.aborted)) return Promise.reject(abortedError());
    if (this.hold && active.length > 0) {
      return new Promise((_, reject) => {
        for (const s of active) s.addEventListener('abort', () => reject(abortedError()), { once: true });
      });
    }
    return Promise.resolve();
  }
}

/** Takes a token and records the virtual time at which it was granted. */
async function take(bucket: TokenBucket, clock: FakeClock, signal?: AbortSignal): Promise<void> {
  const asked = clock.now();
  const before = clock.sleeps.length;
  // The bucket asks for its wait synchronously, before the first await, so this caller's wait is the next one.
  const pending = bucket.take(signal ? [signal] : []);
  const waited = clock.sleeps.length > before ? (clock.sleeps[before] ?? 0) : 0;
  await pending;
  clock.grants.push(asked + waited);
}

describe('token bucket', () => {
  it('allows one second of burst, then one request per 1/rate', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(5, clock);
    await Promise.all(Array.from({ length: 10 }, () => take(bucket, clock)));
    assert.deepEqual(clock.grants, [0, 0, 0, 0, 0, 200, 400, 600, 800, 1000]);
  });

  it('refills at the rate but never above one second’s worth', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(4, clock);
    await Promise.all(Array.from({ length: 4 }, () => take(bucket, clock)));
    clock.time = 500;
    await Promise.all(Array.from({ length: 3 }, () => take(bucket, clock)));
    assert.deepEqual(clock.grants.slice(4), [500, 500, 750]);
    clock.time = 60_000;
    clock.grants.length = 0;
    await Promise.all(Array.from({ length: 6 }, () => take(bucket, clock)));
    assert.deepEqual(clock.grants, [60_000, 60_000, 60_000, 60_000, 60_250, 60_500]);
  });

  it('below one request per second the burst is one request', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(0.5, clock);
    await Promise.all(Array.from({ length: 3 }, () => take(bucket, clock)));
    assert.deepEqual(clock.grants, [0, 2000, 4000]);
  });

  it('a caller that gives up while waiting hands its token back', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(2, clock);
    await take(bucket, clock);
    await take(bucket, clock);
    clock.hold = true;
    const controller = new AbortController();
    const waiting = bucket.take([controller.signal]);
    controller.abort();
    await assert.rejects(waiting, (err) => isAppError(err, 'ERR_ABORTED'));
    await assert.rejects(bucket.take([AbortSignal.abort()]), (err) => isAppError(err, 'ERR_ABORTED'));
    await take(bucket, clock);
    assert.deepEqual(clock.sleeps, [500, 500]);
  });

  it('never grants more than burst + rate × window in any window (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0.2, max: 50, noNaN: true }),
        fc.array(fc.record({ gapMs: fc.nat({ max: 3000 }), burst: fc.integer({ min: 1, max: 30 }) }), {
          minLength: 1,
          maxLength: 12,
        }),
        async (rate, steps) => {
          const clock = new FakeClock();
          const bucket = new TokenBucket(rate, clock);
          for (const { gapMs, burst } of steps) {
            clock.time += gapMs;
            await Promise.all(Array.from({ length: burst }, () => take(bucket, clock)));
          }
          const grants = [...clock.grants].sort((a, b) => a - b);
          const capacity = Math.max(1, rate);
          for (let i = 0; i < grants.length; i += 1) {
            for (let j = i; j < grants.length; j += 1) {
              // Waits are whole milliseconds rounded up, so the grant opening a window may be up to 1 ms late.
              const window = (grants[j]! - grants[i]! + 1) / 1000;
              assert.ok(
                j - i + 1 <= capacity + rate * window + 1e-9,
                `${j - i + 1} grants in ${window} s at ${rate}/s`,
              );
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('requestsPerSecond on a source', () => {
  const servers: FakeServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it('one bucket covers logins, calls and retries of the source', async () => {
    let throttledOnce = false;
    const server = await startFake((req) => {
      if (req.path === '/pod/v2/sessioninfo' && !throttledOnce) {
        throttledOnce = true;
        return { status: 429, headers: { 'retry-after': '0' } };
      }
      if (req.path === '/pod/v2/sessioninfo') return { body: { id: 1 } };
      if (req.path === '/pod/v3/users') return { body: { users: [] } };
      return undefined;
    });
    servers.push(server);
    const clock = new FakeClock();
    const source = createSymphonySource(
      {
        podUrl: server.url,
        agentUrl: server.url,
        keyManagerUrl: server.url,
        username: 'archiver-bot',
        privateKeyPem: botKeys().privateKeyPem,
        requestsPerSecond: 2,
        backoffBaseMs: 0,
      },
      { logger: silentLogger(), clock },
    );
    await source.check();
    await source.users(Array.from({ length: 250 }, (_, i) => String(i + 1)));
    // 2 logins + 429 + retried sessioninfo + 3 user batches of 100.
    assert.equal(server.requests.length, 7);
    assert.equal(source.stats().requests, 7);
    // The first two go at once (one second's worth at 2/s), each later one 500 ms after the one before.
    assert.deepEqual(clock.sleeps, [500, 1000, 1500, 2000, 2500]);
  });
});
