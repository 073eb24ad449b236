import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino removes from every log line. Tokens and keys must never reach a log (ASVS 16.2.5,
 * reliability.md §4.1); error objects are logged through `reasonOf`, never with their request options.
 */
export const REDACT_PATHS = [
  'sessionToken',
  'keyManagerToken',
  'token',
  'password',
  'privateKey',
  'privateKeyPem',
  'clientSecret',
  '*.sessionToken',
  '*.keyManagerToken',
  '*.token',
  '*.password',
  '*.privateKey',
  '*.privateKeyPem',
  '*.clientSecret',
  'headers.authorization',
  '*.headers.authorization',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    { level: options.level ?? process.env.LOG_LEVEL ?? 'info', redact: { paths: REDACT_PATHS, remove: true } },
    options.destination ?? pino.destination(2),
  );
}

/** A logger that discards everything (tests, `--json` output on stdout). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
