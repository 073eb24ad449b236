/**
 * Just enough RFC 5322 / RFC 2047 reading for the emulator to fill a message resource from imported MIME: the top
 * header block, encoded words in Subject and display names, and address lists. Deliberately separate from the
 * writer's parser, so a bug there cannot hide in the fake that tests it.
 */
export interface Recipient {
  emailAddress: { name: string; address: string };
}

export interface TopHeaders {
  /** Unfolded values by lower-case name, in order of appearance. */
  all: { name: string; value: string }[];
  get(name: string): string | undefined;
}

export function readTopHeaders(raw: Buffer): TopHeaders {
  let end = raw.indexOf('\r\n\r\n');
  let sep = 4;
  const lf = raw.indexOf('\n\n');
  if (end < 0 || (lf >= 0 && lf < end)) {
    end = lf;
    sep = 2;
  }
  const block = raw.subarray(0, end < 0 ? raw.length : end + sep).toString('latin1');
  const all: { name: string; value: string }[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && all.length > 0) {
      const last = all[all.length - 1] as { name: string; value: string };
      last.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) all.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() });
  }
  return {
    all,
    get: (name) => all.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value,
  };
}

function decodeText(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** RFC 2047 encoded words; adjacent words separated only by whitespace join without it (§6.2). */
export function decodeWords(value: string): string {
  const latin = Buffer.from(value, 'latin1');
  const text = decodeText(latin, 'utf-8').includes('\ufffd') ? value : decodeText(latin, 'utf-8');
  return text
    .replace(/(=\?[^?]+\?[bBqQ]\?[^?]*\?=)\s+(?==\?[^?]+\?[bBqQ]\?[^?]*\?=)/g, '$1')
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=/g, (_m, charset: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : Buffer.from(
              data
                .replace(/_/g, ' ')
                .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))),
              'latin1',
            );
      return decodeText(bytes, charset);
    });
}

/** `"Name" <a@b>, c@d, Group: e@f;` → recipients; good enough for the addresses the converter writes. */
export function parseAddresses(value: string | undefined): Recipient[] {
  if (!value) return [];
  const out: Recipient[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  const flush = (): void => {
    const part = current.trim();
    current = '';
    if (!part) return;
    const m = /^(.*?)<([^>]*)>\s*$/.exec(part);
    const name = m
      ? decodeWords(
          (m[1] as string)
            .trim()
            .replace(/^"(.*)"$/, '$1')
            .replace(/\\(.)/g, '$1'),
        )
      : '';
    const address = (m ? (m[2] as string) : part).trim();
    if (address.includes('@')) out.push({ emailAddress: { name: name || address, address } });
  };
  for (const ch of value) {
    if (ch === '"' && !angle) quoted = !quoted;
    else if (ch === '<' && !quoted) angle = true;
    else if (ch === '>' && !quoted) angle = false;
    if (!quoted && !angle && (ch === ',' || ch === ';')) {
      flush();
      continue;
    }
    if (!quoted && !angle && ch === ':') {
      current = '';
      continue;
    }
    current += ch;
  }
  flush();
  return out;
}
