import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { AppError } from '../core/errors.ts';
import { configSchema, type Config } from './schema.ts';

/** `connectors.0.source.podUrl: must be an https URL` — every problem, each with its path. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a parsed config once; relative paths are taken relative to `baseDir`. The result is frozen. */
export function parseConfig(input: unknown, baseDir: string): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new AppError('ERR_CONFIG_INVALID', `\n${formatIssues(result.error.issues)}`);
  const cfg = result.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  cfg.dataDir = abs(cfg.dataDir);
  for (const c of cfg.connectors) {
    resolvePaths(c.source, abs);
    resolvePaths(c.destination, abs);
  }
  return deepFreeze(cfg);
}

/** Keys that name files or directories, by the config's naming rule: `root`, `…File`, `…Path`, `…Dir`. */
const PATH_KEY = /^root$|(File|Path|Dir)$/;

function resolvePaths(section: object, abs: (p: string) => string): void {
  const record = section as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'string' && PATH_KEY.test(key)) record[key] = abs(value);
    else if (value && typeof value === 'object' && !Array.isArray(value)) resolvePaths(value, abs);
  }
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AppError('ERR_CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // Only the first line: the rest is a code frame that would echo the file, a pasted key included.
    const detail = err instanceof YAMLParseError ? err.message.split('\n')[0]!.replace(/:$/, '') : String(err);
    throw new AppError('ERR_CONFIG_INVALID', `${file} is not valid YAML: ${detail}`);
  }
  return parseConfig(doc, dirname(resolve(file)));
}
