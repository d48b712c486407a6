/**
 * SQL classification for the PostgreSQL adapter: turns the text of one Query (or Parse) message
 * into classified parts, one per statement, using PostgreSQL's own parser (libpg-query).
 *
 * The rule that governs every choice here: never call something `read` that has not been shown
 * to be a read. The whole parse tree is walked once per statement; anything that can change data,
 * schema, privileges or the server, and anything we do not know (an unknown statement type, a
 * function whose side effects we cannot see, text that does not parse) raises the part's kind.
 *
 * What a parse tree cannot show, and so stays with the adapter or the reviewer: side effects hidden
 * behind views, rules, triggers, column defaults and row-level-security policies on the objects a
 * statement names; user-defined operators or casts that reuse built-in operator symbols on
 * user-defined types; and built-in function names shadowed by a search_path that lists pg_catalog
 * late (SET search_path doing that is classified `admin`, set_config() is `privilege`).
 */
import { createHash } from 'node:crypto';
import { loadModule, parseSync } from 'libpg-query';
import { type ActionKind, type ActionPart, KIND_RISK, type SqlStatementPart } from '../../core/action.ts';
import { TextCache } from '../../core/text-cache.ts';
import { type Literal, type Shape, shapeOf, statementText } from './shape.ts';

type Obj = Record<string, unknown>;

/** One classified statement. The extra fields let the adapter re-judge unknown functions later. */
export interface SqlPart extends SqlStatementPart {
  /**
   * Functions called that are neither known harmless nor known dangerous, as written. Each makes
   * the part `unknown`; the adapter may clear them with pg_proc.provolatile (see refinePart).
   */
  readonly unknownFunctions: readonly string[];
  /** The kind and reason this part would have if every unknown function proved free of side effects. */
  readonly kindWithoutUnknownFunctions: ActionKind;
  readonly whyWithoutUnknownFunctions: string;
}

export interface ClassifiedSql {
  parts: SqlPart[];
  /**
   * Identity of the whole text: the parse tree as JSON with positions removed, so comments,
   * whitespace and keyword case do not matter while constants and identifiers do. Long trees are
   * replaced by their SHA-256 (`sha256:<hex>`). Unparsable text: `unparsed:` + the exact text.
   */
  normalized: string;
  error?: string;
  /** No statements at all (only whitespace or comments): PostgreSQL answers EmptyQueryResponse. */
  empty: boolean;
}

let loaded: Promise<void> | undefined;
let ready = false;

export async function initClassifier(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true;
  });
  await loaded;
}

/** Above this many characters the canonical tree is replaced by its hash, keeping actions small. */
const NORMALIZED_MAX = 512;

// Position fields are the only parts of the tree that change with comments and whitespace. The
// keys are fixed field names and every quote inside a JSON string value is escaped, so this can
// only ever match a real key.
const POSITION_FIELDS =
  /,"(?:location|name_location|stmt_location|stmt_len|list_start|list_end|rexpr_list_start|rexpr_list_end)":-?\d+|"(?:location|name_location|stmt_location|stmt_len|list_start|list_end|rexpr_list_start|rexpr_list_end)":-?\d+,?/g;

function identity(canonical: string): string {
  if (canonical.length <= NORMALIZED_MAX) return canonical;
  return 'sha256:' + createHash('sha256').update(canonical).digest('hex');
}

function unparsed(sql: string, error: string): ClassifiedSql {
  return {
    parts: [
      {
        kind: 'unknown',
        text: sql,
        statement: 'unparsed',
        tables: [],
        functions: [],
        why: error,
        unknownFunctions: [],
        kindWithoutUnknownFunctions: 'unknown',
        whyWithoutUnknownFunctions: error,
      },
    ],
    normalized: identity('unparsed:' + sql),
    error,
    empty: false,
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Classifies SQL text. Statements of a shape seen before (same text but for literal values, see
 * shape.ts) reuse that shape's classification and parse tree with the new values put in, which is
 * exactly what a fresh parse gives (checked when the shape is first seen, and by property tests).
 */
export function classifySql(sql: string): ClassifiedSql {
  if (!ready) throw new Error('initClassifier() must complete before classifySql()');
  const hit = exact.get(sql);
  if (hit) return hit;
  const shape = shapeOf(sql);
  let result: ClassifiedSql;
  let templated = false;
  const cached = shape && shapes.get(shape.key);
  if (shape && cached) {
    result = fromTemplate(cached, shape, sql);
    templated = true;
  } else {
    const fresh = classifyUncached(sql);
    result = fresh.result;
    if (shape && cached === undefined) {
      const template = templateOf(sql, shape, fresh) ?? null;
      shapes.set(shape.key, template);
      templated = template !== null;
    }
  }
  if (!templated || shape!.literals.length === 0) exact.set(sql, result);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The exact-text cache

/**
 * Exact texts are kept for the whole process: statements no shape template serves (BEGIN,
 * COMMIT, SET, DDL, ...) and statements without literal values (`$1` placeholders, which drivers
 * parse again and again), which come back with the same text from every session; a
 * classification depends on nothing but the text. Statements with literal values are not kept:
 * their values make most texts unique, the template serves them, and a cache of texts that
 * never come back only holds garbage long enough to be promoted into the old generation.
 */
const exact = new TextCache<ClassifiedSql>(2000, 4096);

// ---------------------------------------------------------------------------------------------
// The shape cache

/** Statement types whose classification never depends on a literal's value. */
const SHAPE_STATEMENTS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);
/** Shape key → template, or null for a shape that cannot be reused. */
const shapes = new TextCache<ShapeTemplate | null>(2000);

interface ShapeTemplate {
  readonly part: Omit<SqlPart, 'text'>;
  /** The canonical tree cut where literal values go. */
  readonly pieces: readonly string[];
  /** Which literal (source order) fills each cut. */
  readonly fill: readonly number[];
}

function literalJson(l: Literal): string {
  return l.cls === 'str' ? JSON.stringify(l.value).slice(1, -1) : l.value;
}

function fromTemplate(t: ShapeTemplate, shape: Shape, sql: string): ClassifiedSql {
  let canonical = t.pieces[0]!;
  for (let i = 0; i < t.fill.length; i++)
    canonical += literalJson(shape.literals[t.fill[i]!]!) + t.pieces[i + 1]!;
  return { parts: [{ ...t.part, text: statementText(sql) }], normalized: identity(canonical), empty: false };
}

function partFacts(p: SqlPart): string {
  const { text: _text, ...rest } = p;
  return JSON.stringify(rest);
}

/**
 * Builds a shape's template from one statement: the same text with every literal replaced by a
 * unique marker is parsed, the markers are found in its tree, and the template must give back
 * exactly this statement's classification and tree. Anything unexpected: not reusable (null).
 */
function templateOf(sql: string, shape: Shape, fresh: Uncached): ShapeTemplate | undefined {
  const r = fresh.result;
  if (r.error || r.empty || r.parts.length !== 1 || fresh.canonical === undefined) return undefined;
  const part = r.parts[0]!;
  // The statement type at the top of the tree, not the part's: EXPLAIN ANALYZE of a DELETE is
  // judged as the DELETE, but whether it runs depends on a literal.
  const top = /^\[\{"stmt":\{"([A-Za-z]+)"/.exec(fresh.canonical)?.[1];
  if (!top || !SHAPE_STATEMENTS.has(top) || part.text !== statementText(sql)) return undefined;
  if (shape.literals.length > 999) return undefined;
  const nonce = String(100000 + Math.floor(Math.random() * 900000));
  const markers: (string | undefined)[] = [];
  let markerSql = '';
  let at = 0;
  shape.literals.forEach((l, k) => {
    const kk = String(k).padStart(3, '0');
    let m: string | undefined;
    if (l.cls === 'int') m = `1${nonce}${kk}`;
    else if (l.cls === 'big') m = `9${nonce}${kk}000`;
    else if (l.cls === 'dec') m = `${nonce}.${kk}7`;
    else if (l.cls === 'str') m = `zq${nonce}k${kk}zq`;
    markers.push(m);
    markerSql +=
      sql.slice(at, l.start) + (m === undefined ? sql.slice(l.start, l.end) : l.cls === 'str' ? `'${m}'` : m);
    at = l.end;
  });
  markerSql += sql.slice(at);
  const marked = classifyUncached(markerSql);
  const mr = marked.result;
  if (mr.error || mr.parts.length !== 1 || marked.canonical === undefined) return undefined;
  if (partFacts(mr.parts[0]!) !== partFacts(part)) return undefined;
  const found: { at: number; length: number; literal: number }[] = [];
  markers.forEach((m, k) => {
    if (m === undefined) return;
    const first = marked.canonical!.indexOf(m);
    if (first < 0 || marked.canonical!.indexOf(m, first + 1) >= 0)
      found.push({ at: -1, length: 0, literal: k });
    else found.push({ at: first, length: m.length, literal: k });
  });
  if (found.some((f) => f.at < 0)) return undefined;
  found.sort((a, b) => a.at - b.at);
  const pieces: string[] = [];
  let from = 0;
  for (const f of found) {
    pieces.push(marked.canonical.slice(from, f.at));
    from = f.at + f.length;
  }
  pieces.push(marked.canonical.slice(from));
  const { text: _text, ...facts } = part;
  const template: ShapeTemplate = { part: facts, pieces, fill: found.map((f) => f.literal) };
  const again = fromTemplate(template, shape, sql);
  if (again.normalized !== r.normalized || partFacts(again.parts[0]! as SqlPart) !== partFacts(part))
    return undefined;
  if (again.parts[0]!.text !== part.text) return undefined;
  return template;
}

interface Uncached {
  readonly result: ClassifiedSql;
  /** The tree as JSON without positions, before it is hashed into `normalized`. */
  readonly canonical?: string;
}

/** Classification without the shape cache (also what the property tests compare against). */
export function classifySqlUncached(sql: string): ClassifiedSql {
  if (!ready) throw new Error('initClassifier() must complete before classifySql()');
  return classifyUncached(sql).result;
}

function classifyUncached(sql: string): Uncached {
  const result = (r: ClassifiedSql, canonical?: string): Uncached => ({ result: r, canonical });
  // The parser reads a C string: a NUL would silently end the text it sees, hiding what follows.
  if (sql.includes('\0')) return result(unparsed(sql, 'the text contains a NUL character'));
  const ascii = Buffer.byteLength(sql, 'utf8') === sql.length;
  // Lone surrogates have no UTF-8 form, so statement offsets could not be mapped back reliably.
  if (!ascii && LONE_SURROGATE.test(sql)) return result(unparsed(sql, 'the text is not valid Unicode'));
  if (sql === '') return result({ parts: [], normalized: identity('[]'), empty: true });

  let stmts: Obj[];
  try {
    stmts = (parseSync(sql) as { stmts?: Obj[] }).stmts ?? [];
  } catch (err) {
    return result(unparsed(sql, err instanceof Error ? err.message : String(err)));
  }
  let canonical: string;
  try {
    canonical = JSON.stringify(stmts).replace(POSITION_FIELDS, '');
  } catch {
    return result(unparsed(sql, 'the statement is too deeply nested to classify'));
  }
  const normalized = identity(canonical);
  if (stmts.length === 0) return result({ parts: [], normalized, empty: true });

  const toIndex = ascii ? (b: number) => b : utf8Indexer(sql);
  const parts: SqlPart[] = [];
  for (const raw of stmts) {
    // stmt_location/stmt_len are byte offsets into the UTF-8 text; absent means 0 / "to the end".
    const start = (raw.stmt_location as number | undefined) ?? 0;
    const len = (raw.stmt_len as number | undefined) ?? 0;
    const text = len > 0 ? sql.slice(toIndex(start), toIndex(start + len)) : sql.slice(toIndex(start));
    try {
      parts.push(classifyStatement(raw.stmt as Obj, text));
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      return result(unparsed(sql, 'the statement is too deeply nested to classify'));
    }
  }
  return result({ parts, normalized, empty: false }, canonical);
}

/** Maps UTF-8 byte offsets to string indices, scanning forward once for increasing offsets. */
function utf8Indexer(sql: string): (byte: number) => number {
  let i = 0;
  let b = 0;
  return (target) => {
    if (target < b) {
      i = 0;
      b = 0;
    }
    while (b < target && i < sql.length) {
      const c = sql.charCodeAt(i);
      if (c < 0x80) {
        b += 1;
        i += 1;
      } else if (c < 0x800) {
        b += 2;
        i += 1;
      } else if (c >= 0xd800 && c <= 0xdbff) {
        b += 4;
        i += 2;
      } else {
        b += 3;
        i += 1;
      }
    }
    return i;
  };
}

/** Functions that may be called from a statement the adapter would otherwise allow as `unknown`. */
export function unknownFunctions(part: ActionPart): string[] {
  const own = (part as Partial<SqlPart>).unknownFunctions;
  if (own) return [...own];
  return (part.functions ?? []).filter((name) => functionEffect(name.split('.')) === UNKNOWN_FUNCTION);
}

/**
 * Re-judges a part once the adapter knows which of its unknown functions are harmless (for
 * example from pg_proc.provolatile on the target). Functions not reported harmless keep the part
 * `unknown`.
 */
export function refinePart(part: SqlPart, harmless: (fn: string) => boolean): SqlPart {
  if (part.unknownFunctions.length === 0) return part;
  const left = part.unknownFunctions.filter((fn) => !harmless(fn));
  if (left.length === part.unknownFunctions.length) return part;
  if (left.length > 0) {
    return { ...part, unknownFunctions: left, why: unknownWhy(part.whyWithoutUnknownFunctions, left) };
  }
  return {
    ...part,
    kind: part.kindWithoutUnknownFunctions,
    why: part.whyWithoutUnknownFunctions,
    unknownFunctions: [],
  };
}

/**
 * Re-judges a part by what the target says its unknown functions are (pg_proc.provolatile).
 * PostgreSQL runs an immutable or stable function with a read-only snapshot (a data change inside
 * one fails), so those are harmless; a volatile one may write, so the part is at least `write`;
 * a function the target does not know stays `unknown`.
 * https://www.postgresql.org/docs/current/xfunc-volatility.html
 */
export function refineByVolatility(
  part: SqlPart,
  volatility: (fn: string) => 'i' | 's' | 'v' | undefined,
): SqlPart {
  if (part.unknownFunctions.length === 0) return part;
  const volatile: string[] = [];
  const unknown: string[] = [];
  for (const fn of part.unknownFunctions) {
    const v = volatility(fn);
    if (v === 'v') volatile.push(fn);
    else if (v === undefined) unknown.push(fn);
  }
  let kind = part.kindWithoutUnknownFunctions;
  let why = part.whyWithoutUnknownFunctions;
  if (volatile.length > 0 && KIND_RISK[kind] < KIND_RISK.write) {
    kind = 'write';
    const list = volatile.map((f) => `${f}()`).join(', ');
    why = `${why} calls volatile function${volatile.length > 1 ? 's' : ''} ${list}, which may change data`;
  }
  if (unknown.length > 0 && KIND_RISK[kind] < KIND_RISK.unknown) {
    kind = 'unknown';
    why = unknownWhy(why, unknown);
  }
  return { ...part, kind, why, unknownFunctions: unknown };
}

function unknownWhy(base: string, fns: readonly string[]): string {
  const list = fns.map((f) => `${f}()`).join(', ');
  return `${base} calls function${fns.length > 1 ? 's' : ''} ${list}, whose side effects are not known`;
}

// ---------------------------------------------------------------------------------------------
// Functions

interface Effect {
  readonly kind: ActionKind;
  readonly what: string;
}

const UNKNOWN_FUNCTION: Effect = { kind: 'unknown', what: 'has side effects that are not known' };

const SEQUENCE: Effect = { kind: 'write', what: 'changes a sequence' };
const ADVISORY: Effect = { kind: 'write', what: 'takes or releases an advisory lock' };
const LARGE_OBJECT: Effect = { kind: 'write', what: 'changes a large object' };
const SERVER_FILE: Effect = { kind: 'admin', what: 'reads or writes files on the database server' };
const SIGNAL: Effect = { kind: 'admin', what: 'signals a server process' };
const SERVER: Effect = { kind: 'admin', what: 'administers the database server' };
const REMOTE: Effect = { kind: 'admin', what: 'connects to another database server' };
const SQL_TEXT: Effect = { kind: 'unknown', what: 'runs SQL given to it as text, which cannot be seen here' };

/** Built-ins whose effects we know and that are not harmless. */
const KNOWN_EFFECTS = new Map<string, Effect>([
  ['nextval', SEQUENCE],
  ['setval', SEQUENCE],
  ['pg_notify', { kind: 'write', what: 'sends a notification' }],
  ['pg_logical_emit_message', { kind: 'write', what: 'writes a message to the WAL' }],
  ['lo_create', LARGE_OBJECT],
  ['lo_creat', LARGE_OBJECT],
  ['lo_open', LARGE_OBJECT],
  ['lowrite', LARGE_OBJECT],
  ['lo_put', LARGE_OBJECT],
  ['lo_from_bytea', LARGE_OBJECT],
  ['lo_truncate', LARGE_OBJECT],
  ['lo_truncate64', LARGE_OBJECT],
  ['lo_import', SERVER_FILE],
  ['lo_export', SERVER_FILE],
  ['lo_unlink', { kind: 'admin', what: 'deletes a large object' }],
  ['pg_read_file', SERVER_FILE],
  ['pg_read_binary_file', SERVER_FILE],
  ['pg_ls_dir', SERVER_FILE],
  ['pg_stat_file', SERVER_FILE],
  ['pg_ls_logdir', SERVER_FILE],
  ['pg_ls_waldir', SERVER_FILE],
  ['pg_ls_tmpdir', SERVER_FILE],
  ['pg_ls_archive_statusdir', SERVER_FILE],
  ['pg_ls_logicalsnapdir', SERVER_FILE],
  ['pg_ls_logicalmapdir', SERVER_FILE],
  ['pg_ls_replslotdir', SERVER_FILE],
  ['pg_ls_summariesdir', SERVER_FILE],
  ['pg_file_write', SERVER_FILE],
  ['pg_file_rename', SERVER_FILE],
  ['pg_file_unlink', SERVER_FILE],
  ['pg_file_sync', SERVER_FILE],
  ['pg_logdir_ls', SERVER_FILE],
  ['pg_terminate_backend', SIGNAL],
  ['pg_cancel_backend', SIGNAL],
  ['pg_signal_backend', SIGNAL],
  ['pg_log_backend_memory_contexts', SIGNAL],
  ['pg_reload_conf', SERVER],
  ['pg_rotate_logfile', SERVER],
  ['pg_rotate_logfile_old', SERVER],
  ['pg_switch_wal', SERVER],
  ['pg_create_restore_point', SERVER],
  ['pg_backup_start', SERVER],
  ['pg_backup_stop', SERVER],
  ['pg_promote', SERVER],
  ['pg_wal_replay_pause', SERVER],
  ['pg_wal_replay_resume', SERVER],
  ['pg_create_physical_replication_slot', SERVER],
  ['pg_create_logical_replication_slot', SERVER],
  ['pg_drop_replication_slot', SERVER],
  ['pg_replication_slot_advance', SERVER],
  ['pg_copy_physical_replication_slot', SERVER],
  ['pg_copy_logical_replication_slot', SERVER],
  ['pg_logical_slot_get_changes', SERVER],
  ['pg_logical_slot_get_binary_changes', SERVER],
  ['pg_sync_replication_slots', SERVER],
  ['pg_import_system_collations', SERVER],
  ['pg_log_standby_snapshot', SERVER],
  ['pg_restore_relation_stats', SERVER],
  ['pg_clear_relation_stats', SERVER],
  ['pg_restore_attribute_stats', SERVER],
  ['pg_clear_attribute_stats', SERVER],
  ['pg_stat_statements_reset', SERVER],
  ['set_config', { kind: 'privilege', what: 'changes a setting, which can switch the role' }],
  ['query_to_xml', SQL_TEXT],
  ['query_to_xmlschema', SQL_TEXT],
  ['query_to_xml_and_xmlschema', SQL_TEXT],
  ['cursor_to_xml', SQL_TEXT],
  ['cursor_to_xmlschema', SQL_TEXT],
  ['ts_stat', SQL_TEXT],
]);

const EFFECT_PREFIXES: readonly (readonly [string, Effect])[] = [
  ['dblink', REMOTE],
  ['pg_advisory_', ADVISORY],
  ['pg_try_advisory_', ADVISORY],
  ['pg_stat_reset', SERVER],
  ['pg_replication_origin_', SERVER],
];

/**
 * Built-ins known to be harmless: pure computations, or reads of the catalog, statistics and
 * session state. Matched by bare name or with the pg_catalog. prefix; a name qualified with any
 * other schema is a user function, never one of these.
 */
const HARMLESS = new Set(
  `
count sum avg min max every bool_and bool_or bit_and bit_or bit_xor array_agg string_agg json_agg jsonb_agg
json_object_agg jsonb_object_agg json_agg_strict jsonb_agg_strict json_object_agg_strict jsonb_object_agg_strict
json_object_agg_unique jsonb_object_agg_unique json_object_agg_unique_strict jsonb_object_agg_unique_strict
xmlagg stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_avgx regr_avgy
regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy percentile_cont percentile_disc mode
any_value range_agg range_intersect_agg
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
now current_timestamp current_date current_time localtime localtimestamp clock_timestamp statement_timestamp
transaction_timestamp timeofday age date_trunc date_part date_bin extract isfinite justify_days justify_hours
justify_interval make_date make_time make_timestamp make_timestamptz make_interval to_timestamp to_date
to_char to_number timezone overlaps date_add date_subtract
abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 power pow mod div pi degrees radians
sin cos tan asin acos atan atan2 sind cosd tand asind acosd atand atan2d sinh cosh tanh asinh acosh atanh cot cotd
gcd lcm factorial width_bucket scale min_scale trim_scale random random_normal setseed greatest least
erf erfc gamma lgamma
coalesce nullif lower upper initcap length char_length character_length octet_length bit_length substr
substring left right lpad rpad ltrim rtrim btrim trim position strpos replace translate repeat reverse concat
concat_ws format split_part regexp_replace regexp_match regexp_matches regexp_split_to_array
regexp_split_to_table regexp_count regexp_instr regexp_like regexp_substr starts_with overlay ascii chr
md5 sha224 sha256 sha384 sha512 crc32 crc32c encode decode convert convert_from convert_to quote_ident
quote_literal quote_nullable to_hex to_oct to_bin to_ascii unistr normalize is_normalized casefold
string_to_array string_to_table array_to_string similar_to_escape similar_escape textcat textlen
get_byte set_byte get_bit set_bit bit_count
array_length array_lower array_upper array_ndims array_dims array_position array_positions array_append
array_prepend array_cat array_remove array_replace array_fill array_to_json array_shuffle array_sample
array_reverse array_sort cardinality unnest trim_array generate_series generate_subscripts
to_json to_jsonb row_to_json json_build_array jsonb_build_array json_build_object jsonb_build_object
json_object jsonb_object json_array_length jsonb_array_length json_each jsonb_each json_each_text
jsonb_each_text json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text
json_object_keys jsonb_object_keys json_array_elements jsonb_array_elements json_array_elements_text
jsonb_array_elements_text json_typeof jsonb_typeof json_strip_nulls jsonb_strip_nulls jsonb_pretty
jsonb_set jsonb_set_lax jsonb_insert jsonb_concat jsonb_delete jsonb_delete_path jsonb_path_query
jsonb_path_query_array jsonb_path_query_first jsonb_path_exists jsonb_path_match json_populate_record
jsonb_populate_record json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record
json_to_recordset jsonb_to_recordset jsonb_contains jsonb_exists json_scalar json_serialize
jsonb_path_query_tz jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_array_tz
jsonb_path_query_first_tz jsonb_populate_record_valid
xmlparse xmlserialize xmlelement xmlforest xmlconcat xmlpi xmlroot xmlcomment xmltext xpath xpath_exists
xml_is_well_formed xml_is_well_formed_document xml_is_well_formed_content xmlexists
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd
ts_headline ts_lexize ts_parse ts_token_type ts_debug setweight strip numnode querytree tsvector_to_array
array_to_tsvector ts_delete ts_filter get_current_ts_config
gen_random_uuid uuid_generate_v4 uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version
host hostmask masklen netmask network broadcast family abbrev inet_merge inet_same_family set_masklen
text inet_client_addr inet_client_port inet_server_addr inet_server_port macaddr8_set7bit trunc
lower_inc upper_inc lower_inf upper_inf isempty range_merge multirange
area center diameter height width radius npoints isclosed isopen pclose popen box circle line lseg path
point polygon bound_box
version current_user current_role session_user user system_user current_catalog current_schema
current_schemas current_database current_setting current_query pg_backend_pid pg_postmaster_start_time
pg_conf_load_time pg_is_in_recovery pg_is_wal_replay_paused pg_current_wal_lsn pg_current_wal_insert_lsn
pg_current_wal_flush_lsn pg_last_wal_receive_lsn pg_last_wal_replay_lsn pg_last_xact_replay_timestamp
pg_wal_lsn_diff pg_walfile_name pg_jit_available pg_trigger_depth pg_listening_channels
pg_notification_queue_usage pg_blocking_pids pg_safe_snapshot_blocking_pids pg_is_other_temp_schema
pg_my_temp_schema pg_client_encoding pg_encoding_to_char pg_char_to_encoding inet_client_addr
txid_current txid_current_if_assigned txid_current_snapshot txid_snapshot_xmin txid_snapshot_xmax
txid_snapshot_xip txid_visible_in_snapshot txid_status pg_current_xact_id pg_current_xact_id_if_assigned
pg_current_snapshot pg_snapshot_xmin pg_snapshot_xmax pg_snapshot_xip pg_visible_in_snapshot pg_xact_status
pg_xact_commit_timestamp pg_last_committed_xact age mxid_age
has_any_column_privilege has_column_privilege has_database_privilege has_foreign_data_wrapper_privilege
has_function_privilege has_language_privilege has_parameter_privilege has_schema_privilege
has_sequence_privilege has_server_privilege has_table_privilege has_tablespace_privilege has_type_privilege
has_largeobject_privilege pg_has_role row_security_active acldefault aclexplode makeaclitem
pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_operator_is_visible pg_opclass_is_visible
pg_opfamily_is_visible pg_collation_is_visible pg_conversion_is_visible pg_statistics_obj_is_visible
pg_ts_parser_is_visible pg_ts_dict_is_visible pg_ts_template_is_visible pg_ts_config_is_visible
format_type pg_typeof pg_get_viewdef pg_get_ruledef pg_get_indexdef pg_get_constraintdef pg_get_triggerdef
pg_get_functiondef pg_get_function_arguments pg_get_function_identity_arguments pg_get_function_result
pg_get_function_sqlbody pg_get_expr pg_get_userbyid pg_get_serial_sequence pg_get_statisticsobjdef
pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions pg_get_partkeydef
pg_get_partition_constraintdef pg_get_keywords pg_get_catalog_foreign_keys pg_get_object_address
pg_get_replica_identity_index pg_get_acl pg_describe_object pg_identify_object pg_identify_object_as_address
pg_index_column_has_property pg_index_has_property pg_indexam_has_property pg_options_to_table
pg_tablespace_location pg_tablespace_databases pg_settings_get_flags pg_basetype pg_input_is_valid
pg_input_error_info pg_char_to_encoding pg_column_compression pg_column_toast_chunk_id pg_get_wal_resource_managers
obj_description col_description shobj_description to_regclass to_regtype to_regtypemod to_regproc
to_regprocedure to_regoper to_regoperator to_regrole to_regnamespace to_regcollation to_regconfig
to_regdictionary pg_relation_filenode pg_relation_filepath pg_filenode_relation
pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size pg_database_size pg_tablespace_size
pg_column_size pg_size_pretty pg_size_bytes pg_partition_tree pg_partition_ancestors pg_partition_root
pg_sleep pg_sleep_for pg_sleep_until currval lastval pg_sequence_last_value pg_sequence_parameters
lo_get loread lo_lseek lo_lseek64 lo_tell lo_tell64 lo_close
pg_stat_get_activity pg_stat_get_backend_pid pg_stat_get_numscans pg_stat_get_tuples_returned
pg_stat_get_live_tuples pg_stat_get_dead_tuples pg_stat_get_last_vacuum_time pg_stat_get_last_analyze_time
pg_stat_get_db_numbackends pg_stat_get_progress_info pg_show_all_settings pg_show_all_file_settings
pg_lock_status pg_prepared_xact pg_cursor pg_prepared_statement pg_timezone_names pg_timezone_abbrevs
pg_available_extensions pg_available_extension_versions pg_extension_update_paths pg_get_backend_memory_contexts
pg_config pg_control_system pg_control_checkpoint pg_control_recovery pg_control_init pg_event_trigger_ddl_commands
int2 int4 int8 float4 float8 numeric bool varchar bpchar date time timestamp timestamptz interval bytea
jsonb json uuid inet cidr macaddr oid regclass regtype regproc int4range int8range numrange tsrange
tstzrange daterange int4multirange int8multirange nummultirange tsmultirange tstzmultirange datemultirange
isnan num_nulls num_nonnulls collation_for pg_collation_for like_escape
`
    .split(/\s+/)
    .filter((name) => name.length > 0),
);

function functionEffect(parts: readonly string[]): Effect | undefined {
  let bare: string | undefined;
  if (parts.length === 1) bare = parts[0];
  else if (parts.length === 2 && parts[0] === 'pg_catalog') bare = parts[1];
  if (bare === undefined) return UNKNOWN_FUNCTION;
  const known = KNOWN_EFFECTS.get(bare);
  if (known) return known;
  for (const [prefix, effect] of EFFECT_PREFIXES) if (bare.startsWith(prefix)) return effect;
  return HARMLESS.has(bare) ? undefined : UNKNOWN_FUNCTION;
}

/** Operator symbols that resolve to built-in functions on built-in types. */
const BUILTIN_OPERATORS = new Set(
  `= <> != < > <= >= + - * / % ^ || ~~ !~~ ~~* !~~* ~ ~* !~ !~* @> <@ && -> ->> #> #>> ? ?| ?& @? @@ @@@
| & # << >> <<= >>= |/ ||/ @ <-> &< &> <<| |>> &<| |&> <^ >^ ?# ?- ?-| ?|| @-@ ## ~= !! -|- #- #<= #<> #= #> #>=
~<~ ~<=~ ~>=~ ~>~ BETWEEN NOT_BETWEEN BETWEEN_SYMMETRIC NOT_BETWEEN_SYMMETRIC`
    .split(/\s+/)
    .map((op) => op.replace(/_/g, ' ')),
);

const TABLESAMPLE_METHODS = new Set(['system', 'bernoulli']);

// ---------------------------------------------------------------------------------------------
// The walk: one pass over a statement's tree collecting everything the verdict depends on.

interface Dml {
  readonly node: Obj;
  readonly what: string;
}

function strings(list: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    const s = (item as { String?: { sval?: string } }).String;
    out.push(s?.sval ?? '');
  }
  return out;
}

function relationName(rv: unknown): string {
  const r = (rv ?? {}) as { catalogname?: string; schemaname?: string; relname?: string };
  let name = r.relname ?? '';
  if (r.schemaname) name = `${r.schemaname}.${name}`;
  if (r.catalogname) name = `${r.catalogname}.${name}`;
  return name;
}

const DML_VERBS: Record<string, string> = {
  InsertStmt: 'INSERT into',
  UpdateStmt: 'UPDATE on',
  DeleteStmt: 'DELETE on',
  MergeStmt: 'MERGE into',
};

const LOCK_STRENGTH: Record<string, string> = {
  LCS_FORKEYSHARE: 'FOR KEY SHARE',
  LCS_FORSHARE: 'FOR SHARE',
  LCS_FORNOKEYUPDATE: 'FOR NO KEY UPDATE',
  LCS_FORUPDATE: 'FOR UPDATE',
};

class Facts {
  readonly tables = new Set<string>();
  readonly functions = new Set<string>();
  readonly unknownFunctions = new Set<string>();
  readonly dml: Dml[] = [];
  readonly locks: string[] = [];
  readonly effects: { kind: ActionKind; why: string }[] = [];
  into: string | undefined;
  /** CTE names visible at the current point of the walk, so CTE references are not taken for tables. */
  private readonly ctes: string[] = [];

  visit(value: unknown): void {
    if (Array.isArray(value)) {
      for (const item of value) if (item !== null && typeof item === 'object') this.visit(item);
      return;
    }
    this.object(value as Obj);
  }

  private object(o: Obj): void {
    // Only RangeVar has relname in a raw parse tree; it may appear wrapped or as a bare struct.
    if (typeof o.relname === 'string') {
      if (o.schemaname === undefined && o.catalogname === undefined && this.ctes.includes(o.relname)) return;
      this.tables.add(relationName(o));
      return;
    }
    const mark = this.ctes.length;
    if (o.withClause) this.withClause(o.withClause as Obj);
    // Locking clauses and INTO live only on SelectStmt, which is sometimes a bare struct (UNION arms).
    if (Array.isArray(o.lockingClause) && o.lockingClause.length > 0) this.lock(o.lockingClause);
    if (o.intoClause) {
      const rel = (o.intoClause as Obj).rel;
      this.into = relationName(rel);
      this.tables.add(this.into);
    }
    for (const key in o) {
      if (key === 'withClause') continue;
      const child = o[key];
      if (child === null || typeof child !== 'object') continue;
      const c0 = key.charCodeAt(0);
      if (c0 >= 65 && c0 <= 90) this.typed(key, child as Obj);
      this.visit(child);
    }
    this.ctes.length = mark;
  }

  private withClause(w: Obj): void {
    const ctes = Array.isArray(w.ctes) ? (w.ctes as Obj[]) : [];
    const names = ctes.map((c) => ((c.CommonTableExpr ?? {}) as Obj).ctename as string);
    // A recursive WITH sees all its names in every body; otherwise each body sees only earlier ones,
    // so `WITH orders AS (SELECT * FROM orders)` still records the real table.
    if (w.recursive) this.ctes.push(...names);
    ctes.forEach((cte, i) => {
      this.visit(cte);
      if (!w.recursive) this.ctes.push(names[i]!);
    });
  }

  private lock(clauses: unknown[]): void {
    for (const c of clauses) {
      const lc = ((c as Obj).LockingClause ?? {}) as Obj;
      const rels = Array.isArray(lc.lockedRels)
        ? lc.lockedRels.map((r) => relationName((r as Obj).RangeVar))
        : [];
      const strength = LOCK_STRENGTH[lc.strength as string] ?? 'FOR UPDATE';
      this.locks.push(rels.length > 0 ? `${strength} OF ${rels.join(', ')}` : strength);
    }
  }

  private typed(type: string, node: Obj): void {
    switch (type) {
      case 'FuncCall':
        this.call(node.funcname);
        return;
      case 'CallStmt':
        // CALL's FuncCall is a bare struct, not a wrapped node.
        if (node.funccall) this.call((node.funccall as Obj).funcname);
        return;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt': {
        // The target of a DML statement is always a real table, even when a CTE shares its name.
        const target = relationName(node.relation);
        this.tables.add(target);
        this.dml.push({ node, what: `${DML_VERBS[type]} ${target}` });
        return;
      }
      case 'A_Expr':
        this.operator(node.name);
        return;
      case 'RangeTableSample': {
        const method = strings(node.method);
        const name = method.join('.');
        if (!(method.length === 1 && TABLESAMPLE_METHODS.has(name))) {
          this.effects.push({
            kind: 'unknown',
            why: `samples with method ${name}, whose effects are not known`,
          });
        }
        return;
      }
    }
  }

  private call(funcname: unknown): void {
    const parts = strings(funcname);
    const written = parts.join('.');
    this.functions.add(written);
    const effect = functionEffect(parts);
    if (effect === undefined) return;
    if (effect === UNKNOWN_FUNCTION) this.unknownFunctions.add(written);
    else this.effects.push({ kind: effect.kind, why: `calls ${written}(), which ${effect.what}` });
  }

  private operator(name: unknown): void {
    const parts = strings(name);
    const op = parts[parts.length - 1] ?? '';
    const qualifiedElsewhere = parts.length > 2 || (parts.length === 2 && parts[0] !== 'pg_catalog');
    if (qualifiedElsewhere || !BUILTIN_OPERATORS.has(op)) {
      this.effects.push({
        kind: 'unknown',
        why: `uses operator ${parts.join('.')}, whose function is not known`,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Verdicts per statement type

interface Verdict {
  kind: ActionKind;
  statement: string;
  why: string;
  /** The DML statement this verdict is about, so it is not counted again as a nested one. */
  root?: Obj;
  /** False when the statement is planned but not run (EXPLAIN without ANALYZE). */
  executes: boolean;
}

/** Statement types whose kind does not depend on their contents, with the words used in `why`. */
const FIXED: Record<string, readonly [ActionKind, string]> = {
  VariableShowStmt: ['read', 'SHOW'],
  ClosePortalStmt: ['read', 'CLOSE cursor'],
  DeallocateStmt: ['read', 'DEALLOCATE'],
  ListenStmt: ['read', 'LISTEN'],
  UnlistenStmt: ['read', 'UNLISTEN'],
  ConstraintsSetStmt: ['read', 'SET CONSTRAINTS'],
  // Transaction control changes nothing by itself; the statements inside are classified on their own.
  TransactionStmt: ['read', 'transaction control'],
  LockStmt: ['write', 'LOCK'],
  NotifyStmt: ['write', 'NOTIFY'],
  TruncateStmt: ['write', 'TRUNCATE'],
  CreateStmt: ['schema', 'CREATE TABLE'],
  CreateForeignTableStmt: ['schema', 'CREATE FOREIGN TABLE'],
  AlterTableStmt: ['schema', 'ALTER'],
  IndexStmt: ['schema', 'CREATE INDEX'],
  ViewStmt: ['schema', 'CREATE VIEW'],
  CreateSeqStmt: ['schema', 'CREATE SEQUENCE'],
  AlterSeqStmt: ['schema', 'ALTER SEQUENCE'],
  CreateFunctionStmt: ['schema', 'CREATE FUNCTION'],
  AlterFunctionStmt: ['schema', 'ALTER FUNCTION'],
  DefineStmt: ['schema', 'CREATE (aggregate, operator, type or collation)'],
  CreateDomainStmt: ['schema', 'CREATE DOMAIN'],
  AlterDomainStmt: ['schema', 'ALTER DOMAIN'],
  CompositeTypeStmt: ['schema', 'CREATE TYPE'],
  CreateEnumStmt: ['schema', 'CREATE TYPE (enum)'],
  CreateRangeStmt: ['schema', 'CREATE TYPE (range)'],
  AlterEnumStmt: ['schema', 'ALTER TYPE (enum)'],
  AlterTypeStmt: ['schema', 'ALTER TYPE'],
  CreateSchemaStmt: ['schema', 'CREATE SCHEMA'],
  CreateExtensionStmt: ['schema', 'CREATE EXTENSION'],
  AlterExtensionStmt: ['schema', 'ALTER EXTENSION'],
  AlterExtensionContentsStmt: ['schema', 'ALTER EXTENSION'],
  CommentStmt: ['schema', 'COMMENT'],
  RenameStmt: ['schema', 'RENAME'],
  AlterObjectSchemaStmt: ['schema', 'ALTER ... SET SCHEMA'],
  AlterObjectDependsStmt: ['schema', 'ALTER ... DEPENDS ON EXTENSION'],
  AlterOperatorStmt: ['schema', 'ALTER OPERATOR'],
  AlterCollationStmt: ['schema', 'ALTER COLLATION'],
  RuleStmt: ['schema', 'CREATE RULE'],
  CreateTrigStmt: ['schema', 'CREATE TRIGGER'],
  CreateOpClassStmt: ['schema', 'CREATE OPERATOR CLASS'],
  CreateOpFamilyStmt: ['schema', 'CREATE OPERATOR FAMILY'],
  AlterOpFamilyStmt: ['schema', 'ALTER OPERATOR FAMILY'],
  CreateStatsStmt: ['schema', 'CREATE STATISTICS'],
  AlterStatsStmt: ['schema', 'ALTER STATISTICS'],
  CreateConversionStmt: ['schema', 'CREATE CONVERSION'],
  CreateCastStmt: ['schema', 'CREATE CAST'],
  CreateTransformStmt: ['schema', 'CREATE TRANSFORM'],
  AlterTSDictionaryStmt: ['schema', 'ALTER TEXT SEARCH DICTIONARY'],
  AlterTSConfigurationStmt: ['schema', 'ALTER TEXT SEARCH CONFIGURATION'],
  ImportForeignSchemaStmt: ['schema', 'IMPORT FOREIGN SCHEMA'],
  GrantRoleStmt: ['privilege', 'GRANT/REVOKE role membership'],
  CreateRoleStmt: ['privilege', 'CREATE ROLE'],
  AlterRoleStmt: ['privilege', 'ALTER ROLE'],
  AlterRoleSetStmt: ['privilege', 'ALTER ROLE ... SET'],
  DropRoleStmt: ['privilege', 'DROP ROLE'],
  AlterDefaultPrivilegesStmt: ['privilege', 'ALTER DEFAULT PRIVILEGES'],
  ReassignOwnedStmt: ['privilege', 'REASSIGN OWNED'],
  DropOwnedStmt: ['privilege', 'DROP OWNED (drops objects and revokes privileges)'],
  AlterOwnerStmt: ['privilege', 'ALTER ... OWNER TO'],
  CreatePolicyStmt: ['privilege', 'CREATE POLICY (row-level security)'],
  AlterPolicyStmt: ['privilege', 'ALTER POLICY (row-level security)'],
  SecLabelStmt: ['privilege', 'SECURITY LABEL'],
  DoStmt: ['admin', 'DO block runs procedural code'],
  CallStmt: ['admin', 'CALL runs a procedure'],
  LoadStmt: ['admin', 'LOAD loads a shared library into the server'],
  AlterSystemStmt: ['admin', 'ALTER SYSTEM changes the server configuration'],
  CreatedbStmt: ['admin', 'CREATE DATABASE'],
  DropdbStmt: ['admin', 'DROP DATABASE'],
  AlterDatabaseStmt: ['admin', 'ALTER DATABASE'],
  AlterDatabaseSetStmt: ['admin', 'ALTER DATABASE ... SET'],
  AlterDatabaseRefreshCollStmt: ['admin', 'ALTER DATABASE ... REFRESH COLLATION VERSION'],
  CreateTableSpaceStmt: ['admin', 'CREATE TABLESPACE'],
  DropTableSpaceStmt: ['admin', 'DROP TABLESPACE'],
  AlterTableSpaceOptionsStmt: ['admin', 'ALTER TABLESPACE'],
  AlterTableMoveAllStmt: ['admin', 'ALTER TABLE ALL IN TABLESPACE'],
  ClusterStmt: ['admin', 'CLUSTER'],
  ReindexStmt: ['admin', 'REINDEX'],
  RefreshMatViewStmt: ['admin', 'REFRESH MATERIALIZED VIEW'],
  CheckPointStmt: ['admin', 'CHECKPOINT'],
  CreatePublicationStmt: ['admin', 'CREATE PUBLICATION'],
  AlterPublicationStmt: ['admin', 'ALTER PUBLICATION'],
  CreateSubscriptionStmt: ['admin', 'CREATE SUBSCRIPTION'],
  AlterSubscriptionStmt: ['admin', 'ALTER SUBSCRIPTION'],
  DropSubscriptionStmt: ['admin', 'DROP SUBSCRIPTION'],
  CreateEventTrigStmt: ['admin', 'CREATE EVENT TRIGGER'],
  AlterEventTrigStmt: ['admin', 'ALTER EVENT TRIGGER'],
  CreatePLangStmt: ['admin', 'CREATE LANGUAGE'],
  CreateAmStmt: ['admin', 'CREATE ACCESS METHOD'],
  CreateFdwStmt: ['admin', 'CREATE FOREIGN DATA WRAPPER'],
  AlterFdwStmt: ['admin', 'ALTER FOREIGN DATA WRAPPER'],
  CreateForeignServerStmt: ['admin', 'CREATE SERVER (access to another server)'],
  AlterForeignServerStmt: ['admin', 'ALTER SERVER (access to another server)'],
  CreateUserMappingStmt: ['admin', 'CREATE USER MAPPING (credentials for another server)'],
  AlterUserMappingStmt: ['admin', 'ALTER USER MAPPING (credentials for another server)'],
  DropUserMappingStmt: ['admin', 'DROP USER MAPPING'],
  ExecuteStmt: ['unknown', 'EXECUTE of a prepared statement whose text is not visible here'],
};

/** DROP of these object types is more than a schema change. */
const DROP_KINDS: Record<string, ActionKind> = {
  OBJECT_POLICY: 'privilege',
  OBJECT_PUBLICATION: 'admin',
  OBJECT_FOREIGN_SERVER: 'admin',
  OBJECT_FDW: 'admin',
  OBJECT_EVENT_TRIGGER: 'admin',
  OBJECT_ACCESS_METHOD: 'admin',
  OBJECT_LANGUAGE: 'admin',
};

const RELATION_OBJECTS = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_INDEX',
  'OBJECT_SEQUENCE',
  'OBJECT_FOREIGN_TABLE',
]);

/** ALTER TABLE subcommands that change who may see or change rows. */
const PRIVILEGE_ALTERS = new Set([
  'AT_EnableRowSecurity',
  'AT_DisableRowSecurity',
  'AT_ForceRowSecurity',
  'AT_NoForceRowSecurity',
  'AT_ChangeOwner',
]);

/**
 * Settings whose change lets later statements do more than their own text shows (triggers and
 * foreign keys switched off, the server's own logging and audit silenced, libraries loaded, the
 * session's read-only safety net lifted), so changing them is `admin`.
 */
const GUARDED_SETTINGS = new Set([
  'session_replication_role',
  'default_transaction_read_only',
  'allow_system_table_mods',
  'allow_in_place_tablespaces',
  'zero_damaged_pages',
  'ignore_checksum_failure',
  'ignore_invalid_pages',
  'ignore_system_indexes',
  'log_statement',
  'log_min_duration_statement',
  'log_min_duration_sample',
  'log_statement_sample_rate',
  'log_transaction_sample_rate',
  'log_min_messages',
  'log_min_error_statement',
  'log_duration',
  'log_parameter_max_length',
  'log_parameter_max_length_on_error',
  'log_replication_commands',
  'session_preload_libraries',
  'local_preload_libraries',
  'dynamic_library_path',
  'lo_compat_privileges',
]);

function constant(node: unknown): string | number | boolean | undefined {
  const n = (node ?? {}) as Obj;
  const c = (n.A_Const ?? n) as Obj;
  if (c.sval) return ((c.sval as Obj).sval as string | undefined) ?? '';
  if (c.ival) return ((c.ival as Obj).ival as number | undefined) ?? 0;
  if (c.boolval) return ((c.boolval as Obj).boolval as boolean | undefined) ?? false;
  if (n.String) return ((n.String as Obj).sval as string | undefined) ?? '';
  if (n.Integer) return ((n.Integer as Obj).ival as number | undefined) ?? 0;
  if (n.Boolean) return ((n.Boolean as Obj).boolval as boolean | undefined) ?? false;
  return undefined;
}

function clearlyOn(node: unknown): boolean {
  const v = constant(node);
  if (typeof v === 'string') return ['on', 'true', 'yes', '1'].includes(v.toLowerCase());
  return v === 1 || v === true;
}

/** EXPLAIN's ANALYZE option runs the statement unless it is explicitly turned off. */
function explainRuns(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  let runs = false;
  for (const o of options) {
    const d = ((o as Obj).DefElem ?? {}) as Obj;
    if (d.defname !== 'analyze') continue;
    if (d.arg === undefined) {
      runs = true;
      continue;
    }
    const v = constant(d.arg);
    const off =
      v === 0 || v === false || (typeof v === 'string' && ['off', 'false'].includes(v.toLowerCase()));
    runs = !off;
  }
  return runs;
}

function only(node: unknown): [string, Obj] {
  const n = (node ?? {}) as Obj;
  for (const key in n) return [key, n[key] as Obj];
  return ['', {}];
}

function judge(type: string, node: Obj, on: string): Verdict {
  switch (type) {
    case 'SelectStmt':
      return { kind: 'read', statement: type, why: `SELECT${on}`, executes: true };
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return {
        kind: 'write',
        statement: type,
        why: `${DML_VERBS[type]} ${relationName(node.relation)}`,
        root: node,
        executes: true,
      };
    case 'CopyStmt':
      return judgeCopy(node);
    case 'ExplainStmt': {
      const [innerType, inner] = only(node.query);
      if (explainRuns(node.options)) {
        const v = judge(innerType, inner, on);
        return { ...v, why: `EXPLAIN ANALYZE runs ${v.why}` };
      }
      return {
        kind: 'read',
        statement: type,
        why: `EXPLAIN without ANALYZE plans ${judge(innerType, inner, on).why} but does not run it`,
        executes: false,
      };
    }
    case 'PrepareStmt': {
      // A prepared statement is judged as what it will run; EXECUTE itself cannot be seen through.
      const [innerType, inner] = only(node.query);
      const v = judge(innerType, inner, on);
      return { ...v, why: `PREPARE ${node.name ?? ''} as ${v.why}` };
    }
    case 'DeclareCursorStmt': {
      const [innerType, inner] = only(node.query);
      const v = judge(innerType, inner, on);
      return { ...v, statement: type, why: `DECLARE CURSOR ${node.portalname ?? ''} for ${v.why}` };
    }
    case 'CreateTableAsStmt': {
      const what = node.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
      return { kind: 'schema', statement: type, why: what, executes: true };
    }
    case 'VariableSetStmt':
      return judgeSet(node);
    case 'DiscardStmt':
      // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT.
      return node.target === 'DISCARD_ALL'
        ? {
            kind: 'privilege',
            statement: type,
            why: 'DISCARD ALL resets the session authorization',
            executes: true,
          }
        : { kind: 'read', statement: type, why: 'DISCARD', executes: true };
    case 'FetchStmt':
      return { kind: 'read', statement: type, why: node.ismove ? 'MOVE' : 'FETCH', executes: true };
    case 'GrantStmt':
      return { kind: 'privilege', statement: type, why: node.is_grant ? 'GRANT' : 'REVOKE', executes: true };
    case 'DropStmt': {
      const objType = (node.removeType as string | undefined) ?? '';
      const label = `DROP ${objType.replace(/^OBJECT_/, '').replace(/_/g, ' ')}`;
      return { kind: DROP_KINDS[objType] ?? 'schema', statement: type, why: label, executes: true };
    }
    case 'AlterTableStmt': {
      const cmds = Array.isArray(node.cmds) ? node.cmds : [];
      const priv = cmds.some((c) =>
        PRIVILEGE_ALTERS.has(((c as Obj).AlterTableCmd as Obj | undefined)?.subtype as string),
      );
      return priv
        ? {
            kind: 'privilege',
            statement: type,
            why: 'ALTER TABLE changes ownership or row security',
            executes: true,
          }
        : { kind: 'schema', statement: type, why: 'ALTER', executes: true };
    }
    case 'VacuumStmt':
      return {
        kind: 'admin',
        statement: type,
        why: node.is_vacuumcmd ? 'VACUUM' : 'ANALYZE',
        executes: true,
      };
  }
  const fixed = FIXED[type];
  if (fixed) return { kind: fixed[0], statement: type, why: fixed[1], executes: true };
  return {
    kind: 'unknown',
    statement: type || 'unknown',
    why: `${type || 'this'} statement is not known to the classifier`,
    executes: true,
  };
}

function judgeCopy(node: Obj): Verdict {
  const source = node.relation ? relationName(node.relation) : 'a query';
  const dir = node.is_from ? 'FROM' : 'TO';
  if (node.is_program) {
    return {
      kind: 'admin',
      statement: 'CopyStmt',
      why: `COPY ${dir} PROGRAM runs a program on the database server`,
      executes: true,
    };
  }
  if (node.filename !== undefined) {
    return {
      kind: 'admin',
      statement: 'CopyStmt',
      why: `COPY ${dir} a file on the database server`,
      executes: true,
    };
  }
  if (node.is_from)
    return { kind: 'write', statement: 'CopyStmt', why: `COPY FROM STDIN into ${source}`, executes: true };
  return { kind: 'read', statement: 'CopyStmt', why: `COPY ${source} TO STDOUT`, executes: true };
}

function judgeSet(node: Obj): Verdict {
  const name = ((node.name as string | undefined) ?? '').toLowerCase();
  const verb = node.kind === 'VAR_RESET' ? 'RESET' : 'SET';
  const v = (kind: ActionKind, why: string): Verdict => ({
    kind,
    statement: 'VariableSetStmt',
    why,
    executes: true,
  });
  if (node.kind === 'VAR_RESET_ALL') return v('read', 'RESET ALL');
  // GUC names are case-insensitive in the server, so `SET "Role"` is SET ROLE too.
  if (name === 'role' || name === 'session_authorization') {
    return v(
      'privilege',
      `${verb} ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'} changes the acting role`,
    );
  }
  const args = Array.isArray(node.args) ? node.args : [];
  if (name === 'session characteristics') {
    const liftsReadOnly = args.some((a) => {
      const d = ((a as Obj).DefElem ?? {}) as Obj;
      return d.defname === 'transaction_read_only' && !clearlyOn(d.arg);
    });
    return liftsReadOnly
      ? v('admin', 'SET SESSION CHARACTERISTICS lifts the session read-only default')
      : v('read', 'SET SESSION CHARACTERISTICS');
  }
  if (name === 'default_transaction_read_only') {
    return verb === 'SET' && node.kind === 'VAR_SET_VALUE' && args.length === 1 && clearlyOn(args[0])
      ? v('read', 'SET default_transaction_read_only on')
      : v('admin', `${verb} default_transaction_read_only can lift the session read-only default`);
  }
  if (GUARDED_SETTINGS.has(name) || name.startsWith('pgaudit.')) {
    return v('admin', `${verb} ${name} changes a setting that guards the server`);
  }
  if (name === 'search_path') {
    const path = args.map((a) => String(constant(a) ?? '').toLowerCase());
    const at = path.indexOf('pg_catalog');
    if (at > 0)
      return v(
        'admin',
        'SET search_path puts schemas before pg_catalog, so built-in functions can be shadowed',
      );
  }
  return v('read', `${verb} ${name || 'parameter'} (session setting)`);
}

function listTables(tables: ReadonlySet<string>): string {
  if (tables.size === 0) return '';
  const names = [...tables];
  return names.length > 4
    ? ` on ${names.slice(0, 4).join(', ')} and ${names.length - 4} more`
    : ` on ${names.join(', ')}`;
}

function classifyStatement(stmt: Obj, text: string): SqlPart {
  const [type, node] = only(stmt);
  const facts = new Facts();
  facts.visit(stmt);
  // DROP names its relations as plain name lists rather than RangeVars.
  if (type === 'DropStmt' && RELATION_OBJECTS.has(node.removeType as string)) {
    for (const o of Array.isArray(node.objects) ? node.objects : []) {
      const name = strings(((o as Obj).List as Obj | undefined)?.items).join('.');
      if (name) facts.tables.add(name);
    }
  }
  const v = judge(type, node, listTables(facts.tables));
  let kind = v.kind;
  let statement = v.statement;
  let why = v.why;
  if (v.executes) {
    const nested = facts.dml.filter((d) => d.node !== v.root);
    if (nested.length > 0 && KIND_RISK[kind] < KIND_RISK.write) {
      kind = 'write';
      const where = type === 'SelectStmt' || v.statement === 'SelectStmt' ? 'CTE' : 'query';
      why += ` with a data-modifying ${where} (${nested.map((d) => d.what).join(', ')})`;
    }
    // Locking reads are classified `write`: FOR UPDATE/SHARE takes row locks that block other
    // writers until the transaction ends, which is an effect on others a plain read never has.
    if (facts.locks.length > 0 && KIND_RISK[kind] < KIND_RISK.write) {
      kind = 'write';
      why += ` ${facts.locks.join(', ')} takes row locks`;
    }
    // SELECT INTO creates a table; the server itself turns it into CREATE TABLE AS.
    if (facts.into !== undefined && KIND_RISK[kind] < KIND_RISK.schema) {
      kind = 'schema';
      statement = 'CreateTableAsStmt';
      why = `SELECT INTO creates table ${facts.into}`;
    }
  }
  // Functions and operators count even without execution: the planner folds constant calls.
  const base = why;
  for (const e of facts.effects) {
    if (KIND_RISK[e.kind] > KIND_RISK[kind]) {
      kind = e.kind;
      why = `${base} ${e.why}`;
    }
  }
  const unknown = [...facts.unknownFunctions];
  const kindWithout = kind;
  const whyWithout = why;
  if (unknown.length > 0 && KIND_RISK[kind] < KIND_RISK.unknown) {
    kind = 'unknown';
    why = unknownWhy(why, unknown);
  }
  return {
    kind,
    text,
    statement,
    tables: [...facts.tables],
    functions: [...facts.functions],
    why,
    unknownFunctions: unknown,
    kindWithoutUnknownFunctions: kindWithout,
    whyWithoutUnknownFunctions: whyWithout,
  };
}

/** A function (as written, `name` or `schema.name`) known to be a harmless built-in. */
export function knownHarmless(name: string): boolean {
  return functionEffect(name.split('.')) === undefined;
}
