/**
 * EntityJSON (symphony-api.md §4.3, §6): `V4Message.data` is a JSON *string* whose keys are the
 * `data-entity-id` values of the spans in the PresentationML. It may be null, absent, `"{}"` or broken, and a
 * mention's `id[].value` may be a number or a string, so everything here is read defensively and never throws.
 */
import { userIdOf } from '../core/ids.ts';

/** One identifying field of an enhanced (v2.0) cashtag, in the order it is shown. */
export interface SecurityField {
  label: string;
  value: string;
}

export type EntityInfo =
  | { kind: 'mention'; userId: string }
  | { kind: 'hashtag'; value: string }
  | { kind: 'cashtag'; ticker?: string; fields: SecurityField[] }
  | { kind: 'emoji'; unicode?: string; shortcode?: string }
  | { kind: 'media'; media: 'image' | 'video' | 'article'; url?: string; title?: string }
  | { kind: 'datetime'; value: string }
  | { kind: 'other'; type: string };

export interface ParsedEntities {
  /** Keyed by `data-entity-id`, in the order of the JSON object. */
  byId: ReadonlyMap<string, EntityInfo>;
  warnings: string[];
}

const MENTION_TYPE = 'com.symphony.user.mention';
const USER_ID_TYPE = 'com.symphony.user.userId';
const TAXONOMY_TYPE = 'org.symphonyoss.taxonomy';
const HASHTAG_ID_TYPE = 'org.symphonyoss.taxonomy.hashtag';
const SECURITY_TYPE = 'org.symphonyoss.fin.security';
const EMOJI_TYPE = 'com.symphony.emoji';
const DATETIME_SUBTYPE = 'org.symphonyoss.datetime';

/** Entity JSON is bounded by Symphony (80 entities, 1.5 MB), but `data` is untrusted: cap what is shown. */
const MAX_VALUE_LENGTH = 200;

/**
 * The v2.0 "enhanced" cashtag id types (messageml-utils `Tag.enhanceInstrumentEntityJson`, symphony-api.md §6)
 * plus the v1.0 legacy ids (`isin`, `cusip`, `openfigi`), keyed by the last segment of the id type. The ticker
 * itself is the span's text; `uniqueId`, `figiTicker`, `lei` (which the library fills with the FIGI ticker) and
 * `instrumentTypeCode` repeat other fields and are left out.
 */
const SECURITY_FIELDS: readonly (readonly [suffix: string, label: string])[] = [
  ['displayName', 'Name'],
  ['fullBbgTicker', 'Bloomberg'],
  ['bbgcompticker', 'Bloomberg composite'],
  ['exchangeName', 'Exchange'],
  ['operationalMic', 'MIC'],
  ['countryName', 'Country'],
  ['countryCode', 'Country code'],
  ['currency', 'Currency'],
  ['instrumentTypeName', 'Type'],
  ['isin', 'ISIN'],
  ['cusip', 'CUSIP'],
  ['sedol', 'SEDOL'],
  ['figi', 'FIGI'],
  ['openfigi', 'FIGI'],
  ['localCode', 'Local code'],
];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function short(value: string): string {
  const s = value.replace(/\s+/g, ' ').trim();
  return s.length > MAX_VALUE_LENGTH ? `${s.slice(0, MAX_VALUE_LENGTH - 1)}…` : s;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? short(v) : undefined;
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
    if (typeof value === 'string' && value.trim() !== '') out.push([type, short(value)]);
    else if (typeof value === 'number' && Number.isFinite(value)) out.push([type, String(value)]);
  }
  return out;
}

function lastSegment(type: string): string {
  return type.slice(type.lastIndexOf('.') + 1);
}

function security(ids: [string, string][]): EntityInfo | undefined {
  const bySuffix = new Map<string, string>();
  for (const [type, value] of ids) {
    const suffix = lastSegment(type);
    if (!bySuffix.has(suffix)) bySuffix.set(suffix, value);
  }
  const ticker = bySuffix.get('ticker');
  const fields: SecurityField[] = [];
  const seen = new Set<string>(ticker === undefined ? [] : [ticker]);
  for (const [suffix, label] of SECURITY_FIELDS) {
    const value = bySuffix.get(suffix);
    if (value === undefined || seen.has(value)) continue;
    seen.add(value);
    fields.push({ label, value });
  }
  if (ticker === undefined && fields.length === 0) return undefined;
  return ticker === undefined ? { kind: 'cashtag', fields } : { kind: 'cashtag', ticker, fields };
}

function classify(entity: Record<string, unknown>): EntityInfo | undefined {
  const type = typeof entity['type'] === 'string' ? entity['type'] : '';
  const ids = idEntries(entity);
  const data = isRecord(entity['data']) ? entity['data'] : undefined;
  if (type === MENTION_TYPE) {
    const raw = ids.find(([t]) => t === USER_ID_TYPE)?.[1] ?? ids[0]?.[1];
    const userId = userIdOf(raw);
    return userId === undefined ? { kind: 'other', type } : { kind: 'mention', userId };
  }
  if (type === TAXONOMY_TYPE) {
    const value = ids.find(([t]) => t === HASHTAG_ID_TYPE)?.[1] ?? ids[0]?.[1];
    return value === undefined ? { kind: 'other', type } : { kind: 'hashtag', value };
  }
  if (type === SECURITY_TYPE) return security(ids) ?? { kind: 'other', type };
  if (type === EMOJI_TYPE) {
    const unicode = str(data?.['unicode']);
    const shortcode = str(data?.['shortcode']) ?? str(data?.['annotation']);
    if (!unicode && !shortcode) return { kind: 'other', type };
    return { kind: 'emoji', ...(unicode ? { unicode } : {}), ...(shortcode ? { shortcode } : {}) };
  }
  // messageml-utils DateTime: {type: "org.symphonyoss", data: {type: "org.symphonyoss.datetime", value}}.
  if (data && data['type'] === DATETIME_SUBTYPE) {
    const value = str(data['value']);
    return value ? { kind: 'datetime', value } : { kind: 'other', type };
  }
  // com.symphony.media.image / .video (`format`, `url`) and article entities (symphony-api.md §6).
  if (/^com\.symphony\.media\.(image|video)$/.test(type)) {
    const url = str(entity['url']) ?? str(data?.['url']);
    return { kind: 'media', media: type.endsWith('image') ? 'image' : 'video', ...(url ? { url } : {}) };
  }
  if (/article/i.test(type)) {
    const url = str(entity['href']) ?? str(data?.['href']);
    const title = str(entity['title']) ?? str(data?.['title']);
    return { kind: 'media', media: 'article', ...(url ? { url } : {}), ...(title ? { title } : {}) };
  }
  return type ? { kind: 'other', type: short(type) } : undefined;
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
  for (const key of Object.keys(parsed)) {
    const value = parsed[key];
    if (!isRecord(value)) continue;
    const info = classify(value);
    if (info) byId.set(key, info);
  }
  return { byId, warnings };
}

/** `$IBM` plus the enhanced fields, e.g. `$IBM (Name: International Business Machines; ISIN: US4592001014)`. */
export function cashtagText(visible: string, info: Extract<EntityInfo, { kind: 'cashtag' }>): string {
  const main = visible || (info.ticker === undefined ? 'security' : `$${info.ticker}`);
  if (info.fields.length === 0) return main;
  return `${main} (${info.fields.map((f) => `${f.label}: ${f.value}`).join('; ')})`;
}
