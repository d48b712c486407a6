/**
 * The target → caller direction when masking applies to the session: every message is framed
 * whole so result values can be rewritten.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 *
 * Which RowDescription governs a DataRow: a simple Query's rows follow its own RowDescription;
 * an Execute's rows do not (a driver that described the statement once, or never, gets bare
 * DataRows). So before every Execute the gateway sends its own Describe of the portal and
 * swallows the answer: the rows that follow always come with a description that names their
 * source columns, types and formats. Responses come in request order, so a queue of what was
 * sent tells which RowDescription/NoData answers which Describe; after an error in an extended
 * query the target skips to Sync, and so does the queue.
 *
 * How values change, keeping every message valid for its declared type and format:
 *  - a column a column rule covers is announced as `text` (type OID 25) and carries the masked
 *    text, which is also valid text in binary format (its UTF-8 bytes);
 *  - detectors rewrite text in place in columns of text-like types, in either format, and in the
 *    text format of array, composite and other types whose text form quotes strings;
 *  - a value of a number, binary or other type a detector flags (a card number kept in a bigint)
 *    cannot hold a masked form, so it is sent as NULL.
 * Column rules also follow values through expressions: the text of every statement sent is traced
 * (lineage.ts, column-masks.ts), so `lower(email)`, a CTE or a view over a masked column is
 * masked like the column itself, whatever RowDescription says of its source.
 *
 * COPY TO STDOUT in text or CSV format is masked field by field: CopyOutResponse names no
 * columns, so the COPY's own text says which column each field is (the table's columns in
 * catalog order, or the query's output columns), and each row is split, masked and put back
 * with COPY's own escaping (copy-fields.ts). Binary COPY is read tuple by tuple (copy-binary.ts)
 * and re-framed into CopyData messages of whole tuples; since it does not say the columns' types,
 * they are learned from the catalog (a table's pg_attribute; a query's output, from a temporary
 * view that is rolled back) before the first tuple is sent. A masked field of a text type carries
 * the masked text; one of any other type cannot hold it and is sent as NULL, as are values of a
 * number or binary type a detector flags. When the types cannot be learned, or the stream cannot
 * be read, the session is ended rather than send unmasked data; a session where nothing is masked
 * passes binary COPY as it is. Notices, errors and notifications are scanned too, since they
 * echo values ("Key (email)=(...) already exists").
 */

import type { SessionMasker } from '../../core/masking/masker.ts';
import { type MaskSpec, STRATEGY_RANK } from '../../core/masking/strategy.ts';
import type { RelationInfo, TableColumns } from './catalog.ts';
import { BackendType, type Frame, FrontendType, MessageReader, PgProtocolError } from './codec.ts';
import { ColumnMasks, type RelationName } from './column-masks.ts';
import { type BinaryCopyItem, BinaryCopyReader, encodeTuple } from './copy-binary.ts';
import { type CopyField, encodeField, joinRow, splitRow } from './copy-fields.ts';
import { type CopyFormat, type Item, lineageOf, type StatementLineage } from './lineage.ts';
import type { RelayHooks } from './relay.ts';
import { shapeOf } from './shape.ts';

export interface MaskingHooks extends RelayHooks {
  /** Table OIDs → columns, from the catalog (cached answers synchronously when possible). */
  cached(oid: number): TableColumns | null | undefined;
  lookup(oids: readonly number[]): Promise<unknown>;
  /** Relations by name (cached answers synchronously when possible), for traced columns. */
  relations(schema: string | undefined, table: string): readonly RelationInfo[] | undefined;
  lookupRelations(names: readonly RelationName[]): Promise<unknown>;
  /** Output column types of a query (cached: types, null if they cannot be learned, or undefined). */
  queryTypes(query: string): readonly number[] | null | undefined;
  lookupQueryTypes(query: string): Promise<unknown>;
  /** Output produced after an asynchronous lookup. */
  write(out: Buffer[]): void;
  pauseUpstream(): void;
  resumeUpstream(): void;
  /** Masking cannot go on safely: end the session with this message. */
  fail(message: string): void;
}

/** Largest single target message framed whole (a DataRow with masking on). */
const MAX_BACKEND_MESSAGE = 256 * 1024 * 1024;

const T_TEXT = 25;
/** Types whose binary form is the UTF-8 text itself. */
const TEXT_LIKE = new Set([25, 1043, 1042, 19, 114, 142, 705, 18]);
const JSONB = 3802;
const INT2 = 21;
const INT4 = 23;
const INT8 = 20;
const NUMERIC = 1700;
/** Types a masked text can stand in for in binary COPY (whose columns keep their types). */
const COPY_TEXT = new Set([25, 1043, 1042]);
/** Binary sizes of the integers, checked so a type learned wrongly fails instead of passing. */
const INT_SIZE = new Map([
  [INT2, 2],
  [INT4, 4],
  [INT8, 8],
]);
/** Types whose values cannot contain anything a detector looks for. */
const NOTHING_TO_FIND = new Set([
  16, // bool
  700, // float4
  701, // float8
  1082, // date
  1083, // time
  1266, // timetz
  1114, // timestamp
  1184, // timestamptz
  1186, // interval
  2950, // uuid
  26, // oid
  28, // xid
  5069, // xid8
  869, // inet
  650, // cidr
  829, // macaddr
  774, // macaddr8
  3220, // pg_lsn
  2205, // regclass
  2206, // regtype
]);

interface Column {
  /** The type the target sent (a masked column is announced to the caller as text). */
  readonly type: number;
  readonly binary: boolean;
  readonly spec: MaskSpec | undefined;
}

type Pending =
  | {
      readonly t: 'query';
      readonly statements?: readonly StatementLineage[] | undefined;
      at: number;
      readonly text?: string | undefined;
    }
  | { readonly t: 'sync' }
  | {
      readonly t: 'describe';
      readonly ours: boolean;
      readonly portal: boolean;
      /** The statement described; undefined: not traced. */
      readonly lineage?: StatementLineage | undefined;
      readonly text?: string | undefined;
    };

/** The statement running when the target reports an error or notice. */
interface Running {
  readonly lineage: StatementLineage | undefined;
  readonly text: string | undefined;
}

/** COPY TO output being masked field by field. */
interface CopyOut {
  readonly format: CopyFormat;
  readonly specs: readonly (MaskSpec | undefined)[];
  header: boolean;
}

/** Binary COPY TO output being masked tuple by tuple. */
interface BinaryOut {
  readonly specs: readonly (MaskSpec | undefined)[];
  /** Type OIDs of the columns, as learned from the catalog. */
  readonly types: readonly number[];
  readonly reader: BinaryCopyReader;
}

/** What the catalog must still say before a result can be masked. */
interface Missing {
  readonly oids: number[];
  readonly relations: RelationName[];
  readonly queries: string[];
}

/** Rounds of catalog lookups for one result (views over views reveal more names each round). */
const MAX_LOOKUP_ROUNDS = 8;
const MAX_LINEAGE_CACHE = 500;

const EMPTY = Buffer.alloc(0);

/** A statement whose text could not be traced: every column it returns gets the strictest mask. */
const UNTRACEABLE: StatementLineage = { items: undefined };

export class MaskingRelay {
  readonly #hooks: MaskingHooks;
  #masker: SessionMasker;
  readonly #reader = new MessageReader({ side: 'backend', maxMessage: MAX_BACKEND_MESSAGE });
  readonly #pending: Pending[] = [];
  #skipToSync = false;
  /** The description rows are decoded with; undefined: no rows expected. */
  #columns: Column[] | undefined;
  #copyText = false;
  #copy: CopyOut | undefined;
  #binary: BinaryOut | undefined;
  /** Traced statements by prepared-statement and portal name, and SQL-level cursors/PREPAREs. */
  readonly #statementLineage = new Map<string, StatementLineage | undefined>();
  readonly #portalLineage = new Map<string, StatementLineage>();
  readonly #statementText = new Map<string, string>();
  readonly #portalText = new Map<string, string>();
  readonly #sqlNames = new Map<string, readonly Item[] | undefined>();
  readonly #lineageCache = new Map<string, readonly StatementLineage[] | undefined>();
  /** The statement an Execute runs, once its portal was described (for COPY in extended query). */
  #executing: StatementLineage | undefined;
  #executingText: string | undefined;
  /** The last Parse sent, for errors it may cause before anything is executed. */
  #parsing: Running | undefined;
  #blocked = false;
  #failed = false;

  constructor(masker: SessionMasker, hooks: MaskingHooks) {
    this.#masker = masker;
    this.#hooks = hooks;
  }

  /** From the next message on, mask with this (an approved unmask passes an empty masker). */
  set masker(masker: SessionMasker) {
    this.#masker = masker;
  }

  /** Waiting for the catalog: the target's bytes are held until it answers. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Whole messages only are ever written, so the gateway's own may go out at any time. */
  get atBoundary(): boolean {
    return true;
  }

  inject(_message: Buffer): boolean {
    return false;
  }

  /**
   * Caller messages about to go to the target (one message per buffer): noted in the queue of
   * expected answers, with the gateway's Describe put before each Execute.
   */
  outgoing(buffers: readonly Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    for (const b of buffers) {
      const type = b[0]!;
      switch (type) {
        case FrontendType.Query:
          if (this.#masker.hasColumns) {
            const text = cString(b, 5);
            this.#pending.push({ t: 'query', statements: this.#trace(text), at: 0, text });
          } else if (this.#masker.hasDetectors && /copy/i.test(cString(b, 5))) {
            // Detectors alone need no tracing, except to learn the column types of binary COPY.
            const text = cString(b, 5);
            this.#pending.push({ t: 'query', statements: this.#trace(text, true), at: 0, text });
          } else this.#pending.push({ t: 'query', at: 0 });
          break;
        case FrontendType.FunctionCall:
          this.#pending.push({ t: 'query', at: 0 });
          break;
        case FrontendType.Parse:
          if (this.#masker.hasColumns) {
            const name = cString(b, 5);
            const text = cString(b, 5 + Buffer.byteLength(name) + 1);
            this.#statementLineage.set(name, this.#trace(text)?.[0]);
            this.#statementText.set(name, text);
            this.#parsing = { lineage: this.#statementLineage.get(name), text };
          }
          break;
        case FrontendType.Bind:
          if (this.#masker.hasColumns) {
            const portal = cString(b, 5);
            const statement = cString(b, 5 + Buffer.byteLength(portal) + 1);
            this.#portalLineage.set(portal, this.#preparedLineage(statement));
            this.#portalText.set(portal, this.#statementText.get(statement) ?? '');
          }
          break;
        case FrontendType.Close:
          if (this.#masker.hasColumns) {
            (b[5] === 0x50 ? this.#portalLineage : this.#statementLineage).delete(cString(b, 6));
            (b[5] === 0x50 ? this.#portalText : this.#statementText).delete(cString(b, 6));
          }
          break;
        case FrontendType.Sync:
          this.#pending.push({ t: 'sync' });
          this.#skipToSync = false;
          break;
        case FrontendType.Describe:
          if (!this.#skipToSync) {
            const portal = b[5] === 0x50;
            const name = cString(b, 6);
            this.#pending.push({
              t: 'describe',
              ours: false,
              portal,
              lineage: portal ? this.#cursorLineage(name) : this.#preparedLineage(name),
            });
          }
          break;
        case FrontendType.Execute: {
          const end = b.indexOf(0, 5);
          const name = b.subarray(5, end < 0 ? b.length : end);
          const describe = Buffer.allocUnsafe(5 + 1 + name.length + 1);
          describe[0] = FrontendType.Describe;
          describe.writeInt32BE(describe.length - 1, 1);
          describe[5] = 0x50; // 'P'
          name.copy(describe, 6);
          describe[describe.length - 1] = 0;
          out.push(describe);
          if (!this.#skipToSync)
            this.#pending.push({
              t: 'describe',
              ours: true,
              portal: true,
              lineage: this.#cursorLineage(name.toString('utf8')),
              text: this.#portalText.get(name.toString('utf8')),
            });
          break;
        }
      }
      out.push(b);
    }
    return out;
  }

  process(chunk: Buffer, out: Buffer[]): void {
    this.#reader.push(chunk);
    if (this.#blocked) return;
    this.#pump(out);
  }

  #pump(out: Buffer[]): void {
    try {
      for (let f = this.#reader.next(); f; f = this.#reader.next()) {
        if (
          ((f.type === BackendType.RowDescription && this.#masker.hasColumns) ||
            (f.type === BackendType.CopyOutResponse &&
              (this.#masker.hasColumns || (f.raw[5] !== 0 && this.#masker.hasDetectors)))) &&
          this.#missing(f)
        ) {
          this.#block(f, 1);
          return;
        }
        const m = this.#message(f);
        if (m.length > 0) out.push(m);
      }
    } catch (err) {
      if (err instanceof PgProtocolError) throw err;
      this.#fail(`masking failed: ${(err as Error).message}`);
    }
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#blocked = true;
    this.#hooks.fail(message);
  }

  #block(frame: Frame, round: number): void {
    this.#blocked = true;
    this.#hooks.pauseUpstream();
    const need = this.#missing(frame);
    Promise.all([
      need && need.oids.length > 0 ? this.#hooks.lookup(need.oids) : undefined,
      need && need.relations.length > 0 ? this.#hooks.lookupRelations(need.relations) : undefined,
      ...(need?.queries ?? []).map((q) => this.#hooks.lookupQueryTypes(q)),
    ]).then(
      () => {
        if (this.#failed) return;
        // Views name further relations once their definitions are known.
        if (round < MAX_LOOKUP_ROUNDS && this.#missing(frame)) {
          this.#block(frame, round + 1);
          return;
        }
        this.#blocked = false;
        const out: Buffer[] = [];
        try {
          const m = this.#message(frame);
          if (m.length > 0) out.push(m);
          this.#pump(out);
        } catch (err) {
          this.#fail(`masking failed: ${(err as Error).message}`);
          return;
        }
        if (out.length > 0) this.#hooks.write(out);
        if (!this.#blocked) this.#hooks.resumeUpstream();
      },
      (err: Error) =>
        this.#fail(`Airlock could not read the target's catalog to mask this result (${err.message})`),
    );
  }

  /** What the catalog must still say before this message can be masked; undefined: nothing. */
  #missing(f: Frame): Missing | undefined {
    const masks = this.#columnMasks();
    let oids: number[] = [];
    const queries: string[] = [];
    if (f.type === BackendType.RowDescription) {
      oids = tableOids(f).filter((oid) => this.#hooks.cached(oid) === undefined);
      this.#rowDescription(f, masks, this.#peekLineage(), undefined, true);
    } else this.#copyOut(f, masks, this.#peekLineage(), queries);
    const relations = [...masks.missing.values()];
    return oids.length > 0 || relations.length > 0 || queries.length > 0
      ? { oids, relations, queries }
      : undefined;
  }

  #columnMasks(): ColumnMasks {
    return new ColumnMasks(this.#masker, {
      relations: (schema, table) => this.#hooks.relations(schema, table),
    });
  }

  /** Lineage of the statements of a Query or Parse, when column rules apply. */
  #trace(sql: string, copyOnly = false): readonly StatementLineage[] | undefined {
    if (!this.#masker.hasColumns && !copyOnly) return undefined;
    // Where a value comes from does not depend on literal values, so statements of one shape
    // share a trace — except COPY, whose options (delimiter, quote, NULL) are literals.
    const shape = shapeOf(sql)?.key;
    const key = shape !== undefined && !/^\s*copy\b/i.test(shape) ? `s:${shape}` : `t:${sql}`;
    let l = this.#lineageCache.get(key);
    if (l === undefined && !this.#lineageCache.has(key)) {
      l = lineageOf(sql);
      if (this.#lineageCache.size >= MAX_LINEAGE_CACHE) this.#lineageCache.clear();
      this.#lineageCache.set(key, l);
    }
    // SQL-level cursors and prepared statements: what their FETCH or EXECUTE will return.
    for (const st of l ?? [])
      if (st.defines) this.#sqlNames.set(`${st.defines.kind}:${st.defines.name}`, st.items);
    return l;
  }

  /**
   * A protocol-level statement name: as Parse defined it, or else as SQL PREPARE did (a Bind may
   * name either).
   */
  #preparedLineage(name: string): StatementLineage {
    if (this.#statementLineage.has(name)) return this.#statementLineage.get(name) ?? UNTRACEABLE;
    return { items: undefined, uses: { kind: 'prepared', name } };
  }

  /** A portal name: as Bind defined it, or else as SQL DECLARE did (Execute may name a cursor). */
  #cursorLineage(name: string): StatementLineage {
    if (this.#portalLineage.has(name)) return this.#portalLineage.get(name) ?? UNTRACEABLE;
    return { items: undefined, uses: { kind: 'cursor', name } };
  }

  /**
   * The statement whose RowDescription or CopyOutResponse comes next: null when it is not known
   * which (nothing traced), so only the source columns RowDescription names are judged.
   */
  #peekLineage(): StatementLineage | null {
    const head = this.#pending[0];
    if (head?.t === 'query')
      return head.statements?.[head.at] ?? (head.text === undefined ? null : UNTRACEABLE);
    if (head?.t === 'describe') return head.lineage ?? UNTRACEABLE;
    return this.#executing ?? null;
  }

  /** Output items of a traced statement (FETCH and EXECUTE: of what they name). */
  #items(l: StatementLineage): readonly Item[] | undefined {
    if (!l.uses) return l.items;
    return this.#sqlNames.get(`${l.uses.kind}:${l.uses.name}`);
  }

  /** One target message → what the caller gets (empty: nothing). */
  #message(f: Frame): Buffer {
    const out = this.#rewrite(f);
    const observe = this.#hooks.observe;
    if (
      observe &&
      (f.type === BackendType.CommandComplete ||
        f.type === BackendType.ErrorResponse ||
        f.type === BackendType.NoticeResponse)
    )
      observe(f.type, out);
    return out;
  }

  #rewrite(f: Frame): Buffer {
    switch (f.type) {
      case BackendType.RowDescription: {
        const lineage = this.#peekLineage();
        const head = this.#pending[0];
        const d = head?.t === 'query' ? undefined : this.#answerDescribe();
        if (d?.ours) {
          this.#executing = d.lineage;
          this.#executingText = d.text;
        }
        return this.#rowDescription(f, this.#columnMasks(), lineage, d);
      }
      case BackendType.NoData: {
        const d = this.#answerDescribe();
        if (!d || d.portal) this.#columns = undefined;
        if (d?.ours) {
          this.#executing = d.lineage;
          this.#executingText = d.text;
        }
        return d?.ours ? EMPTY : f.raw;
      }
      case BackendType.DataRow:
        return this.#columns ? this.#dataRow(f, this.#columns) : f.raw;
      case BackendType.ReadyForQuery: {
        if (f.raw.length !== 6)
          throw new PgProtocolError('invalid backend message: ReadyForQuery of wrong length');
        while (this.#pending.length > 0) {
          const p = this.#pending.shift()!;
          if (p.t === 'sync' || p.t === 'query') break;
        }
        this.#columns = undefined;
        this.#copyText = false;
        this.#copy = undefined;
        this.#binary = undefined;
        this.#executing = undefined;
        this.#executingText = undefined;
        this.#parsing = undefined;
        this.#hooks.ready(f.raw[5]!);
        return f.raw;
      }
      case BackendType.ErrorResponse: {
        const running = this.#running();
        if (this.#pending[0]?.t !== 'query') {
          // Extended query: the target skips everything up to Sync.
          const sync = this.#pending.findIndex((p) => p.t === 'sync');
          if (sync < 0) {
            this.#pending.length = 0;
            this.#skipToSync = true;
          } else this.#pending.splice(0, sync);
        }
        this.#columns = undefined;
        const replaced = this.#hooks.wantErrors() ? this.#hooks.error(f.raw) : undefined;
        return replaced ?? this.#scanFields(f, running);
      }
      case BackendType.NoticeResponse:
        return this.#scanFields(f, this.#running());
      case BackendType.NotificationResponse:
        return this.#notification(f);
      case BackendType.BackendKeyData:
        return EMPTY;
      case BackendType.CopyOutResponse:
      case BackendType.CopyBothResponse:
        if (f.type === BackendType.CopyBothResponse && f.raw[5] !== 0) {
          this.#fail('binary COPY BOTH cannot be masked');
          return EMPTY;
        }
        if (f.raw[5] !== 0) {
          if (this.#masker.hasColumns || this.#masker.hasDetectors)
            this.#copyOut(f, this.#columnMasks(), this.#peekLineage());
          return this.#failed ? EMPTY : f.raw;
        }
        this.#copyText = true;
        if (this.#masker.hasColumns) this.#copyOut(f, this.#columnMasks(), this.#peekLineage());
        return this.#failed ? EMPTY : f.raw;
      case BackendType.CopyData:
        if (this.#binary) return this.#binaryData(f, this.#binary);
        if (this.#copy) return this.#copyRow(f, this.#copy);
        return this.#copyText ? this.#copyData(f) : f.raw;
      case BackendType.CopyDone: {
        const binary = this.#binary;
        this.#copyText = false;
        this.#copy = undefined;
        this.#binary = undefined;
        // Held bytes would be a tuple cut short: the caller must not take the copy as complete.
        if (binary && !binary.reader.done) throw new Error('binary COPY ended before its trailer');
        return f.raw;
      }
      case BackendType.CommandComplete:
      case BackendType.EmptyQueryResponse: {
        const head = this.#pending[0];
        if (head?.t === 'query') head.at++;
        return f.raw;
      }
      case BackendType.PortalSuspended:
        return f.raw;
      default:
        return f.raw;
    }
  }

  #answerDescribe(): Extract<Pending, { t: 'describe' }> | undefined {
    const head = this.#pending[0];
    if (head?.t !== 'describe') return undefined;
    this.#pending.shift();
    return head;
  }

  /**
   * Masks the columns of a RowDescription. `d` is the Describe it answers (already taken from the
   * queue); called with none to learn what the catalog must say first (see #missing).
   */
  #rowDescription(
    f: Frame,
    masks: ColumnMasks,
    lineage: StatementLineage | null,
    d?: Extract<Pending, { t: 'describe' }> | undefined,
    probe = false,
  ): Buffer {
    const raw = f.raw;
    const n = raw.readInt16BE(5);
    const columns: Column[] = [];
    let rewritten: Buffer | undefined;
    let traced: (MaskSpec | undefined)[] | undefined;
    if (this.#masker.hasColumns && lineage) {
      const names: string[] = [];
      let at = 7;
      for (let i = 0; i < n; i++) {
        const end = raw.indexOf(0, at);
        if (end < 0 || end + 19 > raw.length)
          throw new PgProtocolError('invalid backend message: truncated RowDescription');
        names.push(raw.toString('utf8', at, end));
        at = end + 19;
      }
      traced = masks.outputs(this.#items(lineage), n, names);
    }
    let at = 7;
    for (let i = 0; i < n; i++) {
      const end = raw.indexOf(0, at);
      if (end < 0 || end + 19 > raw.length)
        throw new PgProtocolError('invalid backend message: truncated RowDescription');
      const output = raw.toString('utf8', at, end);
      const p = end + 1;
      const tableOid = raw.readUInt32BE(p);
      const attnum = raw.readInt16BE(p + 4);
      const type = raw.readUInt32BE(p + 6);
      const binary = raw.readInt16BE(p + 16) === 1;
      let spec: MaskSpec | undefined;
      if (this.#masker.hasColumns) {
        const t = tableOid !== 0 ? this.#hooks.cached(tableOid) : undefined;
        const column = t?.columns.get(attnum);
        spec = this.#masker.column(t ? { schema: t.schema, table: t.table, column, output } : { output });
        // A view's column is judged by what it is defined from.
        if (t && column !== undefined && (t.kind === 'v' || t.kind === 'm'))
          spec = stricter(spec, masks.column(t.schema, t.table, column));
        spec = stricter(spec, traced?.[i]);
      }
      if (spec && type !== T_TEXT) {
        rewritten ??= Buffer.from(raw);
        rewritten.writeUInt32BE(T_TEXT, p + 6);
        rewritten.writeInt16BE(-1, p + 10);
        rewritten.writeInt32BE(-1, p + 12);
      }
      columns.push({ type, binary, spec });
      at = p + 18;
    }
    if (probe) return raw;
    // A statement's description (before Bind) only says which columns there will be; rows follow
    // the portal's.
    if (!d || d.portal) this.#columns = columns;
    if (d?.ours) return EMPTY;
    return rewritten ?? raw;
  }

  /**
   * Which field of each COPY row gets which mask (and for binary COPY, which type each field
   * has). `probe`: only learn what the catalog must say first, noting queries whose types are
   * not known yet. A COPY whose statement is not known cannot be split into columns: refused.
   */
  #copyOut(f: Frame, masks: ColumnMasks, lineage: StatementLineage | null, probe?: string[]): void {
    if (f.raw.length < 8) throw new PgProtocolError('invalid backend message: truncated CopyOutResponse');
    const n = f.raw.readInt16BE(6);
    if (!lineage?.copy) {
      if (!probe)
        this.#fail('COPY TO STDOUT cannot be masked here: Airlock could not tell which columns it sends');
      return;
    }
    if (f.raw[5] !== 0) {
      const specs: (MaskSpec | undefined)[] = this.#masker.hasColumns
        ? masks.outputs(lineage.items, n)
        : new Array(n).fill(undefined);
      // Nothing can change: the stream passes as it is, unparsed.
      if (!this.#masker.hasDetectors && !specs.some(Boolean)) return;
      const types = this.#copyTypes(lineage.copy, masks, n, probe);
      if (probe) return;
      if (!types) {
        this.#fail(
          'binary COPY TO STDOUT cannot be masked here: Airlock could not learn the types of its columns; use COPY in text or CSV format',
        );
        return;
      }
      this.#binary = { specs, types, reader: new BinaryCopyReader(MAX_BACKEND_MESSAGE) };
      return;
    }
    const encoding = lineage.copy.encoding;
    if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
      if (!probe) this.#fail('COPY TO STDOUT with an ENCODING other than UTF8 cannot be masked');
      return;
    }
    const specs = masks.outputs(lineage.items, n);
    if (!probe) this.#copy = { format: lineage.copy, specs, header: lineage.copy.header };
  }

  /**
   * Type OIDs of the `n` columns a binary COPY sends; undefined when not known. Unknown tables
   * are noted in `masks.missing`, unknown queries in `queries`, for the catalog to answer.
   */
  #copyTypes(
    copy: CopyFormat,
    masks: ColumnMasks,
    n: number,
    queries?: string[],
  ): readonly number[] | undefined {
    const src = copy.source;
    if (src?.t === 'query') {
      if (src.text === undefined) return undefined;
      const types = this.#hooks.queryTypes(src.text);
      if (types === undefined) queries?.push(src.text);
      return types?.length === n ? types : undefined;
    }
    if (src?.t !== 'table') return undefined;
    const found = this.#hooks.relations(src.schema, src.table);
    if (found === undefined) {
      masks.missing.set(`${src.schema ?? ''}\u0000${src.table}`, { schema: src.schema, table: src.table });
      return undefined;
    }
    // An unqualified name may be a table in several schemas: usable only if their types agree.
    let types: readonly number[] | undefined;
    for (const rel of found) {
      const all = rel.types;
      if (!all || all.length !== rel.columns.length) return undefined;
      const these = src.columns
        ? src.columns.map((c) => {
            const i = rel.columns.indexOf(c);
            return i < 0 ? -1 : all[i]!;
          })
        : all;
      if (these.includes(-1)) return undefined;
      if (types && (types.length !== these.length || types.some((t, i) => t !== these[i]))) return undefined;
      types = these;
    }
    return types?.length === n ? types : undefined;
  }

  /**
   * One CopyData of a binary COPY: the tuples it completes, masked, in one CopyData (none when
   * it completes none); the message as it is when it held exactly whole tuples that keep their
   * values.
   */
  #binaryData(f: Frame, b: BinaryOut): Buffer {
    let changed = b.reader.held > 0;
    const items = b.reader.push(f.raw.subarray(5));
    if (b.reader.held > 0) changed = true;
    const parts: Buffer[] = [];
    let size = 0;
    for (const it of items) {
      const bytes = it.t === 'tuple' ? this.#binaryTuple(it, b) : it.raw;
      if (bytes !== it.raw) changed = true;
      parts.push(bytes);
      size += bytes.length;
    }
    if (!changed) return f.raw;
    if (size === 0) return EMPTY;
    const msg = Buffer.allocUnsafe(5 + size);
    msg[0] = BackendType.CopyData;
    msg.writeInt32BE(4 + size, 1);
    let at = 5;
    for (const p of parts) at += p.copy(msg, at);
    return msg;
  }

  #binaryTuple(it: Extract<BinaryCopyItem, { t: 'tuple' }>, b: BinaryOut): Buffer {
    const n = b.types.length;
    if (it.fields.length !== n)
      throw new Error(`a binary COPY tuple had ${it.fields.length} fields where ${n} were expected`);
    let fields: (Buffer | null)[] | undefined;
    for (let i = 0; i < n; i++) {
      const v = it.fields[i];
      if (!v) continue;
      const type = b.types[i]!;
      const size = INT_SIZE.get(type);
      if (size !== undefined && v.length !== size)
        throw new Error(`a binary COPY field of type ${type} had ${v.length} bytes`);
      const spec = b.specs[i];
      const replacement = spec
        ? COPY_TEXT.has(type)
          ? Buffer.from(this.#masker.mask(v.toString('utf8'), spec), 'utf8')
          : null
        : this.#value(v, { type, binary: true, spec: undefined });
      if (replacement === undefined) continue;
      fields ??= [...it.fields];
      fields[i] = replacement;
    }
    return fields ? encodeTuple(fields) : it.raw;
  }

  #copyRow(f: Frame, copy: CopyOut): Buffer {
    const text = f.raw.toString('utf8', 5);
    const eol = text.endsWith('\r\n') ? '\r\n' : text.endsWith('\n') ? '\n' : undefined;
    if (eol === undefined) throw new Error('a COPY row did not end with a line break');
    if (copy.header) {
      copy.header = false;
      return f.raw;
    }
    const fields = splitRow(text.slice(0, text.length - eol.length), copy.format);
    if (fields.length !== copy.specs.length)
      throw new Error(`a COPY row had ${fields.length} fields where ${copy.specs.length} were expected`);
    let changed = false;
    const out = fields.map((field: CopyField, i) => {
      if (field.value === null) return field.raw;
      const spec = copy.specs[i];
      const value = spec ? this.#masker.mask(field.value, spec) : this.#masker.scan(field.value);
      if (!spec && value === field.value) return field.raw;
      changed = true;
      return encodeField(value, copy.format);
    });
    if (!changed) return f.raw;
    const body = Buffer.from(joinRow(out, copy.format) + eol, 'utf8');
    const msg = Buffer.allocUnsafe(5 + body.length);
    msg[0] = BackendType.CopyData;
    msg.writeInt32BE(4 + body.length, 1);
    body.copy(msg, 5);
    return msg;
  }

  #dataRow(f: Frame, columns: readonly Column[]): Buffer {
    const raw = f.raw;
    const n = raw.readInt16BE(5);
    let parts: Buffer[] | undefined;
    let copied = 7;
    let at = 7;
    for (let i = 0; i < n; i++) {
      const len = raw.readInt32BE(at);
      const start = at + 4;
      const end = len < 0 ? start : start + len;
      if (end > raw.length) throw new PgProtocolError('invalid backend message: truncated DataRow');
      const c = columns[i];
      const replacement = len < 0 || !c ? undefined : this.#value(raw.subarray(start, end), c);
      if (replacement !== undefined) {
        parts ??= [];
        parts.push(raw.subarray(copied, at));
        const head = Buffer.allocUnsafe(4);
        head.writeInt32BE(replacement === null ? -1 : replacement.length);
        parts.push(head);
        if (replacement) parts.push(replacement);
        copied = end;
      }
      at = end;
    }
    if (!parts) return raw;
    parts.push(raw.subarray(copied));
    const body = Buffer.concat(parts);
    const out = Buffer.allocUnsafe(7 + body.length);
    out[0] = BackendType.DataRow;
    out.writeInt32BE(6 + body.length, 1);
    out.writeInt16BE(n, 5);
    body.copy(out, 7);
    return out;
  }

  /** A value's replacement: bytes, null for SQL NULL, or undefined to keep it. */
  #value(v: Buffer, c: Column): Buffer | null | undefined {
    if (c.spec) return Buffer.from(this.#masker.mask(asText(v, c), c.spec), 'utf8');
    if (!this.#masker.hasDetectors || NOTHING_TO_FIND.has(c.type)) return undefined;
    if (!c.binary || TEXT_LIKE.has(c.type)) {
      const text = v.toString('utf8');
      const masked = this.#masker.scan(text);
      if (masked === text) return undefined;
      return c.type === INT2 || c.type === INT4 || c.type === INT8 || c.type === NUMERIC
        ? null
        : Buffer.from(masked, 'utf8');
    }
    if (c.type === JSONB && v[0] === 1) {
      const text = v.toString('utf8', 1);
      const masked = this.#masker.scan(text);
      return masked === text ? undefined : Buffer.concat([v.subarray(0, 1), Buffer.from(masked, 'utf8')]);
    }
    // Binary numbers are read as decimal; anything else binary is searched as bytes.
    const text =
      c.type === INT8 || c.type === NUMERIC || c.type === INT4 ? asText(v, c) : v.toString('latin1');
    return this.#masker.scan(text) === text ? undefined : null;
  }

  #running(): Running | undefined {
    if (!this.#masker.hasColumns) return undefined;
    const head = this.#pending[0];
    if (head?.t === 'query') return { lineage: head.statements?.[head.at], text: head.text };
    if (this.#executingText !== undefined) return { lineage: this.#executing, text: this.#executingText };
    return this.#parsing ?? { lineage: undefined, text: undefined };
  }

  /**
   * Whether what the target says while this statement runs may quote a value column rules
   * cover: it reads a relation with masked columns (or a view over one), calls a function Airlock
   * cannot see into, or is not known at all.
   */
  #echoes(r: Running): boolean {
    const l = r.lineage;
    if (!l?.relations || l.opaque) return true;
    const masks = this.#columnMasks();
    return l.relations.some((rel) => masks.column(rel.schema, rel.table, '*') !== undefined);
  }

  /**
   * Message, detail, context and hint of an error or notice from a statement that reads masked
   * columns: every quoted ("...") or parenthesised value the caller did not write itself is
   * masked (`invalid input syntax for type integer: "..."`, `Key (email)=(...)`, `Failing row
   * contains (...)`); from a function Airlock cannot see into, the whole text is.
   */
  #maskEchoes(code: number, text: string, r: Running): string {
    if (!'MDWH'.includes(String.fromCharCode(code))) return text;
    const spec = this.#masker.strictestColumn;
    if (!spec) return text;
    if (r.lineage?.opaque) return this.#masker.mask(text, spec);
    const own = r.text ?? '';
    return text.replace(/"([^"]*)"|\(([^()]*)\)/g, (whole, quoted?: string, paren?: string) => {
      const v = quoted ?? paren ?? '';
      if (v === '' || own.includes(v)) return whole;
      const masked = this.#masker.mask(v, spec);
      return quoted !== undefined ? `"${masked}"` : `(${masked})`;
    });
  }

  #scanFields(f: Frame, running: Running | undefined): Buffer {
    const echoes = running !== undefined && this.#echoes(running);
    if (!this.#masker.hasDetectors && !echoes) return f.raw;
    const raw = f.raw;
    const parts: Buffer[] = [raw.subarray(0, 5)];
    let changed = false;
    let at = 5;
    while (at < raw.length && raw[at] !== 0) {
      const code = raw[at]!;
      const end = raw.indexOf(0, at + 1);
      if (end < 0) throw new PgProtocolError('invalid backend message: unterminated field');
      const text = raw.toString('utf8', at + 1, end);
      // Severity, SQLSTATE, positions and source location cannot hold data.
      const echoed = echoes ? this.#maskEchoes(code, text, running!) : text;
      const masked = 'SVCPpFLR'.includes(String.fromCharCode(code)) ? echoed : this.#masker.scan(echoed);
      if (masked !== text) changed = true;
      parts.push(Buffer.from([code]), Buffer.from(masked, 'utf8'), Buffer.from([0]));
      at = end + 1;
    }
    if (!changed) return raw;
    parts.push(Buffer.from([0]));
    const out = Buffer.concat(parts);
    out.writeInt32BE(out.length - 1, 1);
    return out;
  }

  #notification(f: Frame): Buffer {
    if (!this.#masker.hasDetectors) return f.raw;
    const raw = f.raw;
    const c1 = raw.indexOf(0, 9);
    const c2 = c1 < 0 ? -1 : raw.indexOf(0, c1 + 1);
    if (c2 < 0) throw new PgProtocolError('invalid backend message: truncated NotificationResponse');
    const payload = raw.toString('utf8', c1 + 1, c2);
    const masked = this.#masker.scan(payload);
    if (masked === payload) return raw;
    const out = Buffer.concat([raw.subarray(0, c1 + 1), Buffer.from(masked, 'utf8'), Buffer.from([0])]);
    out.writeInt32BE(out.length - 1, 1);
    return out;
  }

  #copyData(f: Frame): Buffer {
    if (!this.#masker.hasDetectors) return f.raw;
    const text = f.raw.toString('utf8', 5);
    const masked = this.#masker.scan(text);
    if (masked === text) return f.raw;
    const body = Buffer.from(masked, 'utf8');
    const out = Buffer.allocUnsafe(5 + body.length);
    out[0] = BackendType.CopyData;
    out.writeInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  }
}

function stricter(a: MaskSpec | undefined, b: MaskSpec | undefined): MaskSpec | undefined {
  if (!b) return a;
  return !a || STRATEGY_RANK[b.strategy] > STRATEGY_RANK[a.strategy] ? b : a;
}

/** A NUL-terminated string in a message. */
function cString(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end < 0 ? b.length : end);
}

function tableOids(f: Frame): number[] {
  const raw = f.raw;
  const n = raw.readInt16BE(5);
  const out: number[] = [];
  let at = 7;
  for (let i = 0; i < n; i++) {
    const end = raw.indexOf(0, at);
    if (end < 0 || end + 19 > raw.length)
      throw new PgProtocolError('invalid backend message: truncated RowDescription');
    const oid = raw.readUInt32BE(end + 1);
    if (oid !== 0) out.push(oid);
    at = end + 19;
  }
  return out;
}

/** A value as text: the text format as it is, the binary format of common types decoded. */
function asText(v: Buffer, c: Column): string {
  if (!c.binary || TEXT_LIKE.has(c.type)) return v.toString('utf8');
  if (c.type === JSONB && v[0] === 1) return v.toString('utf8', 1);
  if (c.type === INT2 && v.length === 2) return String(v.readInt16BE(0));
  if (c.type === INT4 && v.length === 4) return String(v.readInt32BE(0));
  if (c.type === INT8 && v.length === 8) return v.readBigInt64BE(0).toString();
  if (c.type === NUMERIC) return numericText(v) ?? `\\x${v.toString('hex')}`;
  return `\\x${v.toString('hex')}`;
}

/**
 * Binary numeric: ndigits, weight, sign, dscale, then base-10000 digits.
 * https://github.com/postgres/postgres/blob/master/src/backend/utils/adt/numeric.c (numeric_send)
 */
function numericText(v: Buffer): string | undefined {
  if (v.length < 8) return undefined;
  const ndigits = v.readInt16BE(0);
  const weight = v.readInt16BE(2);
  const sign = v.readUInt16BE(4);
  const dscale = v.readInt16BE(6);
  if (v.length !== 8 + ndigits * 2) return undefined;
  if (sign === 0xc000) return 'NaN';
  if (sign === 0xd000) return 'Infinity';
  if (sign === 0xf000) return '-Infinity';
  const digits: number[] = [];
  for (let i = 0; i < ndigits; i++) digits.push(v.readInt16BE(8 + i * 2));
  let int = '';
  for (let w = 0; w <= weight; w++) {
    const d = digits[w] ?? 0;
    int += w === 0 ? String(d) : String(d).padStart(4, '0');
  }
  if (int === '') int = '0';
  let frac = '';
  for (let w = weight + 1; w < ndigits; w++) {
    const d = w < 0 ? 0 : (digits[w] ?? 0);
    frac += String(d).padStart(4, '0');
  }
  frac = frac.padEnd(dscale, '0').slice(0, dscale);
  return `${sign === 0x4000 ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}
