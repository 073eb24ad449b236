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

/** The article standard entity (DevDocs standard-entities.md): every field but the title is optional. */
export interface ArticleInfo {
  kind: 'article';
  title?: string;
  subTitle?: string;
  blurb?: string;
  /** Publication time, ISO 8601 (the entity's Unix epoch timestamp). */
  date?: string;
  publisher?: string;
  author?: string;
  /** Image URL or `data:` URL. */
  thumbnail?: string;
  href?: string;
  /** The application's own id of the article, for deep links. */
  articleId?: string;
}

export type EntityInfo =
  | { kind: 'mention'; userId: string }
  | { kind: 'hashtag'; value: string }
  | { kind: 'cashtag'; ticker?: string; fields: SecurityField[] }
  | { kind: 'emoji'; unicode?: string; shortcode?: string }
  | { kind: 'media'; media: 'image' | 'video'; url?: string; format?: string; videoId?: string }
  | ArticleInfo
  | { kind: 'action'; label?: string; intent?: string; context?: string }
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
const FDC3_ACTION_TYPE = 'fdc3.entity.action';

/** Entity JSON is bounded by Symphony (80 entities, 1.5 MB), but `data` is untrusted: cap what is shown. */
const MAX_VALUE_LENGTH = 200;

/** A URL is kept whole (a cut one is a broken link); a `data:` image may take the whole 1.5 MB of a message. */
const MAX_URL_LENGTH = 2 * 1024 * 1024;

/**
 * The v2.0 "enhanced" cashtag id types (messageml-utils `Tag.enhanceInstrumentEntityJson`, symphony-api.md §6)
 * plus the v1.0 legacy ids (`isin`, `cusip`, `openfigi`), keyed by the last segment of the id type; `country` and
 * `rootBbgCompTicker` as symphony-api.md §6 names them. The ticker itself is the span's text; `uniqueId` (an
 * internal key), `figiTicker`, `lei` (which the library fills with the FIGI ticker) and `instrumentTypeCode`
 * repeat other fields and are left out (the source attachment keeps them).
 */
const SECURITY_FIELDS: readonly (readonly [suffix: string, label: string])[] = [
  ['displayName', 'Name'],
  ['fullBbgTicker', 'Bloomberg'],
  ['bbgcompticker', 'Bloomberg composite'],
  ['rootBbgCompTicker', 'Bloomberg root'],
  ['exchangeName', 'Exchange'],
  ['operationalMic', 'MIC'],
  ['countryName', 'Country'],
  ['country', 'Country'],
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

function url(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' && v.length <= MAX_URL_LENGTH ? v.trim() : undefined;
}

/** A Unix epoch timestamp in seconds, or in milliseconds (from 1973 on, ms values exceed any seconds value). */
function epoch(v: unknown): string | undefined {
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined;
  const ms = n < 1e11 ? n * 1000 : n;
  return ms <= 8.64e15 ? new Date(ms).toISOString() : undefined;
}

/** An FDC3 context (`{type, name, id: {ticker: …}}`) in a line: `fdc3.instrument "Tesla, inc." (ticker: TSLA)`. */
function fdc3Context(v: unknown): string | undefined {
  if (!isRecord(v)) return undefined;
  const ids = isRecord(v['id'])
    ? Object.entries(v['id']).flatMap(([k, x]) =>
        typeof x === 'string' || typeof x === 'number' ? [`${short(k)}: ${short(String(x))}`] : [],
      )
    : [];
  const name = str(v['name']);
  const text = [str(v['type']), name === undefined ? undefined : `"${name}"`, ids.length ? `(${ids.join(', ')})` : '']
    .filter(Boolean)
    .join(' ');
  return text ? short(text) : undefined;
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
  // Standard entities (symphony-api.md §6, DevDocs standard-entities.md): image and video (`format`
  // youtube|vimeo, `url`, `id`), article and FDC3 action buttons.
  if (/^com\.symphony\.media\.(image|video)$/.test(type)) {
    const link = url(entity['url']) ?? url(data?.['url']);
    const format = str(entity['format']) ?? str(data?.['format']);
    const videoId = str(entity['id']) ?? str(data?.['id']);
    return type.endsWith('image')
      ? { kind: 'media', media: 'image', ...(link ? { url: link } : {}) }
      : {
          kind: 'media',
          media: 'video',
          ...(link ? { url: link } : {}),
          ...(format ? { format } : {}),
          ...(videoId ? { videoId } : {}),
        };
  }
  if (/article/i.test(type)) {
    const field = (k: string): unknown => entity[k] ?? data?.[k];
    const info: ArticleInfo = { kind: 'article' };
    for (const k of ['title', 'subTitle', 'blurb', 'publisher', 'author'] as const) {
      const v = str(field(k));
      if (v !== undefined) info[k] = v;
    }
    const date = epoch(field('date'));
    if (date !== undefined) info.date = date;
    const thumbnail = url(field('thumbnail'));
    if (thumbnail !== undefined) info.thumbnail = thumbnail;
    const href = url(field('href'));
    if (href !== undefined) info.href = href;
    const articleId = str(field('id'));
    if (articleId !== undefined) info.articleId = articleId;
    return info;
  }
  if (type === FDC3_ACTION_TYPE) {
    const action = isRecord(entity['actionData']) ? entity['actionData'] : undefined;
    const label = str(entity['label']);
    const intent = str(action?.['intent']);
    const context = fdc3Context(action?.['context']);
    return {
      kind: 'action',
      ...(label ? { label } : {}),
      ...(intent ? { intent } : {}),
      ...(context ? { context } : {}),
    };
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

/**
 * `$IBM` plus the enhanced fields, e.g. `$IBM (Name: International Business Machines; ISIN: US4592001014)`; the
 * ticker too when the visible text names another (the span's text is free, the entity is what was tagged).
 */
export function cashtagText(visible: string, info: Extract<EntityInfo, { kind: 'cashtag' }>): string {
  const main = visible || (info.ticker === undefined ? 'security' : `$${info.ticker}`);
  const differs =
    visible !== '' &&
    info.ticker !== undefined &&
    visible.replace(/^\$/, '').toLowerCase() !== info.ticker.toLowerCase();
  const fields = differs ? [{ label: 'Ticker', value: info.ticker! }, ...info.fields] : info.fields;
  if (fields.length === 0) return main;
  return `${main} (${fields.map((f) => `${f.label}: ${f.value}`).join('; ')})`;
}

/** `#rates`, or the visible text with the tagged keyword when they differ. */
export function hashtagText(visible: string, value: string): string {
  if (!visible) return `#${value}`;
  return visible.replace(/^#/, '').toLowerCase() === value.replace(/^#/, '').toLowerCase()
    ? visible
    : `${visible} (hashtag: #${value.replace(/^#/, '')})`;
}

/** An FDC3 action button (symphony-api.md §6 `fdc3.entity.action`): what it is labelled and what it raises. */
export function actionText(info: Extract<EntityInfo, { kind: 'action' }>): string {
  const what = [info.intent ? `raises intent ${info.intent}` : '', info.context ? `with ${info.context}` : '']
    .filter(Boolean)
    .join(' ');
  return `[Action button${info.label ? ` "${info.label}"` : ''}${what ? `: ${what}` : ''}]`;
}
