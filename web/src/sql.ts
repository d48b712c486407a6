/**
 * A small SQL tokenizer for highlighting only (never for deciding anything): it splits text
 * into keywords, strings, comments, numbers, identifiers and the rest, so that the
 * concatenated token texts are always exactly the input. Unterminated strings and comments run
 * to the end, the way PostgreSQL would read them. PostgreSQL lexical rules:
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */

export type TokenType = 'keyword' | 'string' | 'comment' | 'number' | 'ident' | 'param' | 'punct' | 'space';

export interface Token {
  readonly type: TokenType;
  readonly text: string;
}

const KEYWORDS = new Set(
  `abort add all alter analyze and any array as asc begin between by call cascade case cast check
checkpoint close cluster collate column comment commit concurrently constraint copy create cross current
cursor database deallocate declare default deferrable delete desc discard distinct do drop else end
except execute exists explain extension false fetch filter for foreign from full function grant group
having if ilike in index inherit inner insert intersect into is join key language lateral left like
limit listen lock materialized merge move natural not notify null nulls of offset on only or order
outer over owner partition password policy prepare primary privileges procedure publication reassign
recursive references refresh reindex release rename replace reset restart restrict returning revoke
right role rollback row rows rule savepoint schema security select sequence session set show similar
some start subscription system table tablespace temp temporary then to transaction trigger true
truncate type union unique unlisten update user using vacuum values view when where window with
without`.split(/\s+/),
);

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isWordStart = (c: string | undefined) => c !== undefined && /[A-Za-z_\u0080-\uffff]/.test(c);
const isWord = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** End (exclusive) of a quoted run starting at `start` (the opening quote). */
function quoted(s: string, start: number, quote: string, backslash: boolean): number {
  let i = start + 1;
  while (i < s.length) {
    const c = s[i];
    if (backslash && c === '\\') {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (s[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return s.length;
}

export function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const push = (type: TokenType, end: number) => {
    const last = out[out.length - 1];
    const text = s.slice(i, end);
    // Merge neighbours of the same plain type so long inputs make fewer nodes.
    if (last && last.type === type && (type === 'space' || type === 'punct'))
      out[out.length - 1] = { type, text: last.text + text };
    else out.push({ type, text });
    i = end;
  };
  while (i < s.length) {
    const c = s[i]!;
    const next = s[i + 1];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      let j = i + 1;
      while (j < s.length && /[ \t\n\r\f]/.test(s[j]!)) j++;
      push('space', j);
    } else if (c === '-' && next === '-') {
      let j = i + 2;
      while (j < s.length && s[j] !== '\n' && s[j] !== '\r') j++;
      push('comment', j);
    } else if (c === '/' && next === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      let j = i + 2;
      while (j < s.length && depth > 0) {
        if (s[j] === '/' && s[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (s[j] === '*' && s[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      push('comment', j);
    } else if (c === "'") {
      push('string', quoted(s, i, "'", false));
    } else if ((c === 'E' || c === 'e') && next === "'") {
      push('string', quoted(s, i + 1, "'", true));
    } else if ((c === 'B' || c === 'b' || c === 'X' || c === 'x' || c === 'N' || c === 'n') && next === "'") {
      push('string', quoted(s, i + 1, "'", false));
    } else if ((c === 'U' || c === 'u') && next === '&' && s[i + 2] === "'") {
      push('string', quoted(s, i + 2, "'", false));
    } else if (c === '"') {
      push('ident', quoted(s, i, '"', false));
    } else if (c === '$') {
      if (isDigit(next)) {
        let j = i + 1;
        while (isDigit(s[j])) j++;
        push('param', j);
      } else {
        const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(s.slice(i, i + 200));
        if (m) {
          const tag = m[0];
          const close = s.indexOf(tag, i + tag.length);
          push('string', close < 0 ? s.length : close + tag.length);
        } else push('punct', i + 1);
      }
    } else if (isDigit(c) || (c === '.' && isDigit(next))) {
      const m =
        /^(?:0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?\.?)/.exec(
          s.slice(i, i + 400),
        );
      push('number', i + Math.max(1, m ? m[0].length : 1));
    } else if (isWordStart(c)) {
      let j = i + 1;
      while (isWord(s[j])) j++;
      push(KEYWORDS.has(s.slice(i, j).toLowerCase()) ? 'keyword' : 'ident', j);
    } else {
      push('punct', i + 1);
    }
  }
  return out;
}
