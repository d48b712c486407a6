/**
 * SQL classification for the MySQL adapter: the text of one COM_QUERY (or COM_STMT_PREPARE)
 * into classified parts, one per statement. Statements are split by our own lexer (lexer.ts,
 * the server's comment and quoting rules); each is read by node-sql-parser's MariaDB grammar,
 * after a keyword pass for the statements that grammar does not know.
 *
 * Never call something `read` that has not been shown to be a read: text that does not parse,
 * an unknown statement type, a function that is not a known side-effect-free built-in (stored
 * functions can write) — all make the part `unknown`.
 *
 * Statement names follow PostgreSQL's where one exists (SelectStmt, DeleteStmt, DropStmt, ...)
 * so one rule can govern both protocols; MySQL-only statements get names in the same style.
 */
import { createHash } from 'node:crypto';
import nodeSqlParser from 'node-sql-parser';
import { type ActionKind, riskier, type SqlStatementPart } from '../../core/action.ts';
import { type LexedStatement, lexStatements, normalizeTokens, type Token } from './lexer.ts';

const parser = new nodeSqlParser.Parser();
const DIALECT = { database: 'MariaDB' } as const;

export interface MysqlPart extends SqlStatementPart {
  /** PREPARE name FROM '...': the statement name and the classified text. */
  readonly prepares?: { readonly name: string; readonly parts: readonly MysqlPart[] } | undefined;
  /** EXECUTE name: the session substitutes what it saw prepared under that name. */
  readonly executes?: string | undefined;
  /** DEALLOCATE PREPARE name. */
  readonly deallocates?: string | undefined;
  /** LOAD DATA LOCAL INFILE: the caller's file goes to the target. */
  readonly localInfile?: boolean | undefined;
  /** USE name: the database named (the session tells a connection's name from a schema's). */
  readonly uses?: string | undefined;
}

export interface ClassifiedSql {
  readonly parts: MysqlPart[];
  /** Identity: tokens without comments and layout, constants kept; long ones hashed. */
  readonly normalized: string;
  /** Only whitespace or comments: the server answers "query was empty". */
  readonly empty: boolean;
}

export interface ClassifyOptions {
  /** The target database of the connection: USE of another one is `admin`. */
  readonly database?: string | undefined;
}

const NORMALIZED_MAX = 512;

/** A text as an identity: itself, or its SHA-256 when long. */
export function identity(text: string): string {
  return text.length <= NORMALIZED_MAX ? text : `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Built-in functions that read and compute only. Anything else called makes a part `unknown`. */
const SAFE_FUNCTIONS = new Set(
  `abs acos ascii asin atan atan2 avg bin bit_and bit_count bit_length bit_or bit_xor cast ceil ceiling char char_length
character_length charset coalesce coercibility collation concat concat_ws connection_id conv convert convert_tz cos cot count crc32
curdate current_date current_role current_time current_timestamp current_user curtime database date date_add date_format date_sub
datediff day dayname dayofmonth dayofweek dayofyear decode_histogram degrees dense_rank elt exp export_set extract field find_in_set
first_value floor format found_rows from_base64 from_days from_unixtime greatest group_concat hex hour if ifnull in inet_aton
inet_ntoa inet6_aton inet6_ntoa insert instr is_ipv4 is_ipv6 isnull json_array json_arrayagg json_contains json_contains_path
json_depth json_extract json_keys json_length json_object json_objectagg json_quote json_search json_type json_unquote json_valid
json_value lag last_day last_insert_id last_value lcase lead least left length ln localtime localtimestamp locate log log10 log2
lower lpad ltrim make_set makedate maketime max md5 microsecond mid min minute mod month monthname now nth_value ntile nullif
oct octet_length ord percent_rank period_add period_diff pi position pow power quarter quote radians rand rank regexp_instr
regexp_like regexp_replace regexp_substr repeat replace reverse right round row_count row_number rpad rtrim schema sec_to_time
second session_user sha sha1 sha2 sign sin sleep benchmark soundex space sqrt std stddev stddev_pop stddev_samp str_to_date strcmp
subdate substr substring substring_index subtime sum sysdate system_user tan time time_format time_to_sec timediff timestamp
timestampadd timestampdiff to_base64 to_days to_seconds trim truncate ucase unhex unix_timestamp upper user utc_date utc_time
utc_timestamp uuid uuid_short values var_pop var_samp variance version week weekday weekofyear year yearweek`.split(
    /\s+/,
  ),
);

/** Functions with effects a reviewer must see, and the kind they give the part. */
const RISKY_FUNCTIONS: Record<string, { kind: ActionKind; why: string }> = {
  load_file: { kind: 'admin', why: 'LOAD_FILE() reads a file on the database server' },
  get_lock: { kind: 'write', why: 'GET_LOCK() takes a named server lock' },
  release_lock: { kind: 'write', why: 'RELEASE_LOCK() releases a named server lock' },
  release_all_locks: { kind: 'write', why: 'RELEASE_ALL_LOCKS() releases named server locks' },
  is_free_lock: { kind: 'read', why: 'IS_FREE_LOCK() inspects a named lock' },
  is_used_lock: { kind: 'read', why: 'IS_USED_LOCK() inspects a named lock' },
  nextval: { kind: 'write', why: 'NEXTVAL() advances a sequence' },
  setval: { kind: 'write', why: 'SETVAL() moves a sequence' },
  master_pos_wait: { kind: 'admin', why: 'waits on replication' },
  master_gtid_wait: { kind: 'admin', why: 'waits on replication' },
};

/** Session variables a caller may set freely (they change no data and not how SQL is read). */
const SAFE_VARIABLES = new Set(
  `autocommit time_zone sql_select_limit transaction_isolation tx_isolation transaction_read_only tx_read_only
max_execution_time max_statement_time net_read_timeout net_write_timeout wait_timeout interactive_timeout
group_concat_max_len sql_safe_updates lc_time_names div_precision_increment default_week_format
character_set_results sql_notes sql_warnings max_join_size big_tables profiling`.split(/\s+/),
);

/** Character sets that keep ASCII bytes meaning ASCII (see constants.ts isAsciiSafeCollation). */
const SAFE_CHARSETS = new Set(['utf8', 'utf8mb3', 'utf8mb4', 'latin1', 'ascii', 'binary', 'default']);

interface Found {
  kind: ActionKind;
  statement: string;
  why: string;
  tables: string[];
  functions: string[];
}

function part(s: LexedStatement, f: Found, extra: Partial<MysqlPart> = {}): MysqlPart {
  return {
    kind: f.kind,
    text: s.text,
    statement: f.statement,
    tables: [...new Set(f.tables)],
    functions: [...new Set(f.functions)],
    why: f.why,
    ...extra,
  };
}

function unknownPart(s: LexedStatement, why: string, statement = 'unparsed'): MysqlPart {
  return part(s, { kind: 'unknown', statement, why, tables: [], functions: [] });
}

export function classifySql(sql: string, opts: ClassifyOptions = {}): ClassifiedSql {
  if (sql.includes('\0')) {
    const s: LexedStatement = { text: sql, code: '', tokens: [] };
    return {
      parts: [unknownPart(s, 'the text contains a NUL character')],
      normalized: identity(`unparsed:${sql}`),
      empty: false,
    };
  }
  const statements = lexStatements(sql);
  if (statements.length === 0) return { parts: [], normalized: '', empty: true };
  const parts = statements.map((s) => classifyStatement(s, opts, 0));
  return { parts, normalized: identity(normalizeTokens(statements)), empty: false };
}

const word = (t: Token | undefined): string =>
  t && (t.type === 'word' || t.type === 'ident') ? t.text.replace(/`/g, '').toUpperCase() : '';

function classifyStatement(s: LexedStatement, opts: ClassifyOptions, depth: number): MysqlPart {
  if (s.problem) return unknownPart(s, `the text contains ${s.problem}`);
  // Keywords inside executable comments count: `/*!DROP*/ TABLE t` is DROP TABLE t.
  const t = s.tokens.filter((x) => x.type !== 'exec-open' && x.type !== 'exec-close');
  const w0 = word(t[0]);
  const w1 = word(t[1]);
  const words = new Set(t.filter((x) => x.type === 'word').map((x) => x.text.toUpperCase()));
  const f = (kind: ActionKind, statement: string, why: string, tables: string[] = []): MysqlPart =>
    part(s, { kind, statement, why, tables, functions: [] });

  switch (w0) {
    case 'PREPARE': {
      const name = word(t[1]).toLowerCase();
      const src = t[3];
      if (word(t[2]) !== 'FROM' || !src || t.length !== 4)
        return unknownPart(s, 'PREPARE ... FROM takes one statement name and one text', 'PrepareStmt');
      if (src.type !== 'string' || src.value === undefined)
        return part(
          s,
          {
            kind: 'unknown',
            statement: 'PrepareStmt',
            why: 'dynamic SQL: the prepared text comes from a variable Airlock cannot see',
            tables: [],
            functions: [],
          },
          { prepares: { name, parts: [] } },
        );
      if (depth > 0) return unknownPart(s, 'PREPARE inside a prepared text', 'PrepareStmt');
      const inner = lexStatements(src.value);
      if (inner.length !== 1)
        return unknownPart(s, 'the prepared text is not exactly one statement', 'PrepareStmt');
      const ip = classifyStatement(inner[0]!, opts, depth + 1);
      return part(
        s,
        {
          kind: ip.kind,
          // Rules about the prepared statement apply to preparing it: PREPARE of a DROP is a DROP.
          statement: ip.statement,
          why: `prepares ${ip.statement}: ${ip.why}`,
          tables: [...ip.tables],
          functions: [...ip.functions],
        },
        { prepares: { name, parts: [ip] } },
      );
    }
    case 'EXECUTE':
      return part(
        s,
        {
          kind: 'unknown',
          statement: 'ExecuteStmt',
          why: 'dynamic SQL: runs a statement prepared earlier',
          tables: [],
          functions: [],
        },
        { executes: word(t[1]).toLowerCase() },
      );
    case 'DEALLOCATE':
      return part(
        s,
        {
          kind: 'read',
          statement: 'DeallocateStmt',
          why: 'frees a prepared statement',
          tables: [],
          functions: [],
        },
        { deallocates: word(t[2]).toLowerCase() },
      );
    case 'KILL':
      return f('admin', 'KillStmt', 'KILL ends another connection or query');
    case 'FLUSH':
    case 'RESET':
    case 'PURGE':
    case 'SHUTDOWN':
    case 'RESTART':
    case 'INSTALL':
    case 'UNINSTALL':
    case 'BINLOG':
    case 'CHANGE':
    case 'CACHE':
    case 'OPTIMIZE':
    case 'REPAIR':
    case 'CHECK':
    case 'BACKUP':
      return f(
        'admin',
        `${w0[0]}${w0.slice(1).toLowerCase()}Stmt`,
        `${w0} is a server administration statement`,
      );
    case 'START':
      if (w1 === 'TRANSACTION') return f('read', 'TransactionStmt', 'starts a transaction');
      return f('admin', 'ReplicationStmt', `START ${w1} controls replication`);
    case 'STOP':
      return f('admin', 'ReplicationStmt', `STOP ${w1} controls replication`);
    case 'HANDLER': {
      const table = t[1] ? t[1].text.replace(/`/g, '') : '';
      return f(
        'read',
        'HandlerStmt',
        'HANDLER reads a table through the low-level interface',
        table ? [table] : [],
      );
    }
    case 'DO':
      return f('unknown', 'DoStmt', 'DO evaluates expressions for their side effects');
    case 'CALL':
      return f('unknown', 'CallStmt', 'a stored procedure can do anything its definer may');
    case 'ANALYZE':
      if (w1 === 'TABLE' || w1 === 'TABLES' || w1 === 'NO_WRITE_TO_BINLOG' || w1 === 'LOCAL')
        return f('admin', 'AnalyzeStmt', 'ANALYZE TABLE rebuilds statistics');
      return innerOf(s, t.slice(1), opts, depth, 'ANALYZE runs the statement');
    case 'EXPLAIN':
    case 'DESCRIBE':
    case 'DESC': {
      const rest = t.slice(1);
      const first = word(rest[0]);
      if (
        [
          'SELECT',
          'INSERT',
          'UPDATE',
          'DELETE',
          'REPLACE',
          'WITH',
          'TABLE',
          'VALUES',
          'EXTENDED',
          'PARTITIONS',
          'FORMAT',
          'ANALYZE',
        ].includes(first)
      )
        return innerOf(s, rest, opts, depth, `${w0} of a statement`);
      return f(
        'read',
        'ExplainStmt',
        `${w0} describes a table`,
        rest[0] ? [rest[0].text.replace(/`/g, '')] : [],
      );
    }
    case 'SHOW':
      return f('read', 'VariableShowStmt', 'SHOW reads server metadata');
    case 'BEGIN':
    case 'COMMIT':
    case 'ROLLBACK':
    case 'SAVEPOINT':
    case 'RELEASE':
    case 'XA':
      if (w0 === 'RELEASE' && w1 !== 'SAVEPOINT') break;
      return f('read', 'TransactionStmt', 'transaction control');
    case 'UNLOCK':
      return f('read', 'UnlockStmt', 'releases table locks');
    case 'LOCK':
      return f('write', 'LockStmt', 'LOCK TABLES blocks other sessions', lockTables(t));
    case 'GRANT':
    case 'REVOKE':
      return f('privilege', 'GrantStmt', `${w0} changes privileges`);
    case 'RENAME':
      if (w1 === 'USER') return f('privilege', 'RenameUserStmt', 'RENAME USER changes accounts');
      break;
    case 'USE': {
      const db = t[1] ? identName(t[1]) : '';
      if (t.length !== 2 || db === '') return unknownPart(s, 'USE takes one database name', 'UseStmt');
      if (opts.database !== undefined && db === opts.database)
        return part(
          s,
          {
            kind: 'read',
            statement: 'UseStmt',
            why: 'selects the connection\u2019s own database',
            tables: [],
            functions: [],
          },
          { uses: db },
        );
      return part(
        s,
        {
          kind: 'admin',
          statement: 'UseStmt',
          why: `switches to database "${db}", outside the connection\u2019s database`,
          tables: [],
          functions: [],
        },
        { uses: db },
      );
    }
    case 'LOAD': {
      const local = words.has('LOCAL');
      const table = tableAfter(t, 'TABLE');
      if (local)
        return part(
          s,
          {
            kind: 'transfer',
            statement: 'LoadDataStmt',
            why: 'LOAD DATA LOCAL INFILE sends a file from the client to the target',
            tables: table ? [table] : [],
            functions: [],
          },
          { localInfile: true },
        );
      return f(
        'admin',
        'LoadDataStmt',
        'LOAD DATA INFILE reads a file on the database server',
        table ? [table] : [],
      );
    }
    case 'SET':
      return classifySet(s, t);
    case 'CREATE':
    case 'ALTER':
    case 'DROP':
      if (['USER', 'ROLE'].includes(w1))
        return f('privilege', `${w0[0]}${w0.slice(1).toLowerCase()}RoleStmt`, `${w0} ${w1} changes accounts`);
      if (w1 === 'DEFINER' || words.has('DEFINER'))
        return f(
          'privilege',
          `${w0[0]}${w0.slice(1).toLowerCase()}Stmt`,
          'DEFINER= runs code with another account\u2019s privileges',
        );
      if (w0 === 'DROP' && w1 === 'PREPARE')
        return part(
          s,
          {
            kind: 'read',
            statement: 'DeallocateStmt',
            why: 'frees a prepared statement',
            tables: [],
            functions: [],
          },
          { deallocates: word(t[2]).toLowerCase() },
        );
      if (
        ['PROCEDURE', 'FUNCTION', 'TRIGGER', 'EVENT', 'SERVER', 'AGGREGATE'].includes(w1) ||
        (w1 === 'OR' && words.has('PROCEDURE'))
      )
        return f(
          'schema',
          w0 === 'DROP' ? 'DropStmt' : 'CreateFunctionStmt',
          `${w0} ${w1} defines server-side code`,
        );
      break;
  }
  // SELECT ... INTO OUTFILE/DUMPFILE writes a file on the server.
  const upper = t.map((x) => (x.type === 'word' ? x.text.toUpperCase() : ''));
  const into = upper.indexOf('INTO');
  if (into >= 0 && (upper[into + 1] === 'OUTFILE' || upper[into + 1] === 'DUMPFILE'))
    return f('admin', 'SelectIntoFileStmt', `INTO ${upper[into + 1]} writes a file on the database server`);
  return parseAndClassify(s);
}

function innerOf(
  s: LexedStatement,
  rest: readonly Token[],
  opts: ClassifyOptions,
  depth: number,
  why: string,
): MysqlPart {
  if (depth > 2) return unknownPart(s, 'nested too deeply');
  const text = rest.map((x) => x.text).join(' ');
  const inner = lexStatements(text);
  if (inner.length !== 1) return unknownPart(s, why);
  const ip = classifyStatement(inner[0]!, opts, depth + 1);
  return { ...ip, text: s.text, statement: 'ExplainStmt', why: `${why}: ${ip.why}` };
}

/** An identifier as the server reads it: backticks removed, doubled ones made one. */
function identName(t: Token): string {
  return t.type === 'ident' && t.text.startsWith('`') ? t.text.slice(1, -1).replace(/``/g, '`') : t.text;
}

function tableAfter(t: readonly Token[], keyword: string): string | undefined {
  for (let i = 0; i < t.length - 1; i++) {
    if (t[i]!.type === 'word' && t[i]!.text.toUpperCase() === keyword) {
      let name = t[i + 1]!.text.replace(/`/g, '');
      if (t[i + 2]?.text === '.' && t[i + 3]) name += `.${t[i + 3]!.text.replace(/`/g, '')}`;
      return name;
    }
  }
  return undefined;
}

function lockTables(t: readonly Token[]): string[] {
  const out: string[] = [];
  let expect = true;
  for (let i = 2; i < t.length; i++) {
    const x = t[i]!;
    if (x.text === ',') expect = true;
    else if (expect && (x.type === 'word' || x.type === 'ident')) {
      out.push(x.text.replace(/`/g, ''));
      expect = false;
    }
  }
  return out;
}

function classifySet(s: LexedStatement, t: readonly Token[]): MysqlPart {
  const f = (kind: ActionKind, why: string): MysqlPart =>
    part(s, { kind, statement: 'VariableSetStmt', why, tables: [], functions: [] });
  const w1 = word(t[1]);
  if (w1 === 'NAMES' || w1 === 'CHARSET' || (w1 === 'CHARACTER' && word(t[2]) === 'SET')) {
    const v = t[w1 === 'CHARACTER' ? 3 : 2];
    const cs = (v?.value ?? v?.text ?? '').toLowerCase();
    if (SAFE_CHARSETS.has(cs)) return f('read', `sets the connection character set to ${cs}`);
    return f('admin', `character set "${cs}" can make the server read the text differently from Airlock`);
  }
  if (['PASSWORD', 'ROLE', 'DEFAULT'].includes(w1))
    return f('privilege', `SET ${w1} changes accounts or privileges`);
  if (w1 === 'TRANSACTION') return f('read', 'sets the next transaction\u2019s characteristics');
  if (['GLOBAL', 'PERSIST', 'PERSIST_ONLY'].includes(w1))
    return f('admin', `SET ${w1} changes the server for everyone`);
  if (t.some((x) => x.type === 'variable' && /^@@(global|persist)/i.test(x.text)))
    return f('admin', 'sets a global server variable');
  let r: { ast: unknown };
  try {
    r = parser.parse(s.code, DIALECT) as { ast: unknown };
  } catch (err) {
    return unknownPart(s, `the statement could not be parsed: ${firstLine(err)}`, 'VariableSetStmt');
  }
  const ast = (Array.isArray(r.ast) ? r.ast : [r.ast]) as Obj[];
  if (ast.length !== 1 || ast[0]!.type !== 'set')
    return unknownPart(s, 'the statement could not be parsed as SET', 'VariableSetStmt');
  let kind: ActionKind = 'read';
  let why = 'sets session or user variables';
  const functions: string[] = [];
  const tables: string[] = [];
  for (const a of (ast[0]!.expr as Obj[] | undefined) ?? []) {
    const left = a.left as Obj | undefined;
    if (left?.type !== 'var') return unknownPart(s, 'unrecognised SET target', 'VariableSetStmt');
    const members = (left.members as string[] | undefined) ?? [];
    let name = String(left.name ?? '').toLowerCase();
    if (left.prefix === '@@' && ['session', 'local'].includes(name) && members.length > 0)
      name = String(members[members.length - 1]).toLowerCase();
    else if (members.length > 0) name = [name, ...members].join('.').toLowerCase();
    if (left.prefix !== '@' && !SAFE_VARIABLES.has(name)) {
      kind = riskier(kind, 'admin');
      why = `SET ${name} changes how the server behaves for this session`;
    }
    const walked = walk(a);
    functions.push(...walked.functions);
    if (walked.kind !== 'read') {
      kind = riskier(kind, walked.kind);
      why = walked.why;
    }
    if (walked.subquery) {
      kind = riskier(kind, 'unknown');
      why = 'SET with a subquery';
    }
  }
  return part(s, { kind, statement: 'VariableSetStmt', why, tables, functions });
}

type Obj = Record<string, unknown>;

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err)
    .split('\n')[0]!
    .slice(0, 200);
}

const STATEMENT_NAMES: Record<string, string> = {
  select: 'SelectStmt',
  insert: 'InsertStmt',
  replace: 'ReplaceStmt',
  update: 'UpdateStmt',
  delete: 'DeleteStmt',
  drop: 'DropStmt',
  truncate: 'TruncateStmt',
  create: 'CreateStmt',
  alter: 'AlterTableStmt',
  rename: 'RenameStmt',
  show: 'VariableShowStmt',
  desc: 'ExplainStmt',
  transaction: 'TransactionStmt',
};

function parseAndClassify(s: LexedStatement): MysqlPart {
  let r: { ast: unknown; tableList: string[] };
  try {
    r = parser.parse(s.code, DIALECT) as { ast: unknown; tableList: string[] };
  } catch (err) {
    return unknownPart(s, `the statement could not be parsed: ${firstLine(err)}`);
  }
  const asts = (Array.isArray(r.ast) ? r.ast : [r.ast]).filter(Boolean) as Obj[];
  if (asts.length !== 1)
    return unknownPart(s, 'the parser read a different number of statements than the server would');
  const ast = asts[0]!;
  const type = String(ast.type ?? '');
  const keyword = String(ast.keyword ?? '').toLowerCase();
  const tables = r.tableList
    .map((e) => {
      const [, db, table] = e.split('::');
      return db && db !== 'null' ? `${db}.${table}` : String(table);
    })
    .filter((x) => x !== 'null');
  let statement = STATEMENT_NAMES[type] ?? `${type}Stmt`;
  let kind: ActionKind;
  let why: string;
  switch (type) {
    case 'select':
      kind = 'read';
      why = 'SELECT reads';
      if (ast.locking_read) {
        kind = 'write';
        why = `SELECT ... ${String(ast.locking_read)} locks rows`;
      }
      break;
    case 'insert':
      kind = 'write';
      why = 'INSERT adds rows';
      if (s.tokens.some((x) => x.type === 'word' && x.text.toUpperCase() === 'DUPLICATE'))
        why = 'INSERT ... ON DUPLICATE KEY UPDATE adds or changes rows';
      break;
    case 'replace':
      kind = 'write';
      why = 'REPLACE deletes and re-inserts rows';
      break;
    case 'update':
      kind = 'write';
      why = 'UPDATE changes rows';
      break;
    case 'delete':
      kind = 'write';
      why = 'DELETE removes rows';
      break;
    case 'truncate':
      kind = 'schema';
      why = 'TRUNCATE removes every row';
      break;
    case 'drop':
      kind = 'schema';
      why = `DROP ${keyword.toUpperCase()} removes it`;
      if (keyword === 'database' || keyword === 'schema') statement = 'DropdbStmt';
      break;
    case 'create':
      kind = 'schema';
      why = `CREATE ${keyword.toUpperCase()} changes the schema`;
      if (keyword === 'database' || keyword === 'schema') statement = 'CreatedbStmt';
      else if (keyword === 'index') statement = 'IndexStmt';
      else if (keyword === 'view') statement = 'ViewStmt';
      break;
    case 'alter':
    case 'rename':
      kind = 'schema';
      why = `${type.toUpperCase()} changes the schema`;
      break;
    case 'show':
    case 'desc':
      kind = 'read';
      why = 'reads metadata';
      break;
    case 'transaction':
      kind = 'read';
      why = 'transaction control';
      break;
    case 'use':
      kind = 'admin';
      why = 'switches database';
      statement = 'UseStmt';
      break;
    default:
      return unknownPart(s, `statement type "${type}" is not classified`, statement);
  }
  const walked = walk(ast);
  if (KIND_ORDER(walked.kind) > KIND_ORDER(kind)) {
    kind = walked.kind;
    why = walked.why;
  }
  return part(s, { kind, statement, why, tables, functions: walked.functions });
}

function KIND_ORDER(k: ActionKind): number {
  return riskier(k, 'read') === 'read'
    ? 0
    : riskier(k, 'write') === 'write'
      ? 1
      : riskier(k, 'schema') === 'schema'
        ? 2
        : 3;
}

/** Walks a parse tree for function calls; the riskiest function sets the kind. */
function walk(root: unknown): { kind: ActionKind; why: string; functions: string[]; subquery: boolean } {
  let kind: ActionKind = 'read';
  let why = '';
  let subquery = false;
  const functions: string[] = [];
  const stack: unknown[] = [root];
  let steps = 0;
  while (stack.length > 0) {
    if (++steps > 200_000)
      return { kind: 'unknown', why: 'the statement is too large to classify', functions, subquery };
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (const x of node) stack.push(x);
      continue;
    }
    const o = node as Obj;
    if (o.type === 'select' && o !== root) subquery = true;
    if (o.type === 'function' || o.type === 'aggr_func') {
      const name = functionName(o);
      const plain = name.includes('.') ? '' : name.toLowerCase();
      functions.push(name);
      const risky = RISKY_FUNCTIONS[plain];
      if (risky) {
        if (riskier(kind, risky.kind) !== kind) {
          kind = risky.kind;
          why = risky.why;
        }
      } else if (!SAFE_FUNCTIONS.has(plain)) {
        kind = 'unknown';
        why = `function ${name}() is not a known side-effect-free built-in (a stored function can change data)`;
      }
    }
    for (const v of Object.values(o)) if (v !== null && typeof v === 'object') stack.push(v);
  }
  return { kind, why, functions, subquery };
}

function functionName(o: Obj): string {
  const n = o.name;
  if (typeof n === 'string') return n;
  if (n && typeof n === 'object') {
    const no = n as Obj;
    const parts = Array.isArray(no.name)
      ? (no.name as Obj[]).map((x) => String(x.value ?? ''))
      : [String(no.name ?? '')];
    const schema = no.schema && typeof no.schema === 'object' ? String((no.schema as Obj).value ?? '') : '';
    return [schema, ...parts].filter(Boolean).join('.');
  }
  return '?';
}
