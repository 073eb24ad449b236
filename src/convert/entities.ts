/**
 * EntityJSON (symphony-api.md §4.3, §6): `V4Message.data` is a JSON *string* whose keys are the
 * `data-entity-id` values of the spans in the PresentationML. It may be null, absent, `"{}"` or broken, and a
 * mention's `id[].value` may be a number or a string, so everything here is read defensively.
 */
import { userIdOf } from '../core/ids.ts';

export type EntityInfo =
  | { kind: 'mention'; userId: string }
  | { kind: 'hashtag'; value: string }
  | { kind: 'cashtag'; value: string }
  | { kind: 'emoji'; unicode: string; annotation?: string }
  | { kind: 'other'; type: string };

export interface ParsedEntities {
  byId: ReadonlyMap<string, EntityInfo>;
  warnings: string[];
}

const MENTION_TYPE = 'com.symphony.user.mention';
const USER_ID_TYPE = 'com.symphony.user.userId';
const TAXONOMY_TYPE = 'org.symphonyoss.taxonomy';
const HASHTAG_ID_TYPE = 'org.symphonyoss.taxonomy.hashtag';
const SECURITY_TYPE = 'org.symphonyoss.fin.security';
const EMOJI_TYPE = 'com.symphony.emoji';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `id` entries as `[type, value]` pairs, skipping anything that is not `{type: string, value: scalar}`. */
function idEntries(entity: Record<string, unknown>): [string, string][] {
  const ids = entity['id'];
  if (!Array.isArray(ids)) return [];
  const out: [string, string][] = [];
  for (const id of ids) {
    if (!isRecord(id)) continue;
    const type = id['type'];
    const value = id['value'];
    if (typeof type !== 'string') continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint')
      out.push([type, String(value)]);
  }
  return out;
}

function classify(entity: Record<string, unknown>): EntityInfo | undefined {
  const type = typeof entity['type'] === 'string' ? entity['type'] : '';
  const ids = idEntries(entity);
  if (type === MENTION_TYPE) {
    const raw = ids.find(([t]) => t === USER_ID_TYPE)?.[1] ?? ids[0]?.[1];
    const userId = userIdOf(raw);
    return userId === undefined ? { kind: 'other', type } : { kind: 'mention', userId };
  }
  if (type === TAXONOMY_TYPE) {
    const value = ids.find(([t]) => t === HASHTAG_ID_TYPE)?.[1] ?? ids[0]?.[1];
    return value === undefined ? { kind: 'other', type } : { kind: 'hashtag', value };
  }
  if (type === SECURITY_TYPE) {
    // v2.0 "enhanced" cashtags carry several ids (ticker, isin, figi, …); the ticker is the readable one (§6).
    const value = ids.find(([t]) => t.endsWith('.ticker'))?.[1] ?? ids[0]?.[1];
    return value === undefined ? { kind: 'other', type } : { kind: 'cashtag', value };
  }
  if (type === EMOJI_TYPE) {
    const data = entity['data'];
    if (isRecord(data) && typeof data['unicode'] === 'string') {
      const annotation = typeof data['annotation'] === 'string' ? data['annotation'] : undefined;
      return annotation === undefined
        ? { kind: 'emoji', unicode: data['unicode'] }
        : { kind: 'emoji', unicode: data['unicode'], annotation };
    }
    return { kind: 'other', type };
  }
  return type ? { kind: 'other', type } : undefined;
}

/** Parses `V4Message.data`; never throws, reports what it could not read as warnings. */
export function parseEntities(data: unknown): ParsedEntities {
  const byId = new Map<string, EntityInfo>();
  const warnings: string[] = [];
  if (data === null || data === undefined || data === '') return { byId, warnings };
  let parsed: unknown = data;
  if (typeof data === 'string') {
    try {
      parsed = JSON.parse(data);
    } catch {
      warnings.push('entity data ("data") is not valid JSON; entities are shown as their visible text only');
      return { byId, warnings };
    }
  }
  if (!isRecord(parsed)) {
    warnings.push('entity data ("data") is not a JSON object; entities are shown as their visible text only');
    return { byId, warnings };
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (!isRecord(value)) continue;
    const info = classify(value);
    if (info) byId.set(key, info);
  }
  return { byId, warnings };
}
