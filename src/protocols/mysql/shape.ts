/**
 * The shape cache: statements that differ only in their literal values (`... WHERE id = 7` and
 * `... WHERE id = 8`) share one parse. Parsing is the expensive part of classification, and an
 * application sends the same few statement shapes with new values all day.
 * https://dev.mysql.com/doc/refman/8.0/en/literals.html
 *
 * The key is the statement's tokens as our lexer reads them (the server's comment and quoting
 * rules, see lexer.ts), exact in case, with plain literals replaced by their class:
 *  - `'...'` strings (double-quoted ones are identifiers under ANSI_QUOTES, so they stay in the
 *    key), non-empty and empty apart;
 *  - plain decimal integers of up to 9 digits without a leading zero (`0x1f`, `1e5`, `007` and
 *    long numbers stay in the key).
 * Only one plain SELECT, INSERT, UPDATE, DELETE or REPLACE is reused: these are classified from
 * their tree, where a literal's value never decides the kind, the tables or the functions. Even
 * so, a shape is reused only after the same statement with other values in every literal has
 * classified exactly alike; otherwise the shape is remembered as not reusable. The identity
 * (`normalized`) and each part's text are always built from the caller's own text.
 */

import { TextCache } from '../../core/text-cache.ts';
import {
  type ClassifiedSql,
  type ClassifyOptions,
  classifySql,
  identity,
  type MysqlPart,
} from './classify.ts';
import { type LexedStatement, lexStatements, normalizeTokens, type Token } from './lexer.ts';

/** Longer texts are classified as usual, so the cache holds short keys only. */
const MAX_LENGTH = 4096;
const REUSABLE = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'ReplaceStmt']);
const FIRST_WORDS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE']);
const PLAIN_INT = /^[1-9][0-9]{0,8}$/;

type Facts = Omit<MysqlPart, 'text'>;

/** Shape key → what a statement of that shape classifies as, or null: never reused. */
const shapes = new TextCache<Facts | null>(2000);

type LiteralClass = 'int' | 'zero' | 'str' | 'empty';

function literalClass(t: Token): LiteralClass | undefined {
  if (t.type === 'number') return t.text === '0' ? 'zero' : PLAIN_INT.test(t.text) ? 'int' : undefined;
  if (t.type === 'string' && t.text.startsWith("'")) return t.value === '' ? 'empty' : 'str';
  return undefined;
}

export interface Shape {
  readonly key: string;
  readonly statement: LexedStatement;
}

/** The shape of a text that holds one statement the cache may reuse, or undefined. */
export function shapeOf(sql: string, opts: ClassifyOptions = {}): Shape | undefined {
  if (sql.length === 0 || sql.length > MAX_LENGTH || sql.includes('\0')) return undefined;
  const statements = lexStatements(sql);
  if (statements.length !== 1) return undefined;
  const s = statements[0]!;
  if (s.problem || s.tokens.length === 0) return undefined;
  const first = s.tokens[0]!;
  if (first.type !== 'word' || !FIRST_WORDS.has(first.text.toUpperCase())) return undefined;
  let key = `${opts.database ?? ''}\u0000`;
  for (const t of s.tokens) {
    // Executable comments: kept out of the cache altogether.
    if (t.type === 'exec-open' || t.type === 'exec-close') return undefined;
    const cls = literalClass(t);
    key += cls === undefined ? `${t.type[0]}${t.text}\u0001` : `?${cls}\u0001`;
  }
  return { key, statement: s };
}

function factsOf(p: MysqlPart): Facts {
  const { text: _text, ...facts } = p;
  return facts;
}

/** The same statement with every literal given another value of its class. */
function otherValues(s: LexedStatement): string {
  let out = '';
  s.tokens.forEach((t, i) => {
    const cls = literalClass(t);
    const text =
      cls === 'int'
        ? String(((Number(t.text) + 7919 * (i + 1)) % 999_999_937) + 1)
        : cls === 'str'
          ? `'zq${i}k${t.text.length}zq'`
          : t.text;
    // `a.b` and `1.5` stay joined; everything else is spaced apart as tokens.
    const joined = i === 0 || t.text === '.' || s.tokens[i - 1]!.text === '.';
    out += joined ? text : ` ${text}`;
  });
  return out;
}

/** What a fresh classification of this shape may be reused as, or null. */
function templateOf(shape: Shape, fresh: ClassifiedSql, opts: ClassifyOptions): Facts | null {
  if (fresh.empty || fresh.parts.length !== 1) return null;
  const part = fresh.parts[0]!;
  if (!REUSABLE.has(part.statement) || part.prepares || part.executes || part.localInfile) return null;
  const other = classifySql(otherValues(shape.statement), opts);
  if (other.parts.length !== 1) return null;
  const facts = factsOf(part);
  return JSON.stringify(factsOf(other.parts[0]!)) === JSON.stringify(facts) ? facts : null;
}

/**
 * classifySql with the shape cache: the same result as classifySql(sql, opts), checked when a
 * shape is first seen and by property tests (shape.test.ts).
 */
export function classifyShaped(sql: string, opts: ClassifyOptions = {}): ClassifiedSql {
  const key = exactKey(sql, opts);
  const hit = exact.get(key);
  if (hit) return hit;
  const shape = shapeOf(sql, opts);
  let result: ClassifiedSql;
  let templated = false;
  const cached = shape && shapes.get(shape.key);
  if (shape && cached) {
    const part: MysqlPart = { ...cached, text: shape.statement.text };
    result = { parts: [part], normalized: identityOf(shape.statement), empty: false };
    templated = true;
  } else {
    result = classifySql(sql, opts);
    if (shape && cached === undefined) {
      const template = templateOf(shape, result, opts);
      shapes.set(shape.key, template);
      templated = template !== null;
    }
  }
  if (!templated || !shape || literalFree(shape.statement)) exact.set(key, result);
  return result;
}

/**
 * Exact texts are kept for the whole process, keyed with the connection's database (the only
 * other thing a classification depends on): statements no shape template serves (BEGIN, COMMIT,
 * SET, DDL, ...) and statements without literal values (placeholders), which come back with the
 * same text again and again from every session. Statements with literal values are not kept:
 * their values make most texts unique, the template serves them, and a cache of texts that
 * never come back only holds garbage long enough to be promoted into the old generation.
 */
const exact = new TextCache<ClassifiedSql>(2000, MAX_LENGTH);

function exactKey(sql: string, opts: ClassifyOptions): string {
  return `${opts.database ?? ''}\0${sql}`;
}

function literalFree(s: LexedStatement): boolean {
  for (const t of s.tokens) if (literalClass(t) !== undefined) return false;
  return true;
}

/** Whether a shape is cached as reusable (tests). */
export function shapeReusable(sql: string, opts: ClassifyOptions = {}): boolean {
  const shape = shapeOf(sql, opts);
  return shape !== undefined && Boolean(shapes.get(shape.key));
}

function identityOf(s: LexedStatement): string {
  // Exactly what classifySql gives a one-statement text.
  return identity(normalizeTokens([s]));
}
