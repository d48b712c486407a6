/**
 * Splits the text of a COM_QUERY into statements the way the MySQL/MariaDB server's lexer does,
 * and produces, per statement, the code a SQL parser should see.
 * https://dev.mysql.com/doc/refman/8.0/en/comments.html
 * https://mariadb.com/kb/en/comment-syntax/
 *
 * Why by hand: the server and a general-purpose SQL parser disagree on comments, and every
 * disagreement is a way to hide a statement. Here:
 *  - `/*! ... *\/`, `/*!50000 ... *\/` and MariaDB's `/*M! ... *\/` are executable comments: their
 *    content is code (whatever the version number; treating them as code can only add risk);
 *  - `#` starts a comment, and `--` only when followed by whitespace or a control character
 *    (`--1` is minus minus one), so `--` left in code is spaced apart before the parser sees it;
 *  - strings use backslash escapes and doubled quotes (the default sql_mode; statements that
 *    change sql_mode are classified `admin`); `` `...` `` quotes identifiers;
 *  - `;` outside quotes and comments ends a statement.
 * String literals whose contents carry escapes are replaced by a plain literal in the parser's
 * code, so the parser cannot read a string boundary differently from the server.
 */

export interface Token {
  readonly type: 'word' | 'string' | 'ident' | 'number' | 'punct' | 'variable' | 'exec-open' | 'exec-close';
  /** The exact source text. */
  readonly text: string;
  /** For strings: the decoded value. */
  readonly value?: string;
}

export interface LexedStatement {
  /** The statement as the caller wrote it (comments included, without the `;`). */
  readonly text: string;
  /** What the SQL parser gets: comments dropped, executable comments opened, literals made plain. */
  readonly code: string;
  readonly tokens: readonly Token[];
  /** Something the server would read differently from what we can show (see `problem`). */
  readonly problem?: string;
}

const WS = /[\s\x00-\x1f]/;

function isWordChar(c: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
}

/** Decodes a MySQL string literal body (between the quotes). */
function decodeString(body: string, quote: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) {
      const n = body[++i]!;
      const map: Record<string, string> = {
        '0': '\0',
        b: '\b',
        n: '\n',
        r: '\r',
        t: '\t',
        Z: '\x1a',
        "'": "'",
        '"': '"',
        '\\': '\\',
      };
      // \% and \_ keep their backslash (they are LIKE escapes); any other escaped char is itself.
      out += map[n] ?? (n === '%' || n === '_' ? `\\${n}` : n);
    } else if (c === quote && body[i + 1] === quote) {
      out += quote;
      i++;
    } else out += c;
  }
  return out;
}

export function lexStatements(sql: string): LexedStatement[] {
  const out: LexedStatement[] = [];
  let start = 0;
  let code = '';
  let tokens: Token[] = [];
  let problem: string | undefined;
  let inExec = false;
  const flush = (end: number) => {
    const text = sql.slice(start, end);
    if (tokens.length > 0 || problem) {
      out.push({ text: text.trim(), code: code.trim(), tokens, ...(problem ? { problem } : {}) });
    }
    code = '';
    tokens = [];
    problem = undefined;
  };
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const n = sql[i + 1];
    if (WS.test(c)) {
      code += ' ';
      i++;
      continue;
    }
    if (c === '#') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      code += ' ';
      continue;
    }
    if (c === '-' && n === '-' && (i + 2 >= sql.length || WS.test(sql[i + 2]!))) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      code += ' ';
      continue;
    }
    if (c === '/' && n === '*') {
      const exec = /^\/\*(M?!)(\d{5,6})?/.exec(sql.slice(i, i + 10));
      if (exec && !inExec) {
        inExec = true;
        tokens.push({ type: 'exec-open', text: exec[0] });
        code += ' ';
        i += exec[0].length;
        continue;
      }
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) {
        problem ??= 'an unterminated /* comment';
        i = sql.length;
        continue;
      }
      // Servers differ on where a comment inside an executable comment ends.
      if (inExec) problem ??= 'a comment nested in an executable comment';
      i = end + 2;
      code += ' ';
      continue;
    }
    if (c === '*' && n === '/' && inExec) {
      inExec = false;
      tokens.push({ type: 'exec-close', text: '*/' });
      code += ' ';
      i += 2;
      continue;
    }
    if (c === "'" || c === '"') {
      let j = i + 1;
      let escaped = false;
      for (; j < sql.length; j++) {
        const d = sql[j]!;
        if (d === '\\') {
          escaped = true;
          j++;
          continue;
        }
        if (d === c) {
          if (sql[j + 1] === c) {
            escaped = true;
            j++;
            continue;
          }
          break;
        }
      }
      if (j >= sql.length) {
        problem ??= 'an unterminated string literal';
        i = sql.length;
        continue;
      }
      const text = sql.slice(i, j + 1);
      const value = decodeString(sql.slice(i + 1, j), c);
      tokens.push({ type: 'string', text, value });
      code += escaped || c === '"' ? `'${value.replace(/[^A-Za-z0-9 _.,:/@%*-]/g, '_')}'` : text;
      i = j + 1;
      continue;
    }
    if (c === '`') {
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (sql[j] === '`') {
          if (sql[j + 1] === '`') {
            j++;
            continue;
          }
          break;
        }
      }
      if (j >= sql.length) {
        problem ??= 'an unterminated `identifier`';
        i = sql.length;
        continue;
      }
      const text = sql.slice(i, j + 1);
      if (text.slice(1, -1).includes('`')) problem ??= 'an identifier containing a backtick';
      tokens.push({ type: 'ident', text });
      code += text;
      i = j + 1;
      continue;
    }
    if (c === ';') {
      if (inExec) problem ??= 'a statement separator inside an executable comment';
      flush(i);
      i++;
      start = i;
      continue;
    }
    if (c === '@') {
      let j = i + 1;
      if (sql[j] === '@') j++;
      while (j < sql.length && (isWordChar(sql[j]!) || sql[j] === '.')) j++;
      const text = sql.slice(i, j);
      tokens.push({ type: 'variable', text });
      code += text;
      i = j;
      continue;
    }
    if (isWordChar(c)) {
      let j = i + 1;
      while (j < sql.length && isWordChar(sql[j]!)) j++;
      const text = sql.slice(i, j);
      tokens.push({ type: /^\d/.test(text) ? 'number' : 'word', text });
      code += text;
      i = j;
      continue;
    }
    // Punctuation. `--` left in code is minus minus: space it so no parser reads a comment.
    tokens.push({ type: 'punct', text: c });
    code += c === '-' && code.endsWith('-') ? ' -' : c;
    i++;
  }
  if (inExec) problem ??= 'an unterminated executable comment';
  flush(sql.length);
  return out;
}

/** Identity of a statement list: tokens joined by single spaces (comments and layout dropped). */
export function normalizeTokens(statements: readonly LexedStatement[]): string {
  return statements.map((s) => s.tokens.map((t) => t.text).join(' ')).join(' ;\n');
}
