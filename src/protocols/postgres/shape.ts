/**
 * The shape of a simple SQL statement: its text with letter case folded, whitespace runs made one
 * space and each literal replaced by a placeholder naming its class. Two statements of the same
 * shape differ only in their literal values, which is what lets classify.ts reuse one parse for
 * both (see ShapeCache there).
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 *
 * The lexer is deliberately narrow: it accepts only text whose tokens it can read exactly as
 * PostgreSQL's scanner does, and gives up (undefined: the statement is parsed as usual) on
 * anything else — comments, quoted identifiers, backslashes, dollar quotes, prefixed strings
 * (E'', U&'', B'', X'', N''), adjacent string literals (which PostgreSQL joins across a newline),
 * numbers in any but plain decimal form, non-ASCII text, and more than one statement.
 */

/** Literal classes: the parser represents the values of one class with one tree structure. */
export type LiteralClass =
  | 'int' // 1 .. 2147483647: an integer constant
  | 'zero' // 0: an integer constant the tree prints without a value
  | 'big' // larger integers: kept as numeric text
  | 'dec' // with a decimal point: kept as numeric text
  | 'str' // a non-empty string
  | 'empty'; // '': a string the tree prints without a value

export interface Literal {
  readonly cls: LiteralClass;
  /** The value as the parse tree holds it: digits as written, or the unescaped string. */
  readonly value: string;
  /** Offsets of the literal's source text. */
  readonly start: number;
  readonly end: number;
}

export interface Shape {
  readonly key: string;
  readonly literals: readonly Literal[];
}

/** Longer texts are parsed as usual: the cache stays small (at most MAX_SHAPES short keys). */
const MAX_LENGTH = 2048;
const INT32_MAX = 2147483647n;

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12;
}

export function shapeOf(sql: string): Shape | undefined {
  const n = sql.length;
  if (n === 0 || n > MAX_LENGTH) return undefined;
  let key = '';
  const literals: Literal[] = [];
  let i = 0;
  let space = false;
  let ended = false;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c >= 0x80 || (c < 0x20 && !isSpace(c))) return undefined;
    if (isSpace(c)) {
      space = true;
      i++;
      continue;
    }
    if (ended) return undefined; // something after the terminating semicolon
    if (space && key.length > 0) key += ' ';
    space = false;
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentChar(sql.charCodeAt(j))) j++;
      const next = sql.charCodeAt(j);
      // A prefix (E'', B'', X'', N'', U&'') or an identifier with `$` in it.
      if (next === 39 || next === 36 || next === 38) return undefined;
      key += sql.slice(i, j).toLowerCase();
      i = j;
      continue;
    }
    if (isDigit(c)) {
      const prev = i > 0 ? sql.charCodeAt(i - 1) : 32;
      if (prev === 46) return undefined; // .5 and a.1
      let j = i + 1;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      let dec = false;
      if (sql.charCodeAt(j) === 46) {
        if (!isDigit(sql.charCodeAt(j + 1))) return undefined; // 1. and 1..2
        dec = true;
        j++;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
      }
      const next = j < n ? sql.charCodeAt(j) : 32;
      // Exponents, 0x/0o/0b, 1_000, trailing junk, and another dot all read differently.
      if (isIdentChar(next) || next === 46 || next === 39 || next === 36 || next === 34) return undefined;
      const text = sql.slice(i, j);
      // Leading zeros: the tree holds the value, not the text.
      if (text.length > 1 && text.charCodeAt(0) === 48 && text.charCodeAt(1) !== 46) return undefined;
      let cls: LiteralClass;
      if (dec) cls = 'dec';
      else if (text === '0') cls = 'zero';
      else cls = BigInt(text) <= INT32_MAX ? 'int' : 'big';
      literals.push({ cls, value: text, start: i, end: j });
      key += `?${cls}`;
      i = j;
      continue;
    }
    if (c === 39) {
      let j = i + 1;
      let value = '';
      for (;;) {
        if (j >= n) return undefined; // unterminated
        const d = sql.charCodeAt(j);
        if (d === 39) {
          if (sql.charCodeAt(j + 1) === 39) {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        if (d === 92 || d >= 0x80 || (d < 0x20 && !isSpace(d))) return undefined;
        value += sql[j];
        j++;
      }
      j++; // closing quote
      // 'a'<newline>'b' is one literal to PostgreSQL; 'a' 'b' is an error: never shape either.
      let k = j;
      while (k < n && isSpace(sql.charCodeAt(k))) k++;
      if (sql.charCodeAt(k) === 39) return undefined;
      const cls: LiteralClass = value === '' ? 'empty' : 'str';
      literals.push({ cls, value, start: i, end: j });
      key += `?${cls}`;
      i = j;
      continue;
    }
    if (c === 36) {
      // $1 parameters; anything else with $ (dollar quotes) is not shaped.
      let j = i + 1;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      if (j === i + 1 || (j < n && (isIdentChar(sql.charCodeAt(j)) || sql.charCodeAt(j) === 36)))
        return undefined;
      key += sql.slice(i, j);
      i = j;
      continue;
    }
    if (c === 92 || c === 34) return undefined; // backslash, quoted identifier
    if (c === 45 && sql.charCodeAt(i + 1) === 45) return undefined; // -- comment
    if (c === 47 && sql.charCodeAt(i + 1) === 42) return undefined; // /* comment
    if (c === 59) ended = true;
    key += sql[i];
    i++;
  }
  return key.length > 0 ? { key, literals } : undefined;
}

/** The text libpg_query gives a lone statement: from its first token to before `;` or the end. */
export function statementText(sql: string): string {
  let start = 0;
  while (start < sql.length && isSpace(sql.charCodeAt(start))) start++;
  let end = sql.length;
  let k = end - 1;
  while (k >= start && isSpace(sql.charCodeAt(k))) k--;
  if (k >= start && sql.charCodeAt(k) === 59) end = k;
  return sql.slice(start, end);
}
