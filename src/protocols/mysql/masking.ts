/**
 * Masking of result rows for one session, in the text and the binary protocol.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_column_definition.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_row.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html
 *
 * The server names each result column's source (schema, original table, original column) in its
 * column definition, so column rules see through aliases without a catalog; for a view's column
 * it names the view, whose definition views.ts reads. How values change,
 * keeping every row valid for its declared column type:
 *  - a string-typed value a column rule covers, or in which a detector finds something, carries
 *    the masked text;
 *  - a number, date or time value cannot hold a masked form, so it is sent as NULL (when a column
 *    rule covers it, or a detector flags its text form).
 */
import type { SessionMasker } from '../../core/masking/masker.ts';
import { type MaskSpec, STRATEGY_RANK } from '../../core/masking/strategy.ts';
import { Cursor, lenencBytes, MysqlProtocolError } from './packets.ts';
import type { SourceLookup } from './views.ts';

interface Column {
  readonly type: number;
  readonly spec: MaskSpec | undefined;
  readonly stringy: boolean;
}

/** Column types whose values travel as length-encoded strings in the binary protocol. */
const LENENC_TYPES = new Set([
  0x00, 0x0f, 0x10, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
]);
/** Of those, the ones that hold text a masked form can replace (not DECIMAL or BIT). */
const STRING_TYPES = new Set([0x0f, 0xf5, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe]);

function fixedWidth(type: number): number | 'lenbyte' | undefined {
  switch (type) {
    case 0x01:
      return 1;
    case 0x02:
    case 0x0d:
      return 2;
    case 0x03:
    case 0x09:
    case 0x04:
      return 4;
    case 0x08:
    case 0x05:
      return 8;
    case 0x07:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0e:
      return 'lenbyte';
    case 0x06:
      return 0;
    default:
      return undefined;
  }
}

/**
 * What the statement in flight could compute from masked columns. The server names a source column
 * only for a plain column reference: `CONCAT(card_number, '')`, `MAX(card_number)`, a scalar
 * subquery or a derived table's column arrive without one (or naming the derived table). Such a
 * value is masked with `spec` whenever the statement names a masked column anywhere — more than
 * needed at times, never less.
 */
export interface Derivation {
  readonly spec: MaskSpec;
  /** The statement's tables, lower case without schema; a source outside them is derived too. */
  readonly tables: ReadonlySet<string>;
}

/** Schemas of the server's own catalog, which hold no views of user tables. */
const SYSTEM_SCHEMAS = new Set(['information_schema', 'performance_schema']);

function stricter(a: MaskSpec | undefined, b: MaskSpec | undefined): MaskSpec | undefined {
  if (!b) return a;
  return !a || STRATEGY_RANK[b.strategy] > STRATEGY_RANK[a.strategy] ? b : a;
}

const IDENTIFIER = /`((?:[^`]|``)+)`|[A-Za-z_$][A-Za-z0-9_$]*/g;

/**
 * The strictest column mask any name in `texts` could stand for (every word and backquoted name
 * is taken as a possible column name), with the tables the statement reads.
 */
export function derivation(
  masker: SessionMasker,
  texts: readonly string[],
  tables: readonly string[],
): Derivation | undefined {
  if (!masker.hasColumns) return undefined;
  let spec: MaskSpec | undefined;
  const seen = new Set<string>();
  for (const text of texts)
    for (const m of text.matchAll(IDENTIFIER)) {
      const raw = m[1] !== undefined ? m[1].replaceAll('``', '`') : m[0];
      if (seen.has(raw)) continue;
      seen.add(raw);
      // Column names are case-insensitive to the server; rules are matched as written and in lower case.
      for (const name of [raw, raw.toLowerCase()]) {
        const s = masker.columnByName(name);
        if (s && (!spec || STRATEGY_RANK[s.strategy] > STRATEGY_RANK[spec.strategy])) spec = s;
      }
    }
  if (!spec) return undefined;
  const names = new Set<string>();
  for (const t of tables) names.add(t.split('.').pop()!.replaceAll('`', '').toLowerCase());
  return { spec, tables: names };
}

export class RowMasker {
  #columns: Column[] = [];
  readonly #masker: SessionMasker;
  #derivation: Derivation | undefined;
  readonly #sources: SourceLookup | undefined;

  /** `sources` tells views from tables (views.ts); without it every named source is taken as a table. */
  constructor(masker: SessionMasker, sources?: SourceLookup) {
    this.#masker = masker;
    this.#sources = sources;
  }

  /** A new result set starts. */
  reset(): void {
    this.#columns = [];
  }

  /** The statement whose results come next (derivation() of its text), or undefined. */
  statement(d: Derivation | undefined): void {
    this.#derivation = d;
  }

  column(payload: Buffer): void {
    const c = new Cursor(payload, 'a column definition');
    const str = () => (c.lenencBytes() ?? Buffer.alloc(0)).toString('utf8');
    str(); // catalog
    const schema = str();
    const table = str();
    const orgTable = str();
    const name = str();
    const orgName = str();
    c.lenenc();
    c.u16(); // character set
    c.u32(); // length
    const type = c.u8();
    let spec = this.#masker.column({
      schema: schema || undefined,
      table: orgTable || table || undefined,
      column: orgName || undefined,
      output: name,
    });
    if (this.#sources && orgTable && !SYSTEM_SCHEMAS.has(schema.toLowerCase())) {
      // The server names a view as its columns' source: what the view reads decides the mask.
      const src = this.#sources.source(schema, orgTable, orgName || name);
      if (src.kind === 'unknown') spec = stricter(spec, this.#masker.strictestColumn);
      else if (src.kind === 'view') spec = stricter(spec, src.spec);
    }
    const d = this.#derivation;
    if (!spec && d && (!orgName || !orgTable || !d.tables.has(orgTable.toLowerCase()))) spec = d.spec;
    this.#columns.push({ type, spec, stringy: STRING_TYPES.has(type) });
  }

  /** The row with values masked, or undefined when nothing changed. */
  row(payload: Buffer, binary: boolean): Buffer | undefined {
    if (this.#columns.length === 0) return undefined;
    return binary ? this.#binaryRow(payload) : this.#textRow(payload);
  }

  #apply(col: Column, text: string): string | null | undefined {
    if (col.spec) return col.stringy ? this.#masker.mask(text, col.spec) : null;
    if (!this.#masker.hasDetectors) return undefined;
    const scanned = this.#masker.scan(text);
    if (scanned === text) return undefined;
    return col.stringy ? scanned : null;
  }

  #textRow(payload: Buffer): Buffer | undefined {
    const c = new Cursor(payload, 'a result row');
    const out: Buffer[] = [];
    let changed = false;
    for (const col of this.#columns) {
      const start = c.pos;
      const v = c.lenencBytes();
      if (v === null) {
        out.push(payload.subarray(start, c.pos));
        continue;
      }
      const next = this.#apply(col, v.toString('utf8'));
      if (next === undefined) out.push(payload.subarray(start, c.pos));
      else {
        changed = true;
        out.push(next === null ? Buffer.from([0xfb]) : lenencBytes(Buffer.from(next, 'utf8')));
      }
    }
    if (c.remaining > 0) throw new MysqlProtocolError('a result row is longer than its columns');
    return changed ? Buffer.concat(out) : undefined;
  }

  #binaryRow(payload: Buffer): Buffer | undefined {
    const n = this.#columns.length;
    const c = new Cursor(payload, 'a binary result row');
    c.u8();
    const bitmap = Buffer.from(c.bytes(Math.floor((n + 7 + 2) / 8)));
    const out: Buffer[] = [];
    let changed = false;
    for (let i = 0; i < n; i++) {
      const bit = i + 2;
      if (bitmap[bit >> 3]! & (1 << (bit & 7))) continue;
      const col = this.#columns[i]!;
      const start = c.pos;
      let text: string | undefined;
      if (LENENC_TYPES.has(col.type)) text = (c.lenencBytes() ?? Buffer.alloc(0)).toString('utf8');
      else {
        const w = fixedWidth(col.type);
        if (w === undefined)
          throw new MysqlProtocolError(
            `a binary row has a column of unknown type 0x${col.type.toString(16)}`,
          );
        const raw = c.bytes(w === 'lenbyte' ? c.u8() : w);
        text = numberText(col.type, raw);
      }
      const next = text === undefined ? undefined : this.#apply(col, text);
      if (next === undefined) out.push(payload.subarray(start, c.pos));
      else if (next === null) {
        changed = true;
        bitmap[bit >> 3]! |= 1 << (bit & 7);
      } else {
        changed = true;
        out.push(lenencBytes(Buffer.from(next, 'utf8')));
      }
    }
    if (c.remaining > 0) throw new MysqlProtocolError('a binary result row is longer than its columns');
    return changed ? Buffer.concat([Buffer.from([0]), bitmap, ...out]) : undefined;
  }
}

/** The text of an integer or float value (what a detector would see); dates and times have none. */
function numberText(type: number, raw: Buffer): string | undefined {
  switch (type) {
    case 0x01:
      return String(raw.readInt8(0));
    case 0x02:
    case 0x0d:
      return String(raw.readInt16LE(0));
    case 0x03:
    case 0x09:
      return String(raw.readInt32LE(0));
    case 0x08:
      return raw.readBigInt64LE(0).toString();
    case 0x04:
      return String(raw.readFloatLE(0));
    case 0x05:
      return String(raw.readDoubleLE(0));
    default:
      return undefined;
  }
}
