/**
 * One caller connection: the handshake (the caller's password is its Airlock token, the database
 * name picks the connection), the login to the target with the credential Airlock holds, then
 * every command judged by the gate before it reaches the target.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 *
 * The protocol is strictly request/response, so commands are handled one at a time: a command is
 * judged, forwarded unchanged (or answered here with an ERR packet), and the target's response is
 * relayed unchanged until it ends. A denied command never reaches the target, so the target's
 * session state is exactly as if the command had not been sent, and the connection stays usable.
 *
 * Holds: MySQL has no way to tell a waiting client anything, so with `hold: wait` the caller's
 * command simply takes as long as the approval (the request id and URL are in the log, the
 * console, notifications and `airlock requests`); with `hold: retry` the caller gets an ERR
 * packet naming the request and URL at once.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import {
  type Action,
  type ActionOrigin,
  type ActionPart,
  actionOf,
  fingerprintOf,
  type Principal,
} from '../../core/action.ts';
import type { AuditSink, Logger } from '../../core/adapter-ports.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import { maskerFor, type SessionMasker } from '../../core/masking/masker.ts';
import type { MysqlConnection } from '../../core/policy/connections/mysql.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { EventStreamWriter } from '../../core/recording/events.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { endSessionEvents, openSessionEvents } from '../../core/session-events.ts';
import { namedConnection, originOf, tokenRefused } from '../../core/sign-in.ts';
import { settlementEvent, statementEvent } from '../../core/statement-events.ts';
import { type RsaKeys, rsaDecryptPassword } from './auth.ts';
import { type ClassifiedSql, classifySql, type MysqlPart } from './classify.ts';
import {
  Cap,
  COMMAND_NAMES,
  Command,
  ErrorCode,
  GATEWAY_CAPABILITIES,
  Header,
  isAsciiSafeCollation,
  PASSED_CAPABILITIES,
  Status,
  UTF8MB4_GENERAL_CI,
} from './constants.ts';
import { LOCAL_INFILE_OFF, localInfileRefusal } from './infile.ts';
import { derivation, RowMasker } from './masking.ts';
import {
  authMoreData,
  authSwitchRequest,
  errPacket,
  greeting,
  type HandshakeResponse,
  isSslRequest,
  okPacket,
  parseErr,
  parseHandshakeResponse,
} from './messages.ts';
import {
  Cursor,
  type Frame,
  FrameReader,
  joinFrames,
  MysqlProtocolError,
  type Packet,
  PacketReader,
  packet,
} from './packets.ts';
import { displayValue, parseExecute } from './params.ts';
import { type Expect, type Phase, ResponseTracker } from './response.ts';
import { classifyShaped } from './shape.ts';
import { connectUpstream, type UpstreamSession, type UpstreamTarget } from './upstream.ts';
import { USE_OTHER_CONNECTION, useMeaning, useOutcome, useStatement } from './use.ts';
import { ViewCatalog } from './views.ts';

export interface SessionContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  /** Refusals made here, before the Gate is asked, are audited through it. */
  readonly audit?: AuditSink | undefined;
  readonly tokens: Authenticator;
  readonly tls?: SecureContext | undefined;
  readonly rsa: RsaKeys;
  readonly log?: Logger | undefined;
  readonly connectionId: () => number;
  readonly serverVersion: string;
  readonly maxPacket?: number;
  readonly handshakeTimeoutMs?: number;
  /** Connection slots and failed sign-in throttling shared with the other protocols. */
  readonly limits?: Limits | undefined;
  /** Session recordings (statements, decisions, results, errors as events); none without one. */
  readonly recorder?: Recorder | undefined;
}

/** Largest command we accept from a caller (the target's max_allowed_packet still applies). */
export const MAX_COMMAND = 64 * 1024 * 1024;
/** Commands a caller may send ahead while one is in flight or held. */
const MAX_QUEUED_BYTES = 1024 * 1024;
const PARAM_DISPLAY_MAX = 1000;
const MAX_LONG_DATA = 16 * 1024 * 1024;

const State = {
  Greeting: 'greeting',
  Auth: 'auth',
  Connecting: 'connecting',
  Ready: 'ready',
  Closed: 'closed',
} as const;
type State = (typeof State)[keyof typeof State];

/** Where the caller's authentication is. */
type AuthStep = 'switch' | 'full' | 'public-key';

interface Prepared {
  readonly text: string;
  readonly classified: ClassifiedSql;
  readonly params: number;
  types?: number[];
  readonly longData: Map<number, Buffer[]>;
  longDataBytes: number;
}

interface Denial {
  readonly errno: number;
  readonly sqlstate: string;
  readonly message: string;
}

export class MysqlSession {
  readonly id = randomUUID();
  readonly #ctx: SessionContext;
  readonly #raw: Socket;
  #client: Socket;
  #upstream: UpstreamSession | undefined;
  #state: State = State.Greeting;
  readonly #source: string;
  readonly #reader: PacketReader;
  readonly #scramble: Buffer = Buffer.from(randomBytes(20).map((b) => b & 0x7f || 1));
  #tls = false;
  #hello: HandshakeResponse | undefined;
  #authStep: AuthStep = 'switch';
  #seq = 0;
  #connection: MysqlConnection | undefined;
  /** Set at sign-in: what every action of this session repeats. */
  #origin: ActionOrigin | undefined;
  #opened = false;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  readonly #onClosed: () => void;

  // Command phase
  #queue: Packet[] = [];
  #queuedBytes = 0;
  #busy = false;
  readonly #tracker = new ResponseTracker();
  readonly #frames = new FrameReader();
  #responseDone: (() => void) | undefined;
  /** The command in flight may run LOAD DATA LOCAL INFILE (it was judged as such). */
  #infileAllowed = false;
  /** The caller's file is being relayed to the target. */
  #relayingInfile = false;
  /** An unapproved LOCAL INFILE request: the rest of the response is dropped, this ERR sent instead. */
  #swallow: Buffer | undefined;
  readonly #prepared = new Map<number, Prepared>();
  /** SQL-level PREPARE names we saw forwarded, with what they were prepared from. */
  readonly #sqlPrepared = new Map<string, readonly MysqlPart[] | undefined>();
  #pausedClient = false;
  #releaseSlot: (() => void) | undefined;
  /** Masks result rows when the policy's masking rules apply to this session. */
  #rows: RowMasker | undefined;
  #masker: SessionMasker | undefined;
  /** Which relations are views, looked up when column rules apply (views.ts). */
  #views: ViewCatalog | undefined;
  /** The last statement may have changed views: what was looked up is forgotten first. */
  #viewsStale = false;
  #recording: EventStreamWriter | undefined;
  #forwardedAt = 0;

  constructor(socket: Socket, ctx: SessionContext, onClosed: () => void) {
    this.#ctx = ctx;
    this.#raw = socket;
    this.#client = socket;
    this.#onClosed = onClosed;
    this.#source = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    this.#reader = new PacketReader(ctx.maxPacket ?? MAX_COMMAND);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', () => this.#close('client error'));
    socket.on('close', () => this.#close('client closed'));
    this.#listen(socket);
    const timeout = ctx.handshakeTimeoutMs ?? 15_000;
    this.#timer = setTimeout(
      () =>
        this.#fatal(
          ErrorCode.HANDSHAKE,
          `the client did not complete the login within ${Math.round(timeout / 1000)} seconds`,
        ),
      timeout,
    );
    const caps = GATEWAY_CAPABILITIES | (ctx.tls ? Cap.SSL : 0);
    this.#send(
      greeting({
        serverVersion: ctx.serverVersion,
        connectionId: ctx.connectionId(),
        scramble: this.#scramble,
        capabilities: caps,
        collation: UTF8MB4_GENERAL_CI,
        status: Status.AUTOCOMMIT,
        plugin: 'caching_sha2_password',
      }),
      0,
    );
  }

  get state(): State {
    return this.#state;
  }

  destroy(): void {
    this.#fatal(ErrorCode.SERVER_SHUTDOWN, 'Airlock is shutting down');
  }

  #listen(socket: Socket): void {
    socket.on('data', this.#onClientData);
  }

  #send(payload: Buffer, seq: number): void {
    if (!this.#client.destroyed) this.#client.write(packet(payload, seq));
  }

  // ------------------------------------------------------------------------------------------
  // Caller bytes

  readonly #onClientData = (chunk: Buffer): void => {
    if (this.#state === State.Closed) return;
    this.#reader.push(chunk);
    try {
      for (let p = this.#reader.next(); p; p = this.#reader.next()) {
        if ((this.#state as State) === State.Closed) return;
        if (this.#state === State.Greeting) {
          if (this.#onHandshake(p)) return;
        } else if (this.#state === State.Auth) {
          this.#onAuth(p);
        } else if (this.#state === State.Connecting) {
          throw new MysqlProtocolError('the client sent a command before the login completed');
        } else if (this.#relayingInfile) {
          this.#relayInfile(p);
        } else {
          this.#queue.push(p);
          this.#queuedBytes += p.payload.length;
        }
      }
    } catch (err) {
      this.#protocolFailure(err);
      return;
    }
    if (this.#queuedBytes + this.#reader.buffered > MAX_QUEUED_BYTES && !this.#pausedClient) {
      this.#pausedClient = true;
      this.#client.pause();
    }
    if (this.#state === State.Ready && !this.#busy && this.#queue.length > 0) void this.#drain();
  };

  #protocolFailure(err: unknown): void {
    if (err instanceof MysqlProtocolError) {
      this.#ctx.log?.warn(
        { session: this.id, source: this.#source, err: err.message },
        'mysql protocol violation',
      );
      this.#fatal({ errno: err.errno, sqlstate: err.sqlstate }, err.message);
    } else {
      this.#ctx.log?.error({ session: this.id, err: (err as Error)?.message }, 'mysql session failed');
      this.#fatal(ErrorCode.UNKNOWN, 'Airlock hit an internal error and closed the connection');
    }
  }

  /** Returns true when reading must stop (TLS upgrade). */
  #onHandshake(p: Packet): boolean {
    this.#seq = p.lastSeq + 1;
    if (isSslRequest(p.payload)) {
      if (!this.#ctx.tls || this.#tls)
        throw new MysqlProtocolError('the client asked for TLS, which this listener does not offer');
      // The client starts TLS right behind SSLRequest, without waiting: what followed it in the
      // same chunk is its ClientHello.
      this.#upgrade(this.#reader.takeRest());
      return true;
    }
    const hello = parseHandshakeResponse(p.payload);
    if (!(hello.capabilities & Cap.PLUGIN_AUTH) || !(hello.capabilities & Cap.SECURE_CONNECTION))
      throw new MysqlProtocolError(
        'the client does not support pluggable authentication; Airlock needs a MySQL 5.5+ or MariaDB client',
      );
    if (hello.capabilities & Cap.COMPRESS)
      throw new MysqlProtocolError('the client asked for compression, which Airlock does not offer');
    this.#hello = hello;
    this.#state = State.Auth;
    if (hello.plugin === 'mysql_clear_password' && this.#tls) {
      const end = hello.authData.indexOf(0);
      this.#gotToken((end < 0 ? hello.authData : hello.authData.subarray(0, end)).toString('utf8'));
      return false;
    }
    if (hello.plugin === 'caching_sha2_password') this.#askFull(hello.authData);
    else {
      // Any other plugin's answer is a proof we cannot check against a hashed token: ask for
      // caching_sha2_password, whose full authentication carries the token itself.
      this.#authStep = 'switch';
      this.#send(authSwitchRequest('caching_sha2_password', this.#scramble), this.#seq++);
    }
    return false;
  }

  #askFull(proof: Buffer): void {
    if (proof.length === 0) {
      this.#gotToken('');
      return;
    }
    this.#authStep = 'full';
    // "perform full authentication": the client sends the password itself (TLS) or asks for our key.
    this.#send(authMoreData(Buffer.from([4])), this.#seq++);
  }

  #onAuth(p: Packet): void {
    this.#seq = p.lastSeq + 1;
    switch (this.#authStep) {
      case 'switch':
        this.#askFull(p.payload);
        return;
      case 'full': {
        if (!this.#tls && p.payload.length === 1 && p.payload[0] === 2) {
          this.#authStep = 'public-key';
          this.#send(authMoreData(Buffer.from(this.#ctx.rsa.publicKeyPem, 'latin1')), this.#seq++);
          return;
        }
        // The token itself, NUL-terminated. Over TLS that is the protocol; on a plain connection
        // some clients (MariaDB Connector/C) send it so too rather than asking for our key. A
        // MySQL server refuses that; we take it only from this host, where it crossed no network,
        // so that a caller elsewhere learns to use TLS before the token is out there again.
        if (!this.#tls && !isLoopback(this.#raw.remoteAddress)) {
          // A refused sign-in like any other: audited, with the reason and never the token.
          const hello = this.#hello;
          this.#ctx.gate.authFailed({
            protocol: 'mysql',
            source: this.#source,
            connection: hello?.database ?? hello?.user ?? '',
            user: hello?.user ?? '',
            reason: 'AIRLOCK_E_PROTOCOL',
            detail: 'token sent in clear on an unencrypted connection',
          });
          throw new MysqlProtocolError(
            'Access denied by Airlock: the client sent the Airlock token in clear on an unencrypted connection — connect with TLS (mariadb --ssl), or with a client that encrypts it with the server key (mysql2, mysql)',
            1045,
            '28000',
          );
        }
        const end = p.payload.indexOf(0);
        this.#gotToken((end < 0 ? p.payload : p.payload.subarray(0, end)).toString('utf8'));
        return;
      }
      case 'public-key': {
        const token = rsaDecryptPassword(p.payload, this.#scramble, this.#ctx.rsa);
        if (token === undefined)
          throw new MysqlProtocolError('the encrypted password could not be decrypted', 1045, '28000');
        this.#gotToken(token);
        return;
      }
    }
  }

  #upgrade(early: Buffer): void {
    const raw = this.#raw;
    raw.off('data', this.#onClientData);
    let stream: Duplex = raw;
    if (early.length > 0) {
      // Bytes already read must reach the TLS layer first, so it reads through a stream we feed.
      const feed = new Duplex({
        read: () => raw.resume(),
        write: (chunk, _enc, cb) => raw.write(chunk, cb),
        final: (cb) => {
          raw.end();
          cb();
        },
      });
      feed.push(early);
      raw.on('data', (c: Buffer) => {
        if (!feed.push(c)) raw.pause();
      });
      raw.on('end', () => feed.push(null));
      raw.on('close', () => feed.destroy());
      feed.on('error', () => raw.destroy());
      stream = feed;
    }
    const t = new TLSSocket(stream as Socket, { isServer: true, secureContext: this.#ctx.tls! });
    t.on('error', () => this.#close('TLS error'));
    t.on('close', () => this.#close('client closed'));
    this.#client = t;
    this.#tls = true;
    this.#listen(t);
  }

  #gotToken(token: string): void {
    this.#state = State.Connecting;
    this.#login(token).catch((err) => this.#protocolFailure(err));
  }

  async #login(token: string): Promise<void> {
    const { policy, gate, log } = this.#ctx;
    const hello = this.#hello!;
    const user = hello.user;
    const name = hello.database ?? user;
    const attempt = { protocol: 'mysql', source: this.#source, identity: user || undefined };
    const signIn = {
      protocol: 'mysql',
      session: this.id,
      source: this.#source,
      connection: name,
      user,
    } as const;
    let principal: Principal;
    try {
      this.#ctx.limits?.beforeAuth(attempt);
      principal = await this.#ctx.tokens.authenticate(token === '' ? undefined : token, {
        source: this.#source,
        protocol: 'mysql',
        connection: name,
      });
    } catch (err) {
      if (!isAirlockError(err) || err.code !== 'AIRLOCK_E_RATE_LIMITED')
        this.#ctx.limits?.authFailed(attempt);
      const e = tokenRefused(err, signIn, gate, log);
      this.#fatal(ErrorCode.ACCESS_DENIED, `Access denied by Airlock: ${e.describe()}`);
      return;
    }
    const connection = namedConnection(policy, gate, signIn);
    if ('known' in connection) {
      const names = connection.known;
      this.#fatal(
        ErrorCode.BAD_DB,
        `Airlock has no MySQL connection "${name}" — ${names.length > 0 ? `use one of these as the database name: ${names.join(', ')}` : 'no MySQL connections are configured'}`,
      );
      return;
    }
    if (this.#ctx.limits) {
      try {
        this.#releaseSlot = this.#ctx.limits.openConnection(principal, 'mysql', this.#source);
      } catch (err) {
        // ER_CON_COUNT_ERROR: clients and pools know to back off on it.
        this.#fatal({ errno: 1040, sqlstate: '08004' }, isAirlockError(err) ? err.describe() : String(err));
        return;
      }
    }
    this.#connection = connection;
    this.#origin = originOf(signIn, principal);
    const masker = maskerFor(policy.masking, connection.name, principal);
    this.#masker = masker;
    const up = connection.upstream;
    // One target for the session's own connection and the view lookups' side connection.
    const target: UpstreamTarget = {
      name: connection.name,
      host: up.host,
      port: up.port,
      database: up.database,
      user: up.user,
      password: up.password?.reveal(),
      tls: up.tls,
      ca: up.ca,
    };
    if (masker?.hasColumns) this.#views = new ViewCatalog(masker, target);
    if (masker) this.#rows = new RowMasker(masker, this.#views);
    let capabilities = hello.capabilities & PASSED_CAPABILITIES;
    if (!connection.localInfile) capabilities &= ~Cap.LOCAL_FILES;
    const collation = isAsciiSafeCollation(hello.collation) ? hello.collation : UTF8MB4_GENERAL_CI;
    try {
      this.#upstream = await connectUpstream(target, { capabilities, collation });
    } catch (err) {
      const e = isAirlockError(err) ? err : new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', String(err));
      log?.warn(
        { session: this.id, connection: connection.name, code: e.code, err: e.message },
        'mysql target login failed',
      );
      this.#fatal(ErrorCode.CONNECT_TO_TARGET, `Airlock could not log in to the target: ${e.describe()}`);
      return;
    }
    if ((this.#state as State) === State.Closed) {
      this.#upstream.socket.destroy();
      return;
    }
    const u = this.#upstream.socket;
    u.on('data', this.#onUpstreamData);
    u.on('drain', () => {
      if (this.#pausedClient && this.#queuedBytes < MAX_QUEUED_BYTES) {
        this.#pausedClient = false;
        this.#client.resume();
      }
    });
    u.on('error', (err) => this.#upstreamGone(err.message));
    u.on('close', () => this.#upstreamGone('the target closed the connection'));
    u.resume();
    this.#client.on('drain', () => u.resume());
    try {
      await gate.sessionOpened({
        sessionId: this.id,
        protocol: 'mysql',
        connection: connection.name,
        principal,
        source: this.#source,
        attributes: {
          user,
          tls: this.#tls,
          program: hello.attributes.get('program_name') ?? hello.attributes.get('_client_name'),
          targetVersion: this.#upstream.serverVersion,
        },
      });
    } catch (err) {
      const e = isAirlockError(err) ? err : new AirlockError('AIRLOCK_E_AUDIT_UNAVAILABLE', String(err));
      this.#fatal(ErrorCode.UNKNOWN, `${e.message} — the session was not opened`);
      return;
    }
    this.#opened = true;
    if (this.#ctx.recorder) {
      this.#recording = openSessionEvents(this.#ctx.recorder, {
        protocol: 'mysql',
        session: this.id,
        connection: connection.name,
        principal: principal.name,
        source: this.#source,
        user,
        tls: this.#tls,
      });
    }
    clearTimeout(this.#timer);
    this.#state = State.Ready;
    this.#send(okPacket({ status: this.#upstream.status || Status.AUTOCOMMIT }), this.#seq++);
    log?.info(
      { session: this.id, principal: principal.name, connection: connection.name, tls: this.#tls },
      'mysql session opened',
    );
    if (this.#queue.length > 0) void this.#drain();
  }

  // ------------------------------------------------------------------------------------------
  // Commands

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#state === State.Ready && this.#queue.length > 0 && !this.#relayingInfile) {
        const p = this.#queue.shift()!;
        this.#queuedBytes -= p.payload.length;
        if (this.#pausedClient && this.#queuedBytes < MAX_QUEUED_BYTES / 2) {
          this.#pausedClient = false;
          this.#client.resume();
        }
        await this.#command(p);
      }
    } catch (err) {
      this.#protocolFailure(err);
    } finally {
      this.#busy = false;
    }
  }

  #forward(p: Packet, expect: Expect | undefined, binary = false): Promise<void> {
    const u = this.#upstream!.socket;
    if (expect === undefined) {
      u.write(joinFrames(p.frames));
      return Promise.resolve();
    }
    this.#tracker.start(expect, binary);
    this.#resultRows = 0;
    this.#resultExpect = expect;
    const done = new Promise<void>((resolve) => {
      this.#responseDone = resolve;
    });
    u.write(joinFrames(p.frames));
    return done;
  }

  #reply(p: Packet, payload: Buffer): void {
    this.#send(payload, p.lastSeq + 1);
  }

  #deny(p: Packet, d: Denial): void {
    this.#reply(p, errPacket(d.errno, d.sqlstate, d.message));
  }

  async #command(p: Packet): Promise<void> {
    const cmd = p.payload[0];
    if (cmd === undefined) throw new MysqlProtocolError('the client sent an empty command packet');
    this.#infileAllowed = false;
    switch (cmd) {
      case Command.QUIT:
        this.#upstream?.socket.end(p.frames[0]!);
        this.#client.end();
        this.#close('client quit');
        return;
      case Command.PING:
      case Command.SET_OPTION:
        return this.#forward(p, 'ok');
      case Command.STATISTICS:
        return this.#forward(p, 'string');
      case Command.RESET_CONNECTION:
        this.#prepared.clear();
        this.#sqlPrepared.clear();
        return this.#forward(p, 'ok');
      case Command.QUERY:
        return this.#query(p);
      case Command.INIT_DB: {
        let db = p.payload.subarray(1).toString('utf8');
        const m = useMeaning(db, this.#connection!, this.#ctx.policy);
        // Clients re-select "their" database by the name they connected with: the connection's.
        if (m.kind === 'own') {
          db = m.database;
          const payload = Buffer.concat([Buffer.from([Command.INIT_DB]), Buffer.from(db, 'utf8')]);
          p = { seq: p.seq, lastSeq: p.seq, payload, frames: [packet(payload, p.seq)] };
        }
        const c = classifySql(useStatement(db), { database: this.#connection!.upstream.database });
        if (m.kind === 'other-connection')
          return this.#refuse(
            p,
            this.#action(`USE ${db}`, `init_db:${db}`, c.parts, { command: 'COM_INIT_DB' }),
            {
              rule: USE_OTHER_CONNECTION,
              why: 'the database name at login picks the connection; USE cannot change it',
              reason: m.reason,
            },
          );
        const verdict = await this.#judge(
          this.#action(`USE ${db}`, `init_db:${db}`, c.parts, { command: 'COM_INIT_DB' }),
        );
        if (verdict !== true) return this.#deny(p, verdict);
        return this.#forward(p, 'ok');
      }
      case Command.FIELD_LIST: {
        const c = new Cursor(p.payload, 'COM_FIELD_LIST');
        c.u8();
        const table = c.nulString(false);
        const part: ActionPart = {
          kind: 'read',
          text: `SHOW COLUMNS FROM ${table}`,
          statement: 'ExplainStmt',
          tables: [table],
          why: 'lists the columns of a table',
        };
        const verdict = await this.#judge(
          this.#action(part.text, `field_list:${table}`, [part], { command: 'COM_FIELD_LIST' }),
        );
        if (verdict !== true) return this.#deny(p, verdict);
        return this.#forward(p, 'fields');
      }
      case Command.PROCESS_KILL:
      case Command.REFRESH:
      case Command.SHUTDOWN:
      case Command.DEBUG:
      case Command.PROCESS_INFO: {
        const name = COMMAND_NAMES[cmd]!;
        const detail =
          cmd === Command.PROCESS_KILL && p.payload.length >= 5 ? ` ${p.payload.readUInt32LE(1)}` : '';
        const part: ActionPart = {
          kind: cmd === Command.PROCESS_INFO ? 'read' : 'admin',
          text: `${name}${detail}`,
          statement: name,
          why: `${name} is a server administration command`,
        };
        const verdict = await this.#judge(
          this.#action(part.text, `${name}:${p.payload.subarray(1).toString('hex')}`, [part], {
            command: name,
          }),
        );
        if (verdict !== true) return this.#deny(p, verdict);
        return this.#forward(p, cmd === Command.PROCESS_INFO ? 'result' : 'ok');
      }
      case Command.STMT_PREPARE:
        return this.#prepare(p);
      case Command.STMT_EXECUTE:
        return this.#execute(p);
      case Command.STMT_SEND_LONG_DATA: {
        const c = new Cursor(p.payload, 'COM_STMT_SEND_LONG_DATA');
        c.u8();
        const st = this.#prepared.get(c.u32());
        const param = c.u16();
        const data = c.rest();
        if (st) {
          st.longDataBytes += data.length;
          if (st.longDataBytes > MAX_LONG_DATA)
            throw new MysqlProtocolError(
              `more than ${MAX_LONG_DATA} bytes of long data for one statement`,
              1153,
            );
          const list = st.longData.get(param) ?? [];
          list.push(Buffer.from(data));
          st.longData.set(param, list);
        }
        return this.#forward(p, undefined);
      }
      case Command.STMT_CLOSE: {
        if (p.payload.length >= 5) this.#prepared.delete(p.payload.readUInt32LE(1));
        return this.#forward(p, undefined);
      }
      case Command.STMT_RESET: {
        if (p.payload.length >= 5) {
          const st = this.#prepared.get(p.payload.readUInt32LE(1));
          if (st) {
            st.longData.clear();
            st.longDataBytes = 0;
          }
        }
        return this.#forward(p, 'ok');
      }
      case Command.STMT_FETCH:
        return this.#forward(p, 'rows', true);
      case Command.CHANGE_USER:
        return this.#deny(p, {
          ...ErrorCode.NOT_SUPPORTED,
          message:
            'COM_CHANGE_USER is not supported through Airlock — open a new connection with the other token',
        });
      case Command.BINLOG_DUMP:
      case Command.BINLOG_DUMP_GTID:
      case Command.REGISTER_SLAVE:
      case Command.TABLE_DUMP:
        return this.#deny(p, {
          ...ErrorCode.NOT_SUPPORTED,
          message: 'replication commands are not supported through Airlock',
        });
      default:
        return this.#deny(p, {
          ...ErrorCode.UNKNOWN_COM,
          message: `Airlock does not forward ${COMMAND_NAMES[cmd] ?? `command 0x${cmd.toString(16)}`}`,
        });
    }
  }

  #classify(sql: string): ClassifiedSql {
    // Statements that differ only in literal values share one parse (shape.ts); the others are
    // kept by text for every session.
    return classifyShaped(sql, { database: this.#connection!.upstream.database });
  }

  /** Tells the row masker which statement's results come next. */
  async #maskingFor(texts: readonly string[], parts: readonly MysqlPart[]): Promise<void> {
    const rows = this.#rows;
    if (!rows || !this.#masker) return;
    const views = this.#views;
    if (views) {
      if (this.#viewsStale) views.clear();
      // A statement that may create or change views cannot have them looked up before it runs:
      // its results treat every named source as unknown (strictest rule), and the cache starts over.
      this.#viewsStale = parts.some(
        (x) =>
          !(x.kind === 'read' || x.kind === 'session' || (x.kind === 'write' && !/^call\b/i.test(x.text))),
      );
      if (this.#viewsStale) views.clear();
      else
        await views.prepare(
          texts,
          parts.flatMap((x) => x.tables ?? []),
        );
    }
    let d = derivation(
      this.#masker,
      texts,
      parts.flatMap((x) => x.tables ?? []),
    );
    // EXECUTE of a name we never saw prepared: its text is unknown, so any value may be masked.
    const strictest = this.#masker.strictestColumn;
    if (!d && strictest && parts.some((x) => x.executes !== undefined && x.kind === 'unknown'))
      d = { spec: strictest, tables: new Set() };
    rows.statement(d);
  }

  /** EXECUTE name: what we saw prepared under that name, or unknown. */
  #resolveDynamic(parts: readonly MysqlPart[]): { parts: readonly MysqlPart[]; resolved: string[] } {
    if (!parts.some((x) => x.prepares || x.deallocates || x.executes !== undefined))
      return { parts, resolved: [] };
    // PREPARE earlier in the same text defines names for EXECUTE later in it.
    const names = new Map(this.#sqlPrepared);
    const resolved: string[] = [];
    const out = parts.map((part) => {
      if (part.prepares)
        names.set(part.prepares.name, part.prepares.parts.length > 0 ? part.prepares.parts : undefined);
      if (part.deallocates) names.delete(part.deallocates);
      if (part.executes === undefined) return part;
      const prepared = names.get(part.executes);
      if (prepared?.length !== 1) return part;
      const inner = prepared[0]!;
      // What the name stands for is part of the identity: an approval of `EXECUTE s` covers only this text.
      resolved.push(`${part.executes}=${inner.text}`);
      return {
        ...part,
        kind: inner.kind,
        statement: inner.statement,
        tables: inner.tables,
        functions: inner.functions,
        why: `executes ${inner.statement} prepared as "${inner.text}": ${inner.why}`,
      };
    });
    return { parts: out, resolved };
  }

  async #query(p: Packet): Promise<void> {
    const sql = p.payload.subarray(1).toString('utf8');
    const c = this.#classify(sql);
    if (c.empty) return this.#forward(p, 'result');
    if (c.parts.some((x) => x.uses !== undefined)) {
      const use = await this.#use(p, sql, c);
      if (use) return use();
    }
    const { parts, resolved } = this.#resolveDynamic(c.parts);
    const infile = parts.some((x) => x.localInfile);
    const normalized =
      resolved.length > 0 ? `${c.normalized}\n-- executes: ${JSON.stringify(resolved)}` : c.normalized;
    const refusal = localInfileRefusal(this.#connection!, parts);
    if (refusal !== undefined)
      return this.#refuse(p, this.#action(sql, normalized, parts, {}), {
        rule: LOCAL_INFILE_OFF,
        why: 'LOAD DATA LOCAL INFILE needs local_infile: true on the connection; no rule applies without it',
        reason: refusal,
      });
    const verdict = await this.#judge(this.#action(sql, normalized, parts, {}));
    if (verdict !== true) return this.#deny(p, verdict);
    const defines = parts.filter((x) => x.prepares || x.deallocates);
    this.#infileAllowed = infile;
    await this.#maskingFor([sql, ...resolved], parts);
    await this.#forward(p, 'result');
    for (const part of defines) {
      // After an error the server stops at the failing statement: we cannot tell which names it
      // defined, so they become unknown (EXECUTE of them is judged `unknown`).
      if (part.prepares)
        this.#sqlPrepared.set(
          part.prepares.name,
          part.prepares.parts.length > 0 && !this.#lastError ? part.prepares.parts : undefined,
        );
      if (part.deallocates && !this.#lastError) this.#sqlPrepared.delete(part.deallocates);
    }
  }

  /**
   * A text USE naming a connection (use.ts): another connection's name is refused; the own name,
   * sent on its own, runs as USE of the connection's database. Returns how the command is
   * answered, or undefined when it is judged as usual.
   */
  async #use(p: Packet, sql: string, c: ClassifiedSql): Promise<(() => Promise<void>) | undefined> {
    const outcome = useOutcome(c.parts, this.#connection!, this.#ctx.policy);
    if (!outcome) return undefined;
    if ('refuse' in outcome)
      return () => this.#refuse(p, this.#action(sql, c.normalized, c.parts, {}), outcome.refuse);
    const text = outcome.runs;
    const payload = Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(text, 'utf8')]);
    const rewritten: Packet = { seq: p.seq, lastSeq: p.seq, payload, frames: [packet(payload, p.seq)] };
    const rc = classifySql(text, { database: outcome.database });
    return async () => {
      const verdict = await this.#judge(this.#action(sql, rc.normalized, rc.parts, { runs: text }));
      if (verdict !== true) return this.#deny(p, verdict);
      return this.#forward(rewritten, 'result');
    };
  }

  #pendingPrepare: { text: string; classified: ClassifiedSql } | undefined;

  async #prepare(p: Packet): Promise<void> {
    const text = p.payload.subarray(1).toString('utf8');
    // Preparing runs nothing; the statement is judged at each execute, with its parameters.
    this.#pendingPrepare = { text, classified: this.#classify(text) };
    await this.#forward(p, 'prepare');
    this.#pendingPrepare = undefined;
  }

  async #execute(p: Packet): Promise<void> {
    if (p.payload.length < 5) throw new MysqlProtocolError('COM_STMT_EXECUTE is truncated');
    const id = p.payload.readUInt32LE(1);
    const st = this.#prepared.get(id);
    if (!st) {
      const part: ActionPart = {
        kind: 'unknown',
        text: `execute prepared statement ${id}`,
        why: 'Airlock did not see this statement prepared',
      };
      const verdict = await this.#judge(this.#action(part.text, `unknown-statement:${id}`, [part], {}));
      if (verdict !== true) return this.#deny(p, verdict);
      return this.#forward(p, 'result', true);
    }
    const longData = new Set(st.longData.keys());
    const req = parseExecute(p.payload, st.params, st.types, longData);
    st.types = [...req.types];
    // Every byte of every value is part of the identity: long values enter it as their SHA-256.
    const identity = req.values.map((v, i) => {
      if (v === 'long-data') {
        const h = createHash('sha256');
        for (const chunk of st.longData.get(i) ?? []) h.update(chunk);
        return `long:sha256:${h.digest('hex')}`;
      }
      return v !== null && v.length > PARAM_DISPLAY_MAX
        ? `sha256:${createHash('sha256').update(v).digest('hex')}`
        : v;
    });
    const display = req.values.map((v) => {
      const d = displayValue(v);
      return d !== null && d.length > PARAM_DISPLAY_MAX
        ? `${d.slice(0, PARAM_DISPLAY_MAX)}… (${d.length} characters)`
        : d;
    });
    const normalized =
      identity.length > 0
        ? `${st.classified.normalized}\n-- parameters: ${JSON.stringify(identity)}`
        : st.classified.normalized;
    const parts = st.classified.empty ? [] : this.#resolveDynamic(st.classified.parts).parts;
    if (parts.length > 0) {
      const attributes: Record<string, unknown> = { command: 'COM_STMT_EXECUTE' };
      if (display.length > 0) attributes.parameters = display;
      const verdict = await this.#judge(this.#action(st.text, normalized, parts, attributes));
      if (verdict !== true) return this.#deny(p, verdict);
    }
    await this.#maskingFor([st.text], parts);
    // Long data is consumed by the execute.
    st.longData.clear();
    st.longDataBytes = 0;
    return this.#forward(p, 'result', true);
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

  /** Asks the gate; holds if told to. Returns true to forward, or the denial to send. */
  async #judge(action: Action): Promise<true | Denial> {
    const { gate, log } = this.#ctx;
    let outcome: Awaited<ReturnType<GatePort['decide']>>;
    try {
      outcome = await gate.decide(action);
    } catch (err) {
      return this.#failClosed(err);
    }
    if (this.#recording) this.#record('statement', statementEvent(action, outcome, this.#masker));
    this.#forwardedAt = performance.now();
    if (outcome.verdict === 'allow') return true;
    if (outcome.verdict === 'deny')
      return { ...ErrorCode.DENIED, message: `denied by Airlock: ${outcome.reason}` };
    if (outcome.mode === 'retry')
      return {
        ...ErrorCode.DENIED,
        message: `${outcome.message} — run the same statement again once it is approved`,
      };
    const id = outcome.request.id;
    log?.info(
      { session: this.id, request: id, url: outcome.url, connection: action.connection, kind: action.kind },
      'mysql statement held',
    );
    try {
      const s = await gate.settled(id, this.#abort.signal);
      this.#record('decision', settlementEvent(id, s));
      if (s.status !== 'approved')
        return { ...ErrorCode.DENIED, message: `denied by Airlock: ${s.reason} (request ${id})` };
      if (this.#state !== State.Ready)
        return { ...ErrorCode.QUERY_INTERRUPTED, message: 'the session closed' };
      await gate.release(id);
      this.#forwardedAt = performance.now();
      return true;
    } catch (err) {
      return this.#failClosed(err);
    }
  }

  /**
   * Refused here, before the Gate is asked (no rule could let it through): audited as the Gate
   * audits a denial, recorded, and answered with the reason.
   */
  async #refuse(p: Packet, action: Action, r: { rule: string; why: string; reason: string }): Promise<void> {
    const principal = action.principal;
    try {
      await this.#ctx.audit?.append('action.denied', {
        principal: { name: principal.name, kind: principal.kind, groups: [...principal.groups] },
        connection: action.connection,
        protocol: action.protocol,
        sessionId: action.sessionId,
        ...(action.source === undefined ? {} : { source: action.source }),
        kind: action.kind,
        summary: action.summary,
        fingerprint: fingerprintOf(action),
        rule: r.rule,
        decision: 'deny',
        why: r.why,
        reason: r.reason,
      });
    } catch (err) {
      // Refused all the same; the log says the record is missing.
      this.#ctx.log?.error(
        { session: this.id, err: (err as Error)?.message },
        'mysql refusal could not be audited',
      );
    }
    this.#record('statement', {
      text: this.#masker ? this.#masker.scan(action.summary) : action.summary,
      kind: action.kind,
      decision: 'deny',
      rule: r.rule,
    });
    this.#deny(p, { ...ErrorCode.DENIED, message: `denied by Airlock: ${r.reason}` });
  }

  #record(type: string, fields: Record<string, unknown>): void {
    this.#recording?.event(type, fields);
  }

  #failClosed(err: unknown): Denial {
    const message = isAirlockError(err)
      ? err.describe()
      : 'Airlock could not judge the statement, so it was not run — try again; if it persists, tell an Airlock admin';
    this.#ctx.log?.error(
      { session: this.id, err: (err as Error)?.message },
      'mysql statement refused: gate failed',
    );
    return { ...ErrorCode.UNKNOWN, message };
  }

  // ------------------------------------------------------------------------------------------
  // LOAD DATA LOCAL INFILE: the caller's file, packet by packet, ending with an empty packet.

  #relayInfile(p: Packet): void {
    this.#upstream!.socket.write(joinFrames(p.frames));
    if (p.payload.length === 0) {
      this.#relayingInfile = false;
      this.#tracker.infileSent();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Target bytes

  readonly #onUpstreamData = (chunk: Buffer): void => {
    if (this.#state === State.Closed) return;
    this.#frames.push(chunk);
    const out: Buffer[] = [];
    try {
      for (let f = this.#frames.next(); f; f = this.#frames.next()) {
        if (!this.#tracker.active) {
          // Not a response: the target is going away (an ERR before it closes). Pass it on.
          out.push(f.raw);
          continue;
        }
        const phase = this.#tracker.phase;
        const ev = this.#tracker.frame(f);
        if (phase === 'rows' && ev === undefined && !f.continued && this.#tracker.phase === 'rows')
          this.#resultRows++;
        if (this.#rows && !this.#swallow) {
          const masked = this.#maskFrame(f, phase, ev?.type === 'done');
          if (masked) {
            out.push(masked);
            if (ev?.type === 'done') this.#finishResponse(ev.error, out, f);
            continue;
          }
        }
        if (ev?.type === 'local-infile') {
          if (this.#infileAllowed && !this.#swallow) {
            out.push(f.raw);
            this.#relayingInfile = true;
          } else {
            // Asked for a caller's file by a statement that was not judged as LOAD DATA LOCAL:
            // send the target an empty file and the caller an error in place of the rest.
            this.#upstream!.socket.write(packet(Buffer.alloc(0), f.seq + 1));
            this.#tracker.infileSent();
            this.#swallow = errPacket(
              ErrorCode.DENIED.errno,
              ErrorCode.DENIED.sqlstate,
              'denied by Airlock: the target asked for a local file, but the statement was not approved as LOAD DATA LOCAL INFILE',
            );
            this.#swallowSeq = f.seq;
          }
          continue;
        }
        if (ev?.type === 'prepared' && this.#pendingPrepare) {
          this.#prepared.set(ev.statementId, {
            text: this.#pendingPrepare.text,
            classified: this.#pendingPrepare.classified,
            params: ev.params,
            longData: new Map(),
            longDataBytes: 0,
          });
        }
        if (!this.#swallow) out.push(f.raw);
        if (ev?.type === 'done') this.#finishResponse(ev.error, out, f);
      }
    } catch (err) {
      if (out.length > 0) this.#write(out);
      this.#protocolFailure(err);
      return;
    }
    if (out.length > 0) this.#write(out);
  };

  #swallowSeq = 0;
  /** Rows of the response in flight (result set rows), for its recording. */
  #resultRows = 0;
  #resultExpect: Expect = 'ok';

  #finishResponse(error: boolean, out: Buffer[], last: Frame): void {
    this.#lastError = error || this.#swallow !== undefined;
    if (this.#recording) {
      const ms = Number((performance.now() - this.#forwardedAt).toFixed(3));
      if (error) {
        const e = parseErr(last.payload);
        this.#record('error', {
          code: e.errno,
          sqlstate: e.sqlstate,
          message: this.#masker ? this.#masker.scan(e.message) : e.message,
          ms,
        });
      } else {
        // As for PostgreSQL: the rows a result set returned, or the rows a statement changed.
        const expect = this.#resultExpect;
        if (expect === 'result' || expect === 'rows' || expect === 'fields') {
          const affected = last.payload[0] === Header.OK ? okAffectedRows(last.payload) : undefined;
          this.#record('result', { rows: affected ?? this.#resultRows, ms });
        } else this.#record('result', { ms });
      }
    }
    if (this.#swallow) {
      out.push(packet(this.#swallow, this.#swallowSeq));
      this.#swallow = undefined;
    }
    const done = this.#responseDone;
    this.#responseDone = undefined;
    // Resolved after what we have is written.
    if (done) queueMicrotask(done);
  }

  /** With masking on: the frame rewritten, or undefined to forward it as it is. */
  #maskFrame(f: Frame, phase: Phase, ended: boolean): Buffer | undefined {
    const rows = this.#rows!;
    const expect = this.#tracker.expect;
    if (expect !== 'result' && expect !== 'rows') return undefined;
    if (f.continued) return undefined;
    if (phase === 'first' && this.#tracker.phase === 'columns') {
      rows.reset();
      return undefined;
    }
    if (phase === 'columns') {
      rows.column(f.payload);
      return undefined;
    }
    if (phase !== 'rows' || ended) return undefined;
    const head = f.payload[0];
    if (head === 0xff || (head === 0xfe && f.payload.length < 9)) return undefined;
    if (f.more)
      throw new MysqlProtocolError(
        'a result row of 16 MB or more cannot be masked, so the session was ended',
        1105,
        'HY000',
      );
    const masked = rows.row(f.payload, this.#tracker.binary);
    return masked ? packet(masked, f.seq) : undefined;
  }
  /** The last response ended in an ERR packet. */
  #lastError = false;

  #write(out: Buffer[]): void {
    const c = this.#client;
    if (c.destroyed) return;
    // Frames relayed unchanged are views on the target's chunk: one write, mostly without a copy.
    const ok = c.write(joinFrames(out));
    if (!ok) this.#upstream?.socket.pause();
  }

  #upstreamGone(reason: string): void {
    if (this.#state === State.Closed) return;
    this.#ctx.log?.warn({ session: this.id, reason }, 'mysql target connection lost');
    this.#fatal(ErrorCode.CONNECT_TO_TARGET, `Airlock lost the connection to the target: ${reason}`);
  }

  // ------------------------------------------------------------------------------------------
  // Ending

  /** An ERR packet to the caller when one can be placed between packets, then close. */
  #fatal(code: { errno: number; sqlstate: string }, message: string): void {
    if (this.#state === State.Closed) return;
    const between = !this.#tracker.active || this.#state !== State.Ready;
    if (between && !this.#client.destroyed && this.#client.writable) {
      const seq = this.#state === State.Ready ? 1 : this.#seq;
      this.#client.end(packet(errPacket(code.errno, code.sqlstate, message), seq));
    } else this.#client.end();
    this.#close(message);
  }

  #close(reason: string): void {
    if (this.#state === State.Closed && this.#abort.signal.aborted) return;
    this.#state = State.Closed;
    clearTimeout(this.#timer);
    this.#abort.abort();
    const u = this.#upstream?.socket;
    if (u && !u.destroyed) {
      u.end(packet(Buffer.from([Command.QUIT]), 0));
      setTimeout(() => u.destroy(), 1000).unref();
    }
    const c = this.#client;
    if (!c.destroyed) setTimeout(() => c.destroy(), 1000).unref();
    this.#queue = [];
    const done = this.#responseDone;
    this.#responseDone = undefined;
    done?.();
    this.#views?.close();
    this.#releaseSlot?.();
    this.#releaseSlot = undefined;
    if (this.#recording) {
      endSessionEvents(this.#recording, reason, this.#ctx.log, 'mysql', this.id);
      this.#recording = undefined;
    }
    if (this.#opened) this.#ctx.gate.sessionClosed(this.id, { reason });
    this.#ctx.log?.info({ session: this.id, reason }, 'mysql session closed');
    this.#onClosed();
  }
}

/** Whether a peer address is this host's loopback (127.0.0.0/8 or ::1, also as IPv4-mapped IPv6). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** The affected-rows count of an OK packet, or undefined when it is malformed. */
function okAffectedRows(payload: Buffer): number | undefined {
  try {
    const c = new Cursor(payload, 'the OK packet');
    c.u8();
    return c.lenenc() ?? undefined;
  } catch {
    return undefined;
  }
}
