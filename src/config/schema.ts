import { z } from 'zod';

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** https everywhere; plain http only to loopback, for the bundled emulator (reliability.md §4.3–4.4). */
const serviceUrl = z
  .string()
  .url()
  .refine((u) => {
    const url = new URL(u);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
  }, 'must be an https URL (plain http is allowed only to a loopback address)')
  .refine((u) => !new URL(u).username && !new URL(u).password, 'must not carry credentials');

const address = z.email().transform((a) => a.toLowerCase());

const domain = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i, 'must be a domain name')
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
});

export const maildirDestinationSchema = z.strictObject({
  kind: z.literal('maildir'),
  root: z.string().min(1),
  folder: z
    .string()
    .regex(/^[A-Za-z0-9 _-]{1,64}$/, 'must be a plain folder name')
    .default('Symphony'),
});

export const destinationSchema = z.discriminatedUnion('kind', [maildirDestinationSchema]);

export const mappingSchema = z.strictObject({
  overrides: z.record(z.string().min(1), address).default({}),
  domains: z.array(domain).min(1).optional(),
  catchAll: address.optional(),
});

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
    })
    .default({ syntheticDomain: 'symphony.invalid' }),
  delivery: z
    .strictObject({
      /** Attempts per copy before it stays failed for an operator to look at. */
      maxAttempts: z.number().int().min(1).max(100).default(10),
    })
    .default({ maxAttempts: 10 }),
});

export const configSchema = z
  .strictObject({
    /** Where the state database and staged items live. */
    dataDir: z.string().min(1).default('./data'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    connectors: z.array(connectorSchema).min(1),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.connectors.forEach((c, i) => {
      if (seen.has(c.id))
        ctx.addIssue({ code: 'custom', path: ['connectors', i, 'id'], message: `duplicate id "${c.id}"` });
      seen.add(c.id);
    });
  });

export type Config = z.output<typeof configSchema>;
export type ConnectorConfig = z.output<typeof connectorSchema>;
export type SymphonySourceSettings = z.output<typeof symphonySourceSchema>;
export type DestinationConfig = z.output<typeof destinationSchema>;
