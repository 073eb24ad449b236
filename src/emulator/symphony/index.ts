/**
 * A fake Symphony pod for tests: pod, agent, login and key-manager relay on one HTTP origin, answering
 * with the shapes of the official spec (`spec/symphony/`, symphony-api.md §9) over a deterministic,
 * seeded pod, with optional fault injection.
 */
import type { AddressInfo } from 'node:net';
import { Authenticator } from './auth.ts';
import { generatePod } from './generate.ts';
import { Prng, hashSeed } from './prng.ts';
import { createEmulatorServer, type ServerState } from './server.ts';
import type { EmulatorOptions, GroundTruth } from './types.ts';

export type { EmulatorOptions, FaultOptions, GroundTruth } from './types.ts';

export interface SymphonyEmulator {
  /** e.g. http://127.0.0.1:41234: pod, agent, login and relay all on this one origin. */
  readonly url: string;
  groundTruth(): GroundTruth;
  requestCount(): number;
  close(): Promise<void>;
}

export async function startSymphonyEmulator(options: EmulatorOptions): Promise<SymphonyEmulator> {
  const seed = options.seed ?? 1;
  const botUsername = options.botUsername ?? 'archiver-bot';
  const faults = options.faults ?? {};
  const pod = generatePod({
    seed,
    users: options.users ?? 40,
    streams: options.streams ?? 30,
    messages: options.messages ?? 1500,
    botUsername,
    brokenAttachments: faults.brokenAttachments ?? false,
    unknownStreamType: faults.unknownStreamType ?? false,
  });
  const state: ServerState = {
    pod,
    auth: await Authenticator.create(options.botPublicKeyPem, botUsername),
    faults,
    faultRng: new Prng(hashSeed(seed, 'faults')),
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
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const truthJson = JSON.stringify(pod.groundTruth);
  return {
    url: `http://${urlHost}:${address.port}`,
    // A fresh copy each time so callers cannot alter what the server reports.
    groundTruth: () => JSON.parse(truthJson) as GroundTruth,
    requestCount: () => state.requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
