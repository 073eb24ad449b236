/**
 * The slice of OData v4 `$filter` the archiver uses against Outlook resources: `prop eq 'literal'` and the
 * extended-property lambda of https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get. Anything
 * else is refused the way Exchange refuses an unsupported filter (400 `ErrorInvalidUrlQueryFilter`).
 */
export type Filter =
  { kind: 'eq'; property: string; value: string } | { kind: 'extendedProperty'; id: string; value: string };

/** OData string literal: single quotes, a quote inside doubled (OData ABNF `SQUOTE-in-string`). */
const LITERAL = "'((?:[^']|'')*)'";
const unquote = (s: string): string => s.replace(/''/g, "'");

const EQ = new RegExp(`^\\s*([A-Za-z][A-Za-z0-9]*)\\s+eq\\s+${LITERAL}\\s*$`);
const EXT = new RegExp(
  `^\\s*singleValueExtendedProperties/any\\(\\s*(\\w+)\\s*:\\s*\\1/id\\s+eq\\s+${LITERAL}\\s+and\\s+\\1/value\\s+eq\\s+${LITERAL}\\s*\\)\\s*$`,
  'i',
);

export function parseFilter(text: string): Filter | undefined {
  const ext = EXT.exec(text);
  if (ext) return { kind: 'extendedProperty', id: unquote(ext[2] as string), value: unquote(ext[3] as string) };
  const eq = EQ.exec(text);
  if (eq) return { kind: 'eq', property: eq[1] as string, value: unquote(eq[2] as string) };
  return undefined;
}

export function parseSelect(text: string | null): string[] | undefined {
  if (text === null || text.trim() === '') return undefined;
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Keeps the selected properties; Graph always returns `id` and the OData annotations whatever `$select` says. */
export function project(entity: Record<string, unknown>, select: string[] | undefined): Record<string, unknown> {
  if (!select) return entity;
  const wanted = new Set(select.map((s) => s.toLowerCase()));
  return Object.fromEntries(
    Object.entries(entity).filter(([k]) => k.startsWith('@odata.') || k === 'id' || wanted.has(k.toLowerCase())),
  );
}
