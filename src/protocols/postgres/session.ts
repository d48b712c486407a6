/**
 * One caller connection: login, then every statement judged by the gate before it reaches the
 * target.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 *
 * Enforcing a decision without breaking the session:
 *  - allow: the caller's bytes go to the target unchanged (one write per batch).
 *  - deny while the caller is idle (nothing in flight, not inside a transaction block): we answer
 *    ErrorResponse + ReadyForQuery ourselves.
 *  - deny otherwise: we send the target a substitute that is certain to fail at parse time, so
 *    the target's transaction state moves exactly as if the denied statement had failed, and
 *    replace the target's ErrorResponse with the denial. The target's ReadyForQuery then
 *    carries the true transaction status.
 *  - hold: nothing is forwarded; the caller gets a NoticeResponse naming the request and where to
 *    approve it, then the held messages go out on approval (or the denial, as above).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import {
  type Action,
  type ActionOrigin,
  type ActionPart,
  actionOf,
  kindOfParts,
  type Principal,
} from '../../core/action.ts';
import type { Logger } from '../../core/adapter-ports.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import { maskerFor, SessionMasker } from '../../core/masking/masker.ts';
import type { Policy, PolicyConnection } from '../../core/policy/policy.ts';
import type { EventStreamWriter } from '../../core/recording/events.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { endSessionEvents, openSessionEvents } from '../../core/session-events.ts';
import { namedConnection, originOf, tokenRefused } from '../../core/sign-in.ts';
import { settlementEvent, statementEvent } from '../../core/statement-events.ts';
import { estimable } from './blast-radius.ts';
import { type CancelKeys, sendCancel } from './cancel.ts';
import type { Catalog, Catalogs } from './catalog.ts';
import { type ClassifiedSql, classifySql, refineByVolatility, type SqlPart } from './classify.ts';
import {
  BackendType,
  describeType,
  type Frame,
  FrontendType,
  MAX_MESSAGE,
  MessageReader,
  PgProtocolError,
} from './codec.ts';
import { dryRunnable } from './dry-run.ts';
import { MaskingRelay } from './masking-relay.ts';
import {
  authenticationRequest,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parseBind,
  parseErrorFields,
  parseExecute,
  parseFunctionCall,
  parseMessage,
  parseParse,
  parsePassword,
  parseQuery,
  parseStartupPacket,
  parseTarget,
  queryMessage,
  readyForQuery,
  TERMINATE,
} from './messages.ts';
import { BackendRelay } from './relay.ts';
import { SessionState, TxStatus } from './states.ts';
import { connectUpstream, UpstreamRefusal } from './upstream.ts';

export interface SessionContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  readonly tls?: SecureContext | undefined;
  readonly log?: Logger | undefined;
  readonly keepaliveNoticeMs: number;
  readonly cancelKeys: CancelKeys;
  readonly maxMessage?: number;
  readonly startupTimeoutMs?: number;
  /** Side connections to the targets' catalogs (masking, function volatility). */
  readonly catalogs?: Catalogs | undefined;
  /** Session recordings (statements, decisions, results, errors, notices as events). */
  readonly recorder?: Recorder | undefined;
  /** Connection slots and failed sign-in throttling shared with the other protocols. */
  readonly limits?: Limits | undefined;
}

export const STARTUP_TIMEOUT_MS = 15_000;
/** Caller messages we keep while a statement is held (or while the target is slow). */
export const MAX_QUEUED_BYTES = 1024 * 1024;
/** An extended-query batch without Sync is judged and forwarded once it reaches this size. */
const MAX_BATCH_BYTES = 1024 * 1024;
/** Parameter values longer than this are shown truncated, and enter the identity as a hash. */
const PARAM_DISPLAY_MAX = 1000;

/**
 * Startup parameters passed on to the target. Anything else is dropped: a startup parameter is a
 * server setting applied before any statement, so it would bypass the gate (role,
 * session_authorization, standard_conforming_strings changing how SQL is parsed, search_path
 * changing which tables a statement names, ...).
 */
const PASSED_PARAMETERS = new Set(
  [
    'application_name',
    'client_encoding',
    'datestyle',
    'timezone',
    'intervalstyle',
    'extra_float_digits',
    'bytea_output',
    'statement_timeout',
    'lock_timeout',
    'idle_in_transaction_session_timeout',
  ].map((s) => s.toLowerCase()),
);

interface Statement {
  readonly text: string;
  readonly classified: ClassifiedSql;
  /** Redefined while an older definition may survive on the target: we cannot tell which runs. */
  readonly ambiguous: boolean;
}

interface Portal {
  readonly statementName: string;
  readonly statement: Statement | undefined;
  readonly values: readonly (Buffer | null)[];
  readonly binary: readonly boolean[];
  readonly ambiguous: boolean;
}

interface Denial {
  readonly code: string;
  readonly message: string;
  readonly hint?: string | undefined;
}

interface PendingDenial {
  /** The ReadyForQuery cycle whose substitute error it replaces. */
  readonly cycle: number;
  readonly message: Buffer;
}

const PAUSE_UPSTREAM_FULL = 1;
const PAUSE_QUEUE_FULL = 2;

function isUtf8Name(v: string): boolean {
  return /^(utf-?8|unicode)$/i.test(v);
}

export class PgSession {
  readonly id = randomUUID();
  readonly #ctx: SessionContext;
  readonly #raw: Socket;
  #client: Socket;
  #upstream: Socket | undefined;
  #state: SessionState = SessionState.Startup;
  readonly #reader: MessageReader;
  readonly #source: string;
  #tls = false;
  #params = new Map<string, string>();
  #connection: Extract<PolicyConnection, { type: 'postgres' }> | undefined;
  /** Set at sign-in: what every action of this session repeats. */
  #origin: ActionOrigin | undefined;
  #opened = false;
  #gatewayPid = 0;
  readonly #abort = new AbortController();
  #startupTimer: NodeJS.Timeout | undefined;
  readonly #onClosed: () => void;
  #releaseSlot: (() => void) | undefined;
  #stallTimer: NodeJS.Timeout | undefined;

  // Caller → target
  #queue: Frame[] = [];
  #queuedBytes = 0;
  #draining = false;
  #holding = false;
  #batch: Frame[] = [];
  #batchBytes = 0;
  #clientPause = 0;

  // Target → caller
  #relay: BackendRelay | MaskingRelay;
  /** Set when masking applies to this session: results are rewritten, not just relayed. */
  #masking: MaskingRelay | undefined;
  #masker: SessionMasker | undefined;
  #catalog: Catalog | undefined;
  #recording: EventStreamWriter | undefined;
  /** When the statement now running was forwarded, for result durations in the recording. */
  #forwardedAt = 0;
  #txStatus: number = TxStatus.Idle;
  /** ReadyForQuery cycles opened (Sync/Query/FunctionCall forwarded) and completed. */
  #sentCycles = 0;
  #doneCycles = 0;
  /** Extended-query messages forwarded since the last Sync. */
  #openExtended = false;
  #denials: PendingDenial[] = [];
  /** Substitute statements carry this; the target echoes it in its syntax error. */
  readonly #nonce = `airlock_denied_${randomBytes(8).toString('hex')}`;
  readonly #nonceBytes = Buffer.from(this.#nonce);

  // Extended query state
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Portal>();
  /** SQL PREPARE / DECLARE seen: names may exist on the target that we never saw defined. */
  #sqlPrepared = false;
  #sqlCursors = false;

  constructor(socket: Socket, ctx: SessionContext, onClosed: () => void) {
    this.#ctx = ctx;
    this.#raw = socket;
    this.#client = socket;
    this.#onClosed = onClosed;
    this.#source = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    this.#reader = new MessageReader({
      side: 'frontend',
      startup: true,
      maxMessage: ctx.maxMessage ?? MAX_MESSAGE,
    });
    this.#relay = new BackendRelay({
      ready: (status) => this.#onReady(status),
      wantErrors: () => this.#denials.length > 0,
      error: (raw) => this.#rewriteError(raw),
      observe: ctx.recorder ? (type, raw) => this.#observe(type, raw) : undefined,
    });
    socket.setNoDelay(true);
    socket.on('error', () => this.#close('client error'));
    socket.on('close', () => this.#close('client closed'));
    this.#listen(socket);
    this.#startupTimer = setTimeout(
      () =>
        this.#fatal(
          '08P01',
          `the client did not complete the startup within ${Math.round((ctx.startupTimeoutMs ?? STARTUP_TIMEOUT_MS) / 1000)} seconds`,
        ),
      ctx.startupTimeoutMs ?? STARTUP_TIMEOUT_MS,
    );
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Closes both sides (listener shutdown). */
  destroy(): void {
    this.#fatal('57P01', 'Airlock is shutting down');
  }

  #listen(socket: Socket): void {
    socket.on('data', this.#onClientData);
    socket.on('drain', this.#onClientDrain);
  }

  // ------------------------------------------------------------------------------------------
  // Caller bytes

  readonly #onClientData = (chunk: Buffer): void => {
    if (this.#state === SessionState.Closed) return;
    this.#reader.push(chunk);
    try {
      for (let f = this.#reader.next(); f; f = this.#reader.next()) {
        if (this.#state === SessionState.Startup) {
          if (this.#onStartup(f)) return;
        } else if (this.#state === SessionState.Password) {
          this.#onPassword(f);
        } else if ((this.#state as SessionState) === SessionState.Closed) {
          return;
        } else {
          this.#queue.push(f);
          this.#queuedBytes += f.raw.length;
        }
      }
    } catch (err) {
      this.#protocolFailure(err);
      return;
    }
    if (this.#queuedBytes + this.#reader.buffered > MAX_QUEUED_BYTES) {
      if (this.#holding) {
        this.#fatal(
          '54000',
          `more than ${MAX_QUEUED_BYTES} bytes of messages arrived while a statement was held for approval`,
          'wait for the approval before sending more',
        );
        return;
      }
      this.#pauseClient(PAUSE_QUEUE_FULL);
    }
    if (this.#state === SessionState.Ready && this.#queue.length > 0) void this.#drain();
  };

  #protocolFailure(err: unknown): void {
    if (err instanceof PgProtocolError) {
      this.#ctx.log?.warn(
        { session: this.id, source: this.#source, err: err.message },
        'postgres protocol violation',
      );
      this.#ctx.gate.protocolViolation({
        protocol: 'postgres',
        source: this.#source,
        sessionId: this.id,
        sqlstate: err.sqlstate,
        error: err.message,
      });
      this.#fatal(err.sqlstate, err.message);
    } else {
      this.#ctx.log?.error({ session: this.id, err: (err as Error)?.message }, 'postgres session failed');
      this.#fatal('XX000', 'Airlock hit an internal error and closed the connection');
    }
  }

  /** Returns true when reading must stop (TLS upgrade, cancel). */
  #onStartup(f: Frame): boolean {
    const p = parseStartupPacket(f);
    switch (p.kind) {
      case 'ssl':
        if (!this.#ctx.tls || this.#tls) {
          this.#client.write('N');
          return false;
        }
        // Bytes after SSLRequest would be unencrypted yet treated as part of the TLS session.
        if (this.#reader.buffered > 0)
          throw new PgProtocolError('invalid frontend message: received unencrypted data after SSL request');
        this.#client.write('S');
        this.#upgrade();
        return true;
      case 'gssenc':
        this.#client.write('N');
        return false;
      case 'cancel': {
        const key = this.#ctx.cancelKeys.lookup(p.pid, p.secret);
        this.#client.end();
        if (key) void sendCancel(key);
        this.#close('cancel request');
        return true;
      }
      case 'startup': {
        const unsupported = [...p.params.keys()].filter((k) => k.startsWith('_pq_.'));
        // Protocol 3.2+ asks for features (longer cancel keys) we do not offer: tell the client
        // we speak 3.0, as a 3.0 server does. https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION
        if (p.minor > 0 || unsupported.length > 0)
          this.#client.write(negotiateProtocolVersion(0, unsupported));
        for (const [k, v] of p.params) if (!k.startsWith('_pq_.')) this.#params.set(k, v);
        if (p.params.get('replication') && p.params.get('replication') !== 'false')
          throw new PgProtocolError('replication connections are not supported through Airlock', '0A000');
        this.#reader.startup = false;
        this.#state = SessionState.Password;
        this.#client.write(authenticationRequest(3));
        return false;
      }
    }
  }

  #upgrade(): void {
    this.#raw.off('data', this.#onClientData);
    this.#raw.off('drain', this.#onClientDrain);
    const t = new TLSSocket(this.#raw, { isServer: true, secureContext: this.#ctx.tls! });
    t.on('error', () => this.#close('TLS error'));
    t.on('close', () => this.#close('client closed'));
    this.#client = t;
    this.#tls = true;
    this.#listen(t);
  }

  #onPassword(f: Frame): void {
    if (f.type !== FrontendType.Password)
      throw new PgProtocolError(
        `invalid frontend message: expected password response, got message type ${describeType(f.type)}`,
      );
    const token = parsePassword(f);
    this.#state = SessionState.Connecting;
    this.#login(token).catch((err) => this.#protocolFailure(err));
  }

  async #login(token: string): Promise<void> {
    const { policy, gate, log } = this.#ctx;
    const user = this.#params.get('user') ?? '';
    const database = this.#params.get('database') || user;
    const signIn = {
      protocol: 'postgres',
      session: this.id,
      source: this.#source,
      connection: database,
      user,
    } as const;
    let principal: Principal;
    try {
      principal = await this.#ctx.tokens.authenticate(token === '' ? undefined : token, {
        user: user || undefined,
        source: this.#source,
        protocol: 'postgres',
        connection: database,
      });
    } catch (err) {
      const e = tokenRefused(err, signIn, gate, log);
      this.#fatal('28P01', e.message, e.hint);
      return;
    }
    const connection = namedConnection(policy, gate, signIn);
    if ('known' in connection) {
      const names = connection.known;
      this.#fatal(
        '3D000',
        `connection "${database}" is not configured in Airlock`,
        names.length > 0
          ? `use one of these as the database name: ${names.join(', ')}`
          : 'no PostgreSQL connections are configured',
      );
      return;
    }
    if (this.#ctx.limits) {
      try {
        this.#releaseSlot = this.#ctx.limits.openConnection(principal, 'postgres', this.#source);
      } catch (err) {
        const e = err as AirlockError;
        // 53300 too_many_connections: drivers and poolers know to back off on it.
        this.#fatal('53300', e.message, e.hint);
        return;
      }
    }
    this.#connection = connection;
    this.#origin = originOf(signIn, principal);
    this.#catalog = this.#ctx.catalogs?.for(connection);
    this.#masker = maskerFor(policy.masking, connection.name, principal);
    if (this.#masker) this.#masking = this.#maskingRelay(this.#masker);

    const passed = new Map<string, string>();
    for (const [k, v] of this.#params) {
      if (!PASSED_PARAMETERS.has(k.toLowerCase())) continue;
      // Classification reads the text as UTF-8; other encodings could hide one statement in another.
      if (k.toLowerCase() === 'client_encoding' && !isUtf8Name(v)) continue;
      passed.set(k, v);
    }
    if (![...passed.keys()].some((k) => k.toLowerCase() === 'client_encoding'))
      passed.set('client_encoding', 'UTF8');
    const up = connection.upstream;
    let upstream: Awaited<ReturnType<typeof connectUpstream>>;
    try {
      upstream = await connectUpstream(
        {
          name: connection.name,
          host: up.host,
          port: up.port,
          database: up.database,
          user: up.user,
          password: up.password,
          tls: up.tls,
          ca: up.ca,
          baseDir: policy.baseDir,
        },
        passed,
      );
    } catch (err) {
      const e = isAirlockError(err) ? err : new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', String(err));
      log?.warn(
        {
          session: this.id,
          connection: connection.name,
          code: e.code,
          // The target's own words stay in the gateway's log; the caller gets ours.
          ...(err instanceof UpstreamRefusal
            ? { target: err.serverMessage, sqlstate: err.sqlstate }
            : { err: e.message }),
        },
        'postgres upstream login failed',
      );
      this.#fatal(e.code === 'AIRLOCK_E_UPSTREAM_AUTH' ? '28000' : '08006', e.message, e.hint);
      return;
    }
    if (this.#state === SessionState.Closed) {
      upstream.socket.destroy();
      return;
    }
    this.#upstream = upstream.socket;
    upstream.socket.on('error', (err) => {
      log?.warn({ session: this.id, err: err.message }, 'postgres upstream socket error');
      this.#upstreamClosed();
    });
    upstream.socket.on('close', () => this.#upstreamClosed());
    const key = this.#ctx.cancelKeys.register({
      host: up.host,
      port: up.port,
      pid: upstream.pid,
      secret: upstream.secret,
    });
    this.#gatewayPid = key.pid;
    try {
      await gate.sessionOpened({
        sessionId: this.id,
        protocol: 'postgres',
        connection: connection.name,
        principal,
        source: this.#source,
        attributes: { user, application_name: this.#params.get('application_name') ?? null, tls: this.#tls },
        // A revoked grant this session relied on ends it (admin_shutdown, as pg_terminate_backend).
        end: (reason) => this.#fatal('57P01', reason, 'ask for a new approval to continue'),
      });
      this.#opened = true;
    } catch (err) {
      const e = isAirlockError(err)
        ? err
        : new AirlockError('AIRLOCK_E_AUDIT_UNAVAILABLE', 'the audit log could not be written');
      this.#fatal('58000', e.message, e.hint);
      return;
    }
    if (this.#state !== SessionState.Connecting) return;
    if (this.#ctx.recorder) {
      this.#recording = openSessionEvents(this.#ctx.recorder, {
        protocol: 'postgres',
        session: this.id,
        connection: connection.name,
        principal: principal.name,
        source: this.#source,
        user,
        application_name: this.#params.get('application_name') ?? null,
        tls: this.#tls,
      });
    }
    this.#txStatus = upstream.status;
    this.#client.write(
      Buffer.concat([
        authenticationRequest(0),
        ...upstream.relay,
        backendKeyData(key.pid, key.secret),
        readyForQuery(upstream.status),
      ]),
    );
    clearTimeout(this.#startupTimer);
    this.#state = SessionState.Ready;
    log?.info(
      {
        session: this.id,
        connection: connection.name,
        principal: principal.name,
        source: this.#source,
        tls: this.#tls,
      },
      'postgres session opened',
    );
    upstream.socket.on('data', this.#onUpstreamData);
    upstream.socket.on('drain', this.#onUpstreamDrain);
    for (const b of upstream.leftover) this.#onUpstreamData(b);
    upstream.socket.resume();
    if (this.#queue.length > 0) void this.#drain();
  }

  #maskingRelay(masker: SessionMasker): MaskingRelay {
    const catalog = this.#catalog;
    const relay = new MaskingRelay(masker, {
      ready: (status) => this.#onReady(status),
      wantErrors: () => this.#denials.length > 0,
      error: (raw) => this.#rewriteError(raw),
      observe: this.#ctx.recorder ? (type, raw) => this.#observe(type, raw) : undefined,
      cached: (oid) => (catalog ? catalog.cachedTable(oid) : null),
      lookup: (oids) => (catalog ? catalog.tables(oids) : Promise.resolve()),
      relations: (schema, table) => (catalog ? catalog.cachedRelations(schema, table) : []),
      lookupRelations: (names) => (catalog ? catalog.relations(names) : Promise.resolve()),
      queryTypes: (query) => (catalog ? catalog.cachedQueryTypes(query) : null),
      lookupQueryTypes: (query) => (catalog ? catalog.queryTypes(query) : Promise.resolve()),
      write: (out) => this.#writeOut(out),
      pauseUpstream: () => this.#upstream?.pause(),
      // Unless the caller is itself behind: its drain resumes the target then.
      resumeUpstream: () => {
        if (!this.#client.writableNeedDrain) this.#upstream?.resume();
      },
      fail: (message) => {
        this.#ctx.log?.error({ session: this.id, err: message }, 'postgres masking failed');
        this.#fatal('XX000', message, 'the result was not sent; tell an Airlock admin if this persists');
      },
    });
    this.#relay = relay;
    return relay;
  }

  // ------------------------------------------------------------------------------------------
  // Flow control: a slow reader on either side pauses the other side instead of growing buffers.

  readonly #onClientDrain = (): void => {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (this.#masking?.blocked) return;
    this.#upstream?.resume();
  };

  /**
   * A caller that stops reading its results holds a target connection (and its locks) open
   * forever; past the write timeout it is cut off. Nothing can be said to it: it does not read.
   */
  #clientStalled(): void {
    const ms = this.#ctx.limits?.config.writeTimeoutMs;
    if (!ms || this.#stallTimer) return;
    this.#stallTimer = setTimeout(() => {
      this.#ctx.log?.warn({ session: this.id, ms }, 'postgres caller stopped reading; cut off');
      this.#close(`the client did not read its results for ${Math.round(ms / 1000)}s`);
      this.#client.destroy();
    }, ms);
    this.#stallTimer.unref();
  }

  readonly #onUpstreamDrain = (): void => {
    this.#resumeClient(PAUSE_UPSTREAM_FULL);
  };

  #pauseClient(reason: number): void {
    if (this.#clientPause === 0) this.#client.pause();
    this.#clientPause |= reason;
  }

  #resumeClient(reason: number): void {
    if (this.#clientPause === 0) return;
    this.#clientPause &= ~reason;
    if (this.#clientPause === 0) this.#client.resume();
  }

  #writeClient(b: Buffer): void {
    if (this.#state === SessionState.Closed) return;
    if (!this.#client.write(b)) {
      this.#upstream?.pause();
      this.#clientStalled();
    }
  }

  /** A gateway message for the caller, placed between the target's messages. */
  #sendLocal(b: Buffer): void {
    if (!this.#relay.inject(b)) this.#writeClient(b);
  }

  #writeUpstream(messages: readonly Buffer[]): void {
    const u = this.#upstream;
    if (!u || this.#state === SessionState.Closed) return;
    const buffers = this.#masking ? this.#masking.outgoing(messages) : messages;
    let ok = true;
    if (buffers.length === 1) ok = u.write(buffers[0]!);
    else {
      // Views of the same socket chunk that follow each other go out as one view; the rest in one
      // corked write.
      const merged: Buffer[] = [];
      for (const b of buffers) {
        const last = merged[merged.length - 1];
        if (last && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset)
          merged[merged.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
        else merged.push(b);
      }
      if (merged.length > 1) u.cork();
      for (const b of merged) ok = u.write(b) && ok;
      if (merged.length > 1) u.uncork();
    }
    if (!ok) this.#pauseClient(PAUSE_UPSTREAM_FULL);
  }

  // ------------------------------------------------------------------------------------------
  // Target bytes

  readonly #onUpstreamData = (chunk: Buffer): void => {
    if (this.#state === SessionState.Closed) return;
    const out: Buffer[] = [];
    try {
      this.#relay.process(chunk, out);
    } catch (err) {
      this.#ctx.log?.error(
        { session: this.id, err: (err as Error).message },
        'postgres upstream protocol error',
      );
      this.#fatal('08P01', 'the target sent an invalid message; Airlock closed the connection');
      return;
    }
    this.#writeOut(out);
  };

  #writeOut(out: readonly Buffer[]): void {
    if (out.length === 1) this.#writeClient(out[0]!);
    else if (out.length > 1) {
      this.#client.cork();
      for (const b of out) this.#writeClient(b);
      this.#client.uncork();
    }
  }

  #onReady(status: number): void {
    this.#txStatus = status;
    this.#doneCycles++;
    // Outside a transaction block every portal is gone on the target.
    if (status === TxStatus.Idle) this.#portals.clear();
    while (this.#denials.length > 0 && this.#denials[0]!.cycle < this.#doneCycles) this.#denials.shift();
  }

  #rewriteError(raw: Buffer): Buffer | undefined {
    if (!raw.includes(this.#nonceBytes)) return undefined;
    while (this.#denials.length > 0 && this.#denials[0]!.cycle < this.#doneCycles) this.#denials.shift();
    return this.#denials.shift()?.message;
  }

  #upstreamClosed(): void {
    if (this.#state === SessionState.Closed) return;
    this.#fatal('57P01', `the target of connection "${this.#connection?.name}" closed the connection`);
  }

  // ------------------------------------------------------------------------------------------
  // Statements

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && this.#state === SessionState.Ready) {
        const f = this.#queue.shift()!;
        this.#queuedBytes -= f.raw.length;
        switch (f.type) {
          case FrontendType.Query:
            await this.#simpleQuery(f);
            break;
          case FrontendType.Parse:
          case FrontendType.Bind:
          case FrontendType.Describe:
          case FrontendType.Close:
          case FrontendType.Execute:
            this.#batch.push(f);
            this.#batchBytes += f.raw.length;
            if (this.#batchBytes > MAX_BATCH_BYTES) await this.#runBatch();
            break;
          case FrontendType.Sync:
          case FrontendType.Flush:
            this.#batch.push(f);
            await this.#runBatch();
            break;
          case FrontendType.CopyData:
          case FrontendType.CopyDone:
          case FrontendType.CopyFail:
            // COPY FROM STDIN was judged as the statement that started it.
            if (this.#batch.length > 0) this.#batch.push(f);
            else this.#writeUpstream([f.raw]);
            break;
          case FrontendType.FunctionCall:
            await this.#functionCall(f);
            break;
          case FrontendType.Terminate:
            this.#terminate();
            return;
          default:
            throw new PgProtocolError(`invalid frontend message type ${describeType(f.type)} in this state`);
        }
        if (this.#queuedBytes <= MAX_QUEUED_BYTES / 2) this.#resumeClient(PAUSE_QUEUE_FULL);
      }
    } catch (err) {
      this.#protocolFailure(err);
    } finally {
      this.#draining = false;
    }
  }

  #action(
    summary: string,
    normalized: string,
    parts: readonly ActionPart[],
    attributes: Record<string, unknown>,
  ): Action {
    return actionOf(this.#origin!, summary, normalized, parts, {
      database: this.#connection!.upstream.database,
      ...attributes,
    });
  }

  /** Remember SQL-level PREPARE / DECLARE: they create names the extended protocol can use. */
  #noteForwarded(parts: readonly ActionPart[]): void {
    for (const p of parts) {
      if (p.statement === 'PrepareStmt') this.#sqlPrepared = true;
      else if (p.statement === 'DeclareCursorStmt') this.#sqlCursors = true;
      // Column names and function definitions the catalog cache holds may have changed.
      if (p.kind !== 'read' && p.kind !== 'write') this.#catalog?.invalidate();
    }
  }

  async #simpleQuery(f: Frame): Promise<void> {
    const sql = parseQuery(f);
    const c = classifySql(sql);
    if (c.empty) {
      this.#forwardTerminator(f.raw);
      return;
    }
    const unmask = this.#masker !== undefined && isUnmask(c.parts);
    const action = unmask
      ? this.#action(
          sql,
          c.normalized,
          [
            {
              kind: 'privilege',
              text: sql,
              statement: UNMASK_STATEMENT,
              why: 'asks to see this session’s results without masking',
            },
          ],
          { unmask: true },
        )
      : await this.#refined(this.#action(sql, c.normalized, c.parts, {}));
    if (this.#state !== SessionState.Ready) return;
    const verdict = await this.#judge(action);
    if (this.#state !== SessionState.Ready) return;
    if (verdict === true) {
      if (unmask) this.#unmask();
      this.#noteForwarded(action.parts);
      this.#forwardTerminator(f.raw);
    } else this.#denyCycle(verdict);
  }

  async #functionCall(f: Frame): Promise<void> {
    const call = parseFunctionCall(f);
    const summary = `FunctionCall message: function OID ${call.oid} with ${call.args} argument(s)`;
    const part: ActionPart = {
      kind: 'unknown',
      text: summary,
      statement: 'FunctionCall',
      why: 'the fast-path function call interface runs a function the gateway cannot see into',
    };
    const verdict = await this.#judge(
      this.#action(summary, `functioncall:${f.raw.subarray(5).toString('hex')}`, [part], { oid: call.oid }),
    );
    if (this.#state !== SessionState.Ready) return;
    if (verdict === true) this.#forwardTerminator(f.raw);
    else this.#denyCycle(verdict);
  }

  /** Forwards a message that ends a ReadyForQuery cycle (Query, FunctionCall). */
  #forwardTerminator(raw: Buffer): void {
    this.#sentCycles++;
    this.#writeUpstream([raw]);
  }

  /** Denies a Query or FunctionCall: answered by us when idle, else through a substitute. */
  #denyCycle(d: Denial): void {
    const error = errorResponse({ severity: 'ERROR', code: d.code, message: d.message, hint: d.hint });
    const quiet = this.#sentCycles === this.#doneCycles && !this.#openExtended;
    if (quiet && (this.#txStatus === TxStatus.Idle || this.#txStatus === TxStatus.Failed)) {
      this.#sendLocal(Buffer.concat([error, readyForQuery(this.#txStatus)]));
      return;
    }
    this.#denials.push({ cycle: this.#sentCycles, message: error });
    this.#forwardTerminator(queryMessage(this.#nonce));
  }

  async #runBatch(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    for (let i = 0; i < batch.length; i++) {
      const f = batch[i]!;
      switch (f.type) {
        case FrontendType.Parse: {
          const p = parseParse(f);
          const classified = classifySql(p.query);
          const ambiguous = p.name !== '' && (this.#statements.has(p.name) || this.#sqlPrepared);
          this.#statements.set(p.name, { text: p.query, classified, ambiguous });
          break;
        }
        case FrontendType.Bind: {
          const b = parseBind(f);
          const ambiguous = b.portal !== '' && (this.#portals.has(b.portal) || this.#sqlCursors);
          this.#portals.set(b.portal, {
            statementName: b.statement,
            statement: this.#statements.get(b.statement),
            values: b.values,
            binary: b.binary,
            ambiguous,
          });
          break;
        }
        case FrontendType.Close: {
          const t = parseTarget(f, 'Close');
          if (t.which === 'S') this.#statements.delete(t.name);
          else this.#portals.delete(t.name);
          break;
        }
        case FrontendType.Describe:
          parseTarget(f, 'Describe');
          break;
        case FrontendType.Execute: {
          const { portal } = parseExecute(f);
          const plain = this.#executeAction(portal);
          if (!plain) break;
          const action = await this.#refined(plain);
          if (this.#state !== SessionState.Ready) return;
          const verdict = await this.#judge(action);
          if (this.#state !== SessionState.Ready) return;
          if (verdict !== true) {
            this.#denyExtended(batch, i, verdict);
            return;
          }
          this.#noteForwarded(action.parts);
          break;
        }
      }
    }
    this.#forwardBatch(batch);
  }

  #forwardBatch(messages: readonly Frame[]): void {
    if (messages.length === 0) return;
    const buffers: Buffer[] = [];
    for (const m of messages) buffers.push(m.raw);
    const last = messages[messages.length - 1]!.type;
    if (last === FrontendType.Sync) {
      this.#sentCycles++;
      this.#openExtended = false;
    } else this.#openExtended = true;
    this.#writeUpstream(buffers);
  }

  /**
   * Forwards what came before the denied Execute, then a Parse that cannot succeed in place of
   * the rest: the target reports an error, skips to Sync and reports the true status.
   */
  #denyExtended(batch: readonly Frame[], at: number, d: Denial): void {
    const error = errorResponse({ severity: 'ERROR', code: d.code, message: d.message, hint: d.hint });
    const end = batch[batch.length - 1]!;
    const ends = end.type === FrontendType.Sync || end.type === FrontendType.Flush;
    const buffers = batch.slice(0, at).map((m) => m.raw);
    buffers.push(parseMessage(this.#nonce, this.#nonce));
    this.#denials.push({ cycle: this.#sentCycles, message: error });
    if (ends) buffers.push(end.raw);
    if (ends && end.type === FrontendType.Sync) {
      this.#sentCycles++;
      this.#openExtended = false;
    } else this.#openExtended = true;
    this.#writeUpstream(buffers);
  }

  #executeAction(portalName: string): Action | undefined {
    const portal = this.#portals.get(portalName);
    const st = portal?.statement;
    if (!portal || !st) {
      const summary = portal
        ? `execute portal "${portalName}" of prepared statement "${portal.statementName}", which Airlock did not see defined`
        : `execute portal "${portalName}", which Airlock did not see bound`;
      const part: ActionPart = {
        kind: 'unknown',
        text: summary,
        why: 'the statement behind this portal is unknown to Airlock',
      };
      return this.#action(summary, `unknown-portal:${portalName}:${portal?.statementName ?? ''}`, [part], {});
    }
    if (st.classified.empty) return undefined;
    const display: (string | null)[] = [];
    const identity: (string | null)[] = [];
    for (let i = 0; i < portal.values.length; i++) {
      const v = portal.values[i]!;
      if (v === null) {
        display.push(null);
        identity.push(null);
        continue;
      }
      const text = portal.binary[i] ? `\\x${v.toString('hex')}` : v.toString('utf8');
      const shown = this.#masker ? this.#masker.scan(text) : text;
      display.push(
        shown.length > PARAM_DISPLAY_MAX
          ? `${shown.slice(0, PARAM_DISPLAY_MAX)}… (${shown.length} characters)`
          : shown,
      );
      identity.push(text.length > PARAM_DISPLAY_MAX ? `sha256:${sha256(text)}` : text);
    }
    const ambiguous = st.ambiguous || portal.ambiguous;
    const parts: readonly ActionPart[] = ambiguous
      ? [
          {
            kind: 'unknown',
            text: st.text,
            why: `prepared statement or portal redefined: the target may still hold an earlier definition`,
          },
        ]
      : st.classified.parts;
    const normalized =
      identity.length > 0
        ? `${st.classified.normalized}\n-- parameters: ${JSON.stringify(identity)}`
        : st.classified.normalized;
    const attributes: Record<string, unknown> = {};
    if (display.length > 0) attributes.parameters = display;
    if (portal.statementName) attributes.statement = portal.statementName;
    return this.#action(st.text, normalized, parts, attributes);
  }

  /**
   * For a write about to be held: the planner's estimate of its rows and, where the connection
   * opts in, the exact count from a dry run that is rolled back.
   */
  async #blastRadius(action: Action): Promise<Record<string, unknown> | undefined> {
    if (!this.#catalog) return undefined;
    const facts: Record<string, unknown> = {};
    if (this.#connection?.dryRun) {
      const can = dryRunnable(action.parts);
      const d = 'skipped' in can ? can : await this.#catalog.dryRun(can.parts, can.functions);
      if (d && 'rows' in d) {
        facts.dryRunRows = d.rows;
        if (d.note) facts.dryRunNote = d.note;
      } else if (d) facts.dryRunSkipped = d.skipped;
    }
    const parts = estimable(action.parts);
    const rows = parts ? await this.#catalog.estimateRows(parts.map((p) => p.text)) : undefined;
    if (rows !== undefined) facts.estimatedRows = rows;
    return Object.keys(facts).length > 0 ? facts : undefined;
  }

  /**
   * Functions the classifier does not know are judged by their volatility on the target. When the
   * catalog cannot be read they stay `unknown` (fail closed).
   */
  async #refined(action: Action): Promise<Action> {
    const catalog = this.#catalog;
    const names = new Set<string>();
    for (const p of action.parts)
      for (const fn of (p as Partial<SqlPart>).unknownFunctions ?? []) names.add(fn);
    if (!catalog || names.size === 0) return action;
    let volatility: ReadonlyMap<string, 'i' | 's' | 'v'>;
    try {
      volatility = await catalog.volatility([...names]);
    } catch (err) {
      this.#ctx.log?.warn(
        { session: this.id, err: (err as Error).message },
        'postgres function volatility lookup failed; functions stay unknown',
      );
      return action;
    }
    const parts = action.parts.map((p) =>
      (p as Partial<SqlPart>).unknownFunctions?.length
        ? refineByVolatility(p as SqlPart, (fn) => volatility.get(fn))
        : p,
    );
    return { ...action, parts, kind: kindOfParts(parts) };
  }

  /** Asks the gate; holds if told to. Returns true to forward, or the denial to send. */
  async #judge(action: Action): Promise<true | Denial> {
    const { gate, log } = this.#ctx;
    let outcome: Awaited<ReturnType<GatePort['decide']>>;
    try {
      outcome = await gate.decide(action, { beforeHold: () => this.#blastRadius(action) });
    } catch (err) {
      return this.#failClosed(err);
    }
    if (this.#recording) this.#record('statement', statementEvent(action, outcome, this.#masker));
    if (outcome.verdict === 'allow') {
      this.#forwardedAt = performance.now();
      return true;
    }
    if (outcome.verdict === 'deny') return { code: '42501', message: `denied by Airlock: ${outcome.reason}` };
    if (outcome.mode === 'retry')
      return {
        code: '42501',
        message: outcome.message,
        hint: 'run the same statement again once it is approved',
      };
    const id = outcome.request.id;
    const waiting = `waiting for approval: request ${id} — approve it at ${outcome.url}`;
    this.#sendLocal(noticeResponse({ severity: 'NOTICE', code: '00000', message: waiting }));
    log?.info(
      { session: this.id, request: id, connection: action.connection, kind: action.kind },
      'postgres statement held',
    );
    const started = Date.now();
    const keepalive = setInterval(() => {
      const s = Math.round((Date.now() - started) / 1000);
      this.#sendLocal(
        noticeResponse({ severity: 'NOTICE', code: '00000', message: `still ${waiting} (${s}s so far)` }),
      );
    }, this.#ctx.keepaliveNoticeMs);
    this.#holding = true;
    try {
      const s = await gate.settled(id, this.#abort.signal);
      this.#record('decision', settlementEvent(id, s));
      if (s.status !== 'approved') return { code: '42501', message: `denied by Airlock: ${s.reason}` };
      if (this.#state !== SessionState.Ready) return { code: '57014', message: 'the session closed' };
      await gate.release(id);
      this.#forwardedAt = performance.now();
      return true;
    } catch (err) {
      return this.#failClosed(err);
    } finally {
      clearInterval(keepalive);
      this.#holding = false;
    }
  }

  /** An approved (or allowed) `SET airlock.unmask`: results from now on go out as they are. */
  #unmask(): void {
    this.#masker = undefined;
    if (this.#masking) this.#masking.masker = new SessionMasker([]);
    this.#ctx.log?.info(
      { session: this.id, connection: this.#connection?.name },
      'postgres session unmasked',
    );
    this.#record('unmask', {});
  }

  #record(type: string, fields: Record<string, unknown>): void {
    this.#recording?.event(type, fields);
  }

  /** Results as the caller got them (masked when masking applies), for the recording. */
  #observe(type: number, raw: Buffer): void {
    if (!this.#recording) return;
    if (type === BackendType.CommandComplete) {
      const tag = raw.toString('utf8', 5, raw.length - 1);
      const rows = /^(?:SELECT|INSERT \d+|UPDATE|DELETE|MERGE|FETCH|MOVE|COPY) (\d+)$/.exec(tag)?.[1];
      this.#record('result', {
        tag,
        ...(rows === undefined ? {} : { rows: Number(rows) }),
        ms: Number((performance.now() - this.#forwardedAt).toFixed(3)),
      });
      return;
    }
    const f = parseErrorFields({ type, raw, bodyOffset: 5 });
    this.#record(type === BackendType.ErrorResponse ? 'error' : 'notice', {
      severity: f.get('V') ?? f.get('S'),
      code: f.get('C'),
      message: f.get('M'),
      ...(f.has('D') ? { detail: f.get('D') } : {}),
    });
  }

  #failClosed(err: unknown): Denial {
    if (isAirlockError(err)) {
      this.#ctx.log?.error(
        { session: this.id, code: err.code, err: err.message },
        'postgres statement refused: gate failed',
      );
      return {
        code: err.code === 'AIRLOCK_E_AUDIT_UNAVAILABLE' ? '58000' : '58000',
        message: err.message,
        hint: err.hint,
      };
    }
    this.#ctx.log?.error(
      { session: this.id, err: (err as Error)?.message },
      'postgres statement refused: gate failed',
    );
    return {
      code: '58000',
      message: 'Airlock could not judge the statement, so it was not run',
      hint: 'try again; if it persists, tell an Airlock admin',
    };
  }

  // ------------------------------------------------------------------------------------------
  // Ending

  #terminate(): void {
    this.#upstream?.end(TERMINATE);
    this.#client.end();
    this.#close('terminated by client');
  }

  /** FATAL error to the caller (when it can be placed between messages), then close. */
  #fatal(code: string, message: string, hint?: string): void {
    if (this.#state === SessionState.Closed) return;
    if (this.#relay.atBoundary && !this.#client.destroyed && this.#client.writable)
      this.#client.end(errorResponse({ severity: 'FATAL', code, message, hint }));
    else this.#client.end();
    this.#close(message);
  }

  #close(reason: string): void {
    if (this.#state === SessionState.Closed && this.#abort.signal.aborted) return;
    this.#state = SessionState.Closed;
    clearTimeout(this.#startupTimer);
    this.#abort.abort();
    if (this.#gatewayPid) this.#ctx.cancelKeys.unregister(this.#gatewayPid);
    const u = this.#upstream;
    if (u && !u.destroyed) {
      u.end(TERMINATE);
      setTimeout(() => u.destroy(), 1000).unref();
    }
    const c = this.#client;
    if (!c.destroyed) setTimeout(() => c.destroy(), 1000).unref();
    this.#queue = [];
    this.#batch = [];
    this.#releaseSlot?.();
    clearTimeout(this.#stallTimer);
    if (this.#opened) this.#ctx.gate.sessionClosed(this.id, { reason });
    if (this.#recording) {
      endSessionEvents(this.#recording, reason, this.#ctx.log, 'postgres', this.id);
      this.#recording = undefined;
    }
    this.#ctx.log?.info({ session: this.id, reason }, 'postgres session closed');
    this.#onClosed();
  }
}

/** Rules can name it in `statements:`. */
const UNMASK_STATEMENT = 'AirlockUnmask';

/**
 * `SET airlock.unmask = on` (any value; a custom setting PostgreSQL keeps as a placeholder) asks
 * the gateway to stop masking this session. It is judged as a `privilege` action of its own, so
 * policy decides who may, and usually that a reviewer must approve it.
 */
function isUnmask(parts: readonly ActionPart[]): boolean {
  return (
    parts.length === 1 &&
    parts[0]!.statement === 'VariableSetStmt' &&
    /^SET\s+(SESSION\s+)?"?airlock\.unmask"?\s*(=|TO)/i.test(parts[0]!.text.trim())
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
