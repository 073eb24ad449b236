/**
 * The text/plain rendering model: a line buffer that collapses HTML white space, keeps paragraphs apart
 * with one blank line, and lays tables out as aligned columns (symphony-api.md §6 "Plain-text conversion").
 */

/** A line buffer with HTML white-space rules (runs collapse outside `pre`) and paragraph gaps. */
export class TextOut {
  readonly #lines: string[] = [];
  #cur = '';
  #gap = false;

  /** Inline text: white space runs become one space, none at the start of a line. */
  inline(value: string): void {
    let s = value.replace(/\s+/g, ' ');
    if (this.#cur === '' || this.#cur.endsWith(' ')) s = s.replace(/^ /, '');
    if (s === '') return;
    this.#beforeContent();
    this.#cur += s;
  }

  /** Preformatted text: kept as is, line breaks included. */
  pre(value: string): void {
    const parts = value.replace(/\r\n?/g, '\n').split('\n');
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) this.br();
      if (parts[i]) {
        this.#beforeContent();
        this.#cur += parts[i];
      }
    }
  }

  /** `<br>`: ends the current line, even an empty one. */
  br(): void {
    this.#beforeContent();
    this.#lines.push(this.#cur);
    this.#cur = '';
  }

  /** Starts a new line unless already at the start of one. */
  block(): void {
    if (this.#cur.trim() !== '') {
      this.#lines.push(this.#cur);
      this.#cur = '';
    } else this.#cur = '';
  }

  /** A paragraph boundary: a new line, and one blank line before whatever comes next. */
  para(): void {
    this.block();
    if (this.#lines.length > 0) this.#gap = true;
  }

  /** Whole lines rendered elsewhere (list items, table rows, quotes), each written verbatim. */
  lines(lines: readonly string[]): void {
    this.block();
    for (const line of lines) {
      this.#beforeContent();
      this.#lines.push(line);
    }
  }

  #beforeContent(): void {
    if (this.#gap) {
      this.#gap = false;
      if (this.#lines.length > 0 && this.#lines[this.#lines.length - 1] !== '') this.#lines.push('');
    }
  }

  /** The lines without trailing white space, leading and trailing blank lines, or runs of blank lines. */
  toLines(): string[] {
    const all = this.#cur === '' ? this.#lines : [...this.#lines, this.#cur];
    const out: string[] = [];
    for (const raw of all) {
      const line = raw.replace(/[ \t]+$/, '');
      if (line === '' && (out.length === 0 || out[out.length - 1] === '')) continue;
      out.push(line);
    }
    while (out.length > 0 && out[out.length - 1] === '') out.pop();
    return out;
  }

  toString(): string {
    return this.toLines().join('\n');
  }
}

/**
 * Display width in a monospaced font: East Asian wide and fullwidth characters and most emoji take two
 * columns, combining marks and zero-width characters none (a cheap approximation of UAX #11).
 */
export function displayWidth(value: string): number {
  let width = 0;
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x200b && c <= 0x200f) || (c >= 0xfe00 && c <= 0xfe0f) || c === 0x20e3) {
      continue;
    }
    if (
      (c >= 0x1100 && c <= 0x115f) ||
      (c >= 0x2e80 && c <= 0xa4cf) ||
      (c >= 0xac00 && c <= 0xd7a3) ||
      (c >= 0xf900 && c <= 0xfaff) ||
      (c >= 0xfe30 && c <= 0xfe4f) ||
      (c >= 0xff00 && c <= 0xff60) ||
      (c >= 0xffe0 && c <= 0xffe6) ||
      (c >= 0x1f300 && c <= 0x1faff) ||
      (c >= 0x20000 && c <= 0x3fffd)
    ) {
      width += 2;
    } else width += 1;
  }
  return width;
}

export interface TextCell {
  text: string;
  colspan: number;
  rowspan: number;
}

export interface TextRow {
  cells: TextCell[];
  /** A header row (`thead`, or only `th` cells): a rule is drawn under the last one. */
  header: boolean;
}

/** Cells wider than this still show in full; they only stop widening their column for the other rows. */
const MAX_COLUMN_WIDTH = 40;

/** A grid slot: the start of a cell spanning `span` columns, or a slot covered by a span (`null`). */
type Slot = { text: string; span: number } | null;

/**
 * Lays a table out as aligned columns separated by ` | `, with a `-+-` rule under the header rows. A cell
 * spanning columns is as wide as the columns it covers; a cell spanning rows leaves its slots below empty,
 * so later cells stay in their column.
 */
export function layoutTable(rows: readonly TextRow[]): string[] {
  const grid: Slot[][] = [];
  const pendingRowspan: number[] = [];
  for (const row of rows) {
    const line: Slot[] = [];
    let col = 0;
    const skipSpanned = (): void => {
      while ((pendingRowspan[col] ?? 0) > 0) {
        pendingRowspan[col]! -= 1;
        line[col] = { text: '', span: 1 };
        col += 1;
      }
    };
    for (const cell of row.cells) {
      skipSpanned();
      line[col] = { text: cell.text, span: cell.colspan };
      for (let k = 0; k < cell.colspan; k++) {
        if (k > 0) line[col + k] = null;
        if (cell.rowspan > 1) pendingRowspan[col + k] = cell.rowspan - 1;
      }
      col += cell.colspan;
    }
    skipSpanned();
    for (let c = col; c < pendingRowspan.length; c++) {
      if ((pendingRowspan[c] ?? 0) > 0) {
        pendingRowspan[c]! -= 1;
        line[c] = { text: '', span: 1 };
      }
    }
    grid.push(Array.from(line, (v) => (v === undefined ? { text: '', span: 1 } : v)));
  }
  const columns = grid.reduce((n, r) => Math.max(n, r.length), 0);
  if (columns === 0) return [];
  const widths = new Array<number>(columns).fill(0);
  for (const r of grid) {
    r.forEach((slot, c) => {
      if (slot && slot.span === 1)
        widths[c] = Math.max(widths[c]!, Math.min(displayWidth(slot.text), MAX_COLUMN_WIDTH));
    });
  }
  const spanWidth = (c: number, span: number): number => {
    let w = 3 * (span - 1);
    for (let k = c; k < Math.min(c + span, columns); k++) w += widths[k]!;
    return w;
  };
  for (const r of grid) {
    r.forEach((slot, c) => {
      if (!slot || slot.span === 1) return;
      const last = Math.min(c + slot.span, columns) - 1;
      const missing = Math.min(displayWidth(slot.text), MAX_COLUMN_WIDTH * slot.span) - spanWidth(c, slot.span);
      if (missing > 0) widths[last]! += missing;
    });
  }
  const lastHeader = rows.map((r) => r.header).lastIndexOf(true);
  const out: string[] = [];
  grid.forEach((r, i) => {
    const cells: string[] = [];
    for (let c = 0; c < columns; c++) {
      const slot = r[c] === undefined ? { text: '', span: 1 } : r[c];
      if (slot === null) continue;
      const span = Math.min(slot!.span, columns - c);
      cells.push(slot!.text + ' '.repeat(Math.max(0, spanWidth(c, span) - displayWidth(slot!.text))));
    }
    out.push(cells.join(' | ').replace(/\s+$/, ''));
    if (i === lastHeader && i < grid.length - 1) out.push(widths.map((w) => '-'.repeat(Math.max(w, 1))).join('-+-'));
  });
  return out;
}
