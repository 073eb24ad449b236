/**
 * A fake Symphony pod for tests: pod, agent, login and key-manager relay on one HTTP origin, answering
 * with the shapes of the official spec (`spec/symphony/`, symphony-api.md §9) over a deterministic,
 * seeded pod, with optional fault injection and, for a live pod, a clock that releases the rest of the
 * timeline to the REST views and the feeds.
 */
import type { AddressInfo } from 'node:net';
import { Authenticator } from './auth.ts';
import { PodClock } from './clock.ts';
import { FeedHub, Sleeps } from './feeds.ts';
import { generatePod } from './generate.ts';
import { Prng, hashSeed } from './prng.ts';
import { createEmulatorServer, type ServerState } from './server.ts';
import type { EmulatorOptions, GroundTruth } from './types.ts';

export type {
  EmulatorOptions,
  EventType,
  FaultOptions,
  GroundTruth,
  GroundTruthCapture,
  LiveCapture,
  LiveOptions,
} from './types.ts';

/** How often a live pod with a `speed` moves its clock. */
const TICK_MS = 50;

export interface SymphonyEmulator {
  /** e.g. http://127.0.0.1:41234: pod, agent, login and relay all on this one origin. */
  readonly url: string;
  groundTruth(): GroundTruth;
  requestCount(): number;
  /** Pod time (epoch ms): what the REST views show and the feeds have been given. */
  now(): number;
  /** Moves pod time forward by `ms` (>= 0), releasing what happens in between. */
  advance(ms: number): void;
  /** Moves pod time to `ts`; earlier than now does nothing. */
  advanceTo(ts: number): void;
  /** Moves pod time to the end of the generated timeline. */
  releaseAll(): void;
  /** The last moment of the generated timeline (epoch ms). */
  timelineEnd(): number;
  close(): Promise<void>;
}

export async function startSymphonyEmulator(options: EmulatorOptions): Promise<SymphonyEmulator> {
  const seed = options.seed ?? 1;
  const botUsername = options.botUsername ?? 'archiver-bot';
  const faults = options.faults ?? {};
  const live = options.live;
  if (live && !(live.startFraction >= 0 && live.startFraction <= 1)) {
    throw new RangeError('live.startFraction must be between 0 and 1');
  }
  const pod = generatePod({
    seed,
    users: options.users ?? 40,
    streams: options.streams ?? 30,
    messages: options.messages ?? 1500,
    botUsername,
    brokenAttachments: faults.brokenAttachments ?? false,
    unknownStreamType: faults.unknownStreamType ?? false,
    ...(live ? { live: { startFraction: live.startFraction, capture: live.capture ?? 'datahose' } } : {}),
  });
  const sleeps = new Sleeps();
  const feeds = new FeedHub({
    pod,
    timings: {
      ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
      longPollMs: options.longPollMs ?? 30_000,
      feedTtlMs: options.feedTtlMs ?? 30 * 60_000,
    },
    faults,
    rng: new Prng(hashSeed(seed, 'feeds')),
    duplicateRng: new Prng(hashSeed(seed, 'duplicates')),
    now: () => clock.now(),
    sleeps,
  });
  const clock = new PodClock(pod, pod.timeline.liveStart ?? pod.timeline.end, (events) => feeds.publish(events));
  const state: ServerState = {
    pod,
    auth: await Authenticator.create(options.botPublicKeyPem, botUsername),
    faults,
    faultRng: new Prng(hashSeed(seed, 'faults')),
    slowRng: new Prng(hashSeed(seed, 'slow')),
    sleeps,
    clock,
    feeds,
    requests: 0,
    authenticatedCalls: 0,
  };
  const server = createEmulatorServer(state);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let ticker: NodeJS.Timeout | undefined;
  if (live?.speed && live.speed > 0) {
    const speed = live.speed;
    let last = Date.now();
    ticker = setInterval(() => {
      const wall = Date.now();
      clock.advanceTo(clock.now() + (wall - last) * speed);
      last = wall;
    }, TICK_MS);
    ticker.unref();
  }
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let truthJson: string | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    // A fresh copy each time so callers cannot alter what the server reports.
    groundTruth: () => JSON.parse((truthJson ??= JSON.stringify(pod.groundTruth))) as GroundTruth,
    requestCount: () => state.requests,
    now: () => clock.now(),
    advance: (ms) => {
      if (!(ms >= 0)) throw new RangeError('advance takes a duration >= 0');
      clock.advanceTo(clock.now() + ms);
    },
    advanceTo: (ts) => clock.advanceTo(ts),
    releaseAll: () => clock.advanceTo(pod.timeline.end),
    timelineEnd: () => pod.timeline.end,
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (ticker) clearInterval(ticker);
        sleeps.cancelAll();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
