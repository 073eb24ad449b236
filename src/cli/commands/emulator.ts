import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { AppError } from '../../core/errors.ts';
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, startGraphEmulator } from '../../emulator/graph/index.ts';
import { startSymphonyEmulator, type LiveCapture } from '../../emulator/symphony/index.ts';

export interface EmulatorSymphonyOptions {
  port: number;
  host: string;
  seed: number;
  users: number;
  streams: number;
  messages: number;
  botUsername: string;
  botPublicKey?: string;
  botPrivateKeyOut: string;
  rate429: number;
  retryAfter: number;
  rate500: number;
  sessionExpiryEvery?: number;
  brokenAttachments: boolean;
  unknownStreamType: boolean;
  slowResponseRate: number;
  slowResponseMs: number;
  feedExpiryEvery?: number;
  duplicateEventRate: number;
  reorderEvents: boolean;
  liveStart?: number;
  liveSpeed: number;
  liveCapture: LiveCapture;
}

async function publicKey(o: EmulatorSymphonyOptions): Promise<string> {
  if (o.botPublicKey) {
    try {
      return createPublicKey(await readFile(o.botPublicKey, 'utf8')).export({ type: 'spki', format: 'pem' }) as string;
    } catch (err) {
      throw new AppError('ERR_INPUT_INVALID', `${o.botPublicKey} is not a readable RSA public key`, { cause: err });
    }
  }
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const out = resolve(o.botPrivateKeyOut);
  await writeFile(out, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  process.stdout.write(`bot private key written to ${out}\n`);
  return pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
}

export async function emulatorSymphonyCommand(o: EmulatorSymphonyOptions): Promise<number> {
  const emulator = await startSymphonyEmulator({
    host: o.host,
    port: o.port,
    seed: o.seed,
    users: o.users,
    streams: o.streams,
    messages: o.messages,
    botUsername: o.botUsername,
    botPublicKeyPem: await publicKey(o),
    faults: {
      rate429: o.rate429,
      retryAfterSeconds: o.retryAfter,
      rate500: o.rate500,
      brokenAttachments: o.brokenAttachments,
      unknownStreamType: o.unknownStreamType,
      slowResponseRate: o.slowResponseRate,
      slowResponseMs: o.slowResponseMs,
      duplicateEventRate: o.duplicateEventRate,
      reorderEvents: o.reorderEvents,
      ...(o.sessionExpiryEvery ? { sessionExpiryEvery: o.sessionExpiryEvery } : {}),
      ...(o.feedExpiryEvery ? { feedExpiryEvery: o.feedExpiryEvery } : {}),
    },
    ...(o.liveStart === undefined
      ? {}
      : { live: { startFraction: o.liveStart, speed: o.liveSpeed, capture: o.liveCapture } }),
  });
  const truth = emulator.groundTruth();
  const clock =
    o.liveStart === undefined
      ? ''
      : `  live: pod time starts at ${new Date(emulator.now()).toISOString()} and runs ${o.liveSpeed}× wall time; ` +
        `ground truth assumes ${o.liveCapture} capture; pod time: ${emulator.url}/emulator/clock\n`;
  process.stdout.write(
    `Symphony emulator serving ${truth.streams} conversations and ${truth.messages} messages at ${emulator.url}\n` +
      `  pod ${emulator.url}/pod, agent ${emulator.url}/agent, login ${emulator.url}/login, key manager ${emulator.url}/relay\n` +
      `  ground truth (what each mailbox should receive): ${emulator.url}/emulator/ground-truth\n` +
      clock +
      `  bot username: ${o.botUsername}. Ctrl-C stops.\n`,
  );
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await emulator.close();
  return 0;
}

export interface EmulatorGraphOptions {
  port: number;
  host: string;
  tls: boolean;
  caOut: string;
  users?: string;
  mailboxSizeLimit?: number;
  maxMessageSize?: number;
  rate429: number;
  rate503: number;
  retryAfter: number;
}

export async function emulatorGraphCommand(o: EmulatorGraphOptions): Promise<number> {
  const emulator = await startGraphEmulator({
    host: o.host,
    port: o.port,
    tls: o.tls,
    ...(o.users ? { users: o.users.split(',').map((u) => u.trim().toLowerCase()) } : {}),
    ...(o.mailboxSizeLimit ? { mailboxSizeLimitBytes: o.mailboxSizeLimit } : {}),
    ...(o.maxMessageSize ? { maxMessageSizeBytes: o.maxMessageSize } : {}),
    faults: { rate429: o.rate429, rate503: o.rate503, retryAfterSeconds: o.retryAfter },
  });
  const lines = [
    `Microsoft Graph emulator at ${emulator.url} (Graph ${emulator.graphUrl}/v1.0 and /beta)`,
    `  authorityHost ${emulator.authorityHost}, tenant ${emulator.tenantId}, token endpoint ${emulator.tokenUrl}`,
    `  client id ${DEFAULT_CLIENT_ID}; its secret is "${DEFAULT_CLIENT_SECRET}" (an emulator-only value)`,
  ];
  if (emulator.caPem) {
    const out = resolve(o.caOut);
    await writeFile(out, emulator.caPem);
    lines.push(`  certificate written to ${out}: give it to the graph destination as caFile`);
  }
  process.stdout.write(`${lines.join('\n')}\n  Ctrl-C stops.\n`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await emulator.close();
  return 0;
}
