/**
 * One row of COPY TO output in text or CSV format, split into fields and put back together, so
 * single fields can be masked while every other byte stays as the server wrote it.
 * https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2 (text format)
 * https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.3 (CSV format)
 *
 * A field keeps its raw text (exactly as sent) and its decoded value; only fields whose value
 * changes are written anew, with the escaping the server itself would use (text: backslash
 * escapes; CSV: always quoted, which every reader of CSV accepts).
 */
import type { CopyFormat } from './lineage.ts';

export interface CopyField {
  readonly raw: string;
  /** Decoded value; null for SQL NULL. */
  readonly value: string | null;
}

/**
 * Splits a row (without its line ending). Throws on text it cannot split exactly (an unclosed
 * quote): the caller must not send such a row on unmasked.
 */
export function splitRow(line: string, f: CopyFormat): CopyField[] {
  return f.format === 'csv' ? splitCsv(line, f) : splitText(line, f);
}

export function joinRow(fields: readonly string[], f: CopyFormat): string {
  return fields.join(f.delimiter);
}

/** The raw field for a new value. */
export function encodeField(value: string, f: CopyFormat): string {
  if (f.format === 'csv') {
    let out = f.quote;
    for (const ch of value) {
      if (ch === f.quote || ch === f.escape) out += f.escape;
      out += ch;
    }
    return out + f.quote;
  }
  let out = '';
  for (const ch of value) {
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '\b':
        out += '\\b';
        break;
      case '\f':
        out += '\\f';
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      case '\v':
        out += '\\v';
        break;
      default:
        out += ch === f.delimiter ? `\\${ch}` : ch;
    }
  }
  return out;
}

function splitText(line: string, f: CopyFormat): CopyField[] {
  const out: CopyField[] = [];
  let start = 0;
  let value = '';
  for (let i = 0; i <= line.length; i++) {
    const ch = line[i];
    if (i === line.length || ch === f.delimiter) {
      const raw = line.slice(start, i);
      out.push({ raw, value: raw === f.null ? null : value });
      start = i + 1;
      value = '';
      continue;
    }
    if (ch !== '\\') {
      value += ch;
      continue;
    }
    const next = line[++i];
    if (next === undefined) throw new Error('COPY text row ends in a lone backslash');
    const simple: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
    if (simple[next] !== undefined) value += simple[next];
    else if (next >= '0' && next <= '7') {
      let digits = next;
      while (digits.length < 3 && line[i + 1] !== undefined && line[i + 1]! >= '0' && line[i + 1]! <= '7')
        digits += line[++i];
      value += String.fromCharCode(Number.parseInt(digits, 8) & 0xff);
    } else if (next === 'x' && /[0-9a-fA-F]/.test(line[i + 1] ?? '')) {
      let digits = line[++i]!;
      if (/[0-9a-fA-F]/.test(line[i + 1] ?? '')) digits += line[++i];
      value += String.fromCharCode(Number.parseInt(digits, 16));
    } else value += next;
  }
  return out;
}

function splitCsv(line: string, f: CopyFormat): CopyField[] {
  const out: CopyField[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    let value = '';
    let quoted = false;
    while (i < line.length && line[i] !== f.delimiter) {
      if (line[i] === f.quote) {
        quoted = true;
        i++;
        for (;;) {
          if (i >= line.length) throw new Error('COPY CSV row has an unclosed quote');
          const ch = line[i]!;
          if (
            ch === f.escape &&
            (line[i + 1] === f.quote || line[i + 1] === f.escape) &&
            f.escape !== f.quote
          ) {
            value += line[i + 1];
            i += 2;
          } else if (ch === f.quote) {
            if (f.escape === f.quote && line[i + 1] === f.quote) {
              value += f.quote;
              i += 2;
            } else {
              i++;
              break;
            }
          } else {
            value += ch;
            i++;
          }
        }
      } else value += line[i++];
    }
    const raw = line.slice(start, i);
    out.push({ raw, value: !quoted && raw === f.null ? null : value });
    if (i >= line.length) return out;
    i++;
  }
}
