import { z } from 'zod';
import { graphDestinationSchema } from '../deliver/graph/config.ts';
import { imapDestinationSchema } from '../deliver/imap/config.ts';

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/**
 * https everywhere; plain http only to loopback, for the bundled emulator (reliability.md §4.3–4.4). The
 * refinements also run when `.url()` already failed (zod 4 checks continue), so they skip unparsable values.
 */
const serviceUrl = z
  .string()
  .url()
  .refine((u) => {
    const url = urlOf(u);
    return !url || url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
  }, 'must be an https URL (plain http is allowed only to a loopback address)')
  .refine((u) => !urlOf(u)?.username && !urlOf(u)?.password, 'must not carry credentials')
  // The source adds API paths to it (source/symphony/config.ts `checkBaseUrl` refuses the same).
  .refine((u) => !urlOf(u)?.search && !urlOf(u)?.hash, 'must not contain a query or fragment');

const address = z.email().transform((a) => a.toLowerCase());

/** A dotted LDH host name: what may follow the `@` of a generated Message-ID or address. */
export const DOMAIN_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i;

const domain = z
  .string()
  .regex(DOMAIN_NAME, 'must be a domain name')
  .transform((d) => d.toLowerCase());

export const symphonySourceSchema = z.strictObject({
  kind: z.literal('symphony'),
  podUrl: serviceUrl,
  agentUrl: serviceUrl.optional(),
  keyManagerUrl: serviceUrl.optional(),
  username: z.string().min(1),
  /** PEM file of the bot's RSA private key (PKCS#1 or PKCS#8); the key itself never goes in the config. */
  privateKeyPath: z.string().min(1),
  pageSize: z.number().int().min(1).max(500).default(500),
  /** Per request; a pod under load can take tens of seconds on a large page. */
  requestTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
  /** Retries of a throttled (429), failing (5xx) or unreachable call, with capped exponential backoff and jitter. */
  maxRetries: z.number().int().min(0).max(100).default(6),
  backoffBaseMs: z.number().int().min(0).max(600_000).default(500),
  /**
   * Client-side cap over every request to this pod, logins and retries included, with a burst of one second's
   * worth; unset means none. The pod's own limit is 400 requests/s per source IP and node (symphony-api.md §7).
   */
  requestsPerSecond: z.number().positive().max(10_000).optional(),
  /** PEM bundle of CAs trusted in addition to the bundled roots for pod, agent and key manager; verification stays on. */
  caFile: z.string().min(1).optional(),
  /**
   * `history` reads each stream's messages on every cycle; `datahose` (the whole pod) or `datafeed` (the bot's own
   * conversations) also follow events as they happen, with exact joins, leaves and removals (symphony-api.md §8).
   */
  capture: z.enum(['history', 'datafeed', 'datahose']).default('history'),
  /** Conversations read at the same time: a throttled stream waits out its Retry-After while others go on. */
  streamConcurrency: z.number().int().min(1).max(32).default(4),
  /** With a real-time capture: hours between history sweeps, the completeness backstop (§2.4: "historic queries"). */
  sweepIntervalHours: z
    .number()
    .min(0.01)
    .max(24 * 7)
    .default(24),
  /** Names the feed; instances sharing a tag share one feed (§2.10). Defaults to `symphony-archiver-<connector id>`. */
  feedTag: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,80}$/, 'must be letters, digits, "_" and "-"')
    .optional(),
});

export const maildirDestinationSchema = z.strictObject({
  kind: z.literal('maildir'),
  root: z.string().min(1),
  folder: z
    .string()
    .regex(/^[A-Za-z0-9 _-]{1,64}$/, 'must be a plain folder name')
    .default('Symphony'),
});

export const destinationSchema = z.discriminatedUnion('kind', [
  maildirDestinationSchema,
  imapDestinationSchema,
  graphDestinationSchema,
]);

/**
 * Keys are user ids or Symphony emails; emails are looked up lower-cased (mapping/index.ts), so keys are
 * lower-cased here and two keys that differ only in case are refused rather than one silently winning.
 */
const overrides = z
  .record(z.string().trim().min(1), address)
  .superRefine((rec, ctx) => {
    const seen = new Map<string, string>();
    for (const key of Object.keys(rec)) {
      const folded = key.trim().toLowerCase();
      const first = seen.get(folded);
      if (first !== undefined)
        ctx.addIssue({ code: 'custom', path: [key], message: `same key as "${first}" (keys ignore case)` });
      else seen.set(folded, key);
    }
  })
  .transform((rec) => Object.fromEntries(Object.entries(rec).map(([k, v]) => [k.trim().toLowerCase(), v])));

export const mappingSchema = z.strictObject({
  overrides: overrides.default({}),
  domains: z.array(domain).min(1).optional(),
  catchAll: address.optional(),
});

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const connectorSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes'),
  name: z.string().min(1).optional(),
  source: symphonySourceSchema,
  destination: destinationSchema,
  mapping: mappingSchema.default({ overrides: {} }),
  convert: z
    .strictObject({
      /** Right-hand side of generated Message-IDs; defaults to `symphony.<pod host>`. Changing it re-imports everything. */
      messageIdDomain: domain.optional(),
      /** Domain of synthetic addresses for people without email; `.invalid` is reserved (RFC 2606). */
      syntheticDomain: domain.default('symphony.invalid'),
      /** Subject of each item; placeholders in convert/converter.ts `ConvertOptions.subjectTemplate`. */
      subjectTemplate: z.string().min(1).max(200).optional(),
      /** Room events from a feed (created, renamed, joined, left…) become items of their own. */
      roomEvents: z.boolean().default(true),
      /**
       * `message`: one email per message. `daily-transcript`: one email per conversation per day, built once the day
       * is over; an item arriving later makes a revision of it (convert/transcript.ts).
       */
      format: z.enum(['message', 'daily-transcript']).default('message'),
      /** IANA time zone whose calendar days the transcripts follow. */
      timeZone: z.string().default('UTC').refine(isTimeZone, 'must be an IANA time zone such as Europe/London'),
      /**
       * How long after a day ends its transcript waits, so that messages still on their way at midnight (clock
       * skew, a slow feed) go into it rather than into a revision.
       */
      transcriptSettleMinutes: z.number().int().min(0).max(10_080).default(60),
    })
    .default({
      syntheticDomain: 'symphony.invalid',
      roomEvents: true,
      format: 'message',
      timeZone: 'UTC',
      transcriptSettleMinutes: 60,
    }),
  delivery: z
    .strictObject({
      /** Attempts per copy before it stays failed for an operator to look at. */
      maxAttempts: z.number().int().min(1).max(100).default(10),
      /** Mailboxes written at the same time; each gets its copies of a page together (IMAP batches them). */
      concurrency: z.number().int().min(1).max(64).default(8),
    })
    .default({ maxAttempts: 10, concurrency: 8 }),
});

export const configSchema = z
  .strictObject({
    /** Where the state database and staged items live. */
    dataDir: z.string().min(1).default('./data'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    connectors: z.array(connectorSchema).min(1),
  })
  // Runs even when other parts are invalid, so duplicates are reported with every other problem.
  .superRefine(
    (cfg, ctx) => {
      const seen = new Set<string>();
      (cfg.connectors as unknown[]).forEach((c, i) => {
        const id = (c as { id?: unknown } | null)?.id;
        if (typeof id !== 'string') return;
        if (seen.has(id))
          ctx.addIssue({ code: 'custom', path: ['connectors', i, 'id'], message: `duplicate id "${id}"` });
        seen.add(id);
      });
    },
    { when: (payload) => Array.isArray((payload.value as { connectors?: unknown } | null)?.connectors) },
  );

export type Config = z.output<typeof configSchema>;
export type ConnectorConfig = z.output<typeof connectorSchema>;
export type SymphonySourceSettings = z.output<typeof symphonySourceSchema>;
export type DestinationConfig = z.output<typeof destinationSchema>;
