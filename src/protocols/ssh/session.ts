/**
 * One caller's SSH connection to Airlock. The SSH user name selects the connection
 * (`CONNECTION` or `someone@CONNECTION`); the password (or keyboard-interactive answer) is the
 * caller's Airlock token. Every channel request becomes an action the Gate judges before
 * anything reaches the host:
 *  - `exec`: kind `exec` (per command the line runs), held with "waiting for approval" on stderr;
 *  - `shell`: kind `session`, recorded as asciicast v2;
 *  - `subsystem sftp`: each file operation judged (see sftp.ts);
 *  - `direct-tcpip`: only to destinations the connection lists, then judged as `transfer`;
 *  - remote forwarding, agent and X11 forwarding: refused.
 * https://www.rfc-editor.org/rfc/rfc4254
 */
import { randomUUID } from 'node:crypto';
import type {
  AuthContext,
  ClientChannel,
  ClientInfo,
  Connection,
  PseudoTtyInfo,
  PublicKeyAuthContext,
  ServerChannel,
  Session,
  Client as SshClient,
} from 'ssh2';
import type { Action, ActionKind, ActionPart, Principal } from '../../core/action.ts';
import { kindOfParts } from '../../core/action.ts';
import type { AuditSink, Logger } from '../../core/adapter-ports.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import { maskerFor } from '../../core/masking/masker.ts';
import type { SshConnection } from '../../core/policy/connections/ssh.ts';
import { evaluate, globMatch } from '../../core/policy/evaluate.ts';
import type { Policy } from '../../core/policy/policy.ts';
import { AsciicastWriter } from '../../core/recording/asciicast.ts';
import { TerminalRecording } from '../../core/recording/terminal.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { findCallerKey } from './caller-keys.ts';
import { classifyCommand } from './command.ts';
import { fingerprint } from './host-keys.ts';
import { type Backlog, watchBacklog } from './record-tap.ts';
import { type ExitInfo, type Relay, relay } from './relay.ts';
import { runSftp } from './sftp-relay.ts';
import { watchStall } from './stall.ts';
import { isScpUpload, UPLOADS_NEED_A_RULE, uploadRefusal } from './uploads.ts';
import { connectUpstream } from './upstream.ts';

export interface SshSessionContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  readonly audit?: AuditSink | undefined;
  readonly recorder?: Recorder | undefined;
  readonly log?: Logger | undefined;
  /** While a command is held, a line goes to the caller's stderr this often. */
  readonly keepaliveMs: number;
  readonly upstreamTimeoutMs?: number | undefined;
  /** Output bytes recorded per channel (default 16 MiB). */
  readonly maxRecordedBytes?: number | undefined;
  /** Connection slots and the write timeout (core/limits). */
  readonly limits?: Limits | undefined;
}

/** The caller's raw connection, which the listener owns. */
export interface SshWire {
  /** Key exchange and sign-in are done: the startup timeout no longer applies. */
  started(): void;
  /** Drops the socket at once (a caller that does not read would never take a disconnect). */
  destroy(): void;
}

/** How callers can log in: a registered public key, or the token as password. */
const METHODS: AuthContext['method'][] = ['publickey', 'password', 'keyboard-interactive'];
/** Session channels one caller connection may have open at once (OpenSSH's MaxSessions is 10). */
const MAX_CHANNELS = 10;
/** Wrong tokens before the connection is dropped (OpenSSH's MaxAuthTries is 6). */
const MAX_AUTH_FAILURES = 3;
/** Exit status for a command Airlock refused, as the issue of record asks: 1. */
const EXIT_DENIED = 1;
/** Exit status when the host could not be reached: OpenSSH's own status for its failures. */
const EXIT_GATEWAY_FAILURE = 255;

export type Verdict =
  /** `requestId`: the approved request that let it through, if one did. */
  | { readonly ok: true; readonly requestId?: number | undefined }
  | { readonly ok: false; readonly reason: string };

export class SshCallerSession {
  readonly id = randomUUID();
  readonly #ctx: SshSessionContext;
  readonly #client: Connection;
  readonly #source: string;
  readonly #abort = new AbortController();
  #principal: Principal | undefined;
  #connection: SshConnection | undefined;
  /** Set when the token was good but the connection name was not. */
  #unknownConnection: string | undefined;
  #user = '';
  #failures = 0;
  /** Session channels open on this connection. */
  #channels = 0;
  #authenticated = false;
  /** Fingerprint of a key offered and refused, audited if the caller never gets in. */
  #rejectedKey: string | undefined;
  #opened = false;
  #audited: Promise<boolean> = Promise.resolve(true);
  #closed = false;
  #upstream: Promise<SshClient> | undefined;
  readonly #onClosed: () => void;
  readonly #wire: SshWire | undefined;
  /** Gives the connection slot back; set once the caller holds one. */
  #releaseSlot: (() => void) | undefined;
  /** Why the caller got no connection slot: every channel is told, then the connection ends. */
  #slotRefused: AirlockError | undefined;
  #refusedTimer: NodeJS.Timeout | undefined;

  constructor(
    client: Connection,
    info: ClientInfo,
    ctx: SshSessionContext,
    onClosed: () => void,
    wire?: SshWire,
  ) {
    this.#ctx = ctx;
    this.#client = client;
    this.#onClosed = onClosed;
    this.#wire = wire;
    this.#source = `${info.ip}:${info.port}`;
    client.on('authentication', (a) => void this.#authenticate(a));
    client.on('ready', () => this.#ready());
    client.on('error', (err) => this.#close(`caller connection error: ${err.message}`));
    client.on('close', () => this.#close('caller disconnected'));
  }

  destroy(): void {
    this.#client.end();
    this.#close('Airlock is shutting down');
  }

  // ------------------------------------------------------------------------------------------
  // Login

  async #authenticate(a: AuthContext): Promise<void> {
    const at = a.username.lastIndexOf('@');
    const connectionName = at >= 0 ? a.username.slice(at + 1) : a.username;
    this.#user = at >= 0 ? a.username.slice(0, at) : '';
    if (a.method === 'password') {
      await this.#verify(a, connectionName, a.password);
    } else if (a.method === 'keyboard-interactive') {
      a.prompt([{ prompt: 'Airlock token: ', echo: false }], 'Airlock', (answers) => {
        void this.#verify(a, connectionName, answers[0]);
      });
    } else if (a.method === 'publickey') {
      this.#verifyKey(a, connectionName);
    } else {
      a.reject(METHODS);
    }
  }

  /**
   * A public key registered to a principal on this connection (`caller_keys`). Keys meet the
   * same failed sign-in limits as tokens (core/limits): a blocked source or claimed user is
   * refused whatever key it offers, and an unknown key or a bad signature counts as a failure.
   */
  #verifyKey(a: PublicKeyAuthContext, connectionName: string): void {
    const limits = this.#ctx.limits;
    const attempt = { protocol: 'ssh', source: this.#source, identity: a.username };
    try {
      limits?.beforeAuth(attempt);
    } catch (err) {
      const reason = isAirlockError(err) ? err.code : 'AIRLOCK_E_RATE_LIMITED';
      this.#ctx.gate.authFailed({
        protocol: 'ssh',
        source: this.#source,
        connection: connectionName,
        reason,
        key: fingerprint(a.key.data),
      });
      this.#ctx.log?.warn(
        { session: this.id, source: this.#source, connection: connectionName, reason },
        'ssh key login refused',
      );
      a.reject(METHODS);
      return;
    }
    const connection = this.#ctx.policy.connections.get(connectionName);
    const found = connection?.type === 'ssh' ? findCallerKey(connection, a.key.algo, a.key.data) : undefined;
    if (!found || !connection || connection.type !== 'ssh') {
      this.#rejectedKey = fingerprint(a.key.data);
      limits?.authFailed(attempt);
      a.reject(METHODS);
      return;
    }
    // Without a signature the client only asks whether the key would do.
    if (!a.signature || !a.blob) {
      a.accept();
      return;
    }
    const principal = this.#ctx.tokens.principal(found.principal);
    if (found.key.verify(a.blob, a.signature, a.hashAlgo) !== true || !principal) {
      limits?.authFailed(attempt);
      this.#ctx.gate.authFailed({
        protocol: 'ssh',
        source: this.#source,
        connection: connectionName,
        reason: principal
          ? 'bad public key signature'
          : `principal "${found.principal}" is not a known identity`,
        key: fingerprint(a.key.data),
      });
      a.reject(METHODS);
      return;
    }
    this.#principal = principal;
    this.#connection = connection;
    this.#authenticated = true;
    a.accept();
  }

  async #verify(a: AuthContext, connectionName: string, credential: string | undefined): Promise<void> {
    const { tokens, policy, gate, log } = this.#ctx;
    try {
      this.#principal = await tokens.authenticate(credential === '' ? undefined : credential, {
        source: this.#source,
        protocol: 'ssh',
        connection: connectionName,
        // What the caller claimed: failed sign-ins are throttled per claimed user too.
        user: a.username,
      });
    } catch (err) {
      const code = isAirlockError(err) ? err.code : 'AIRLOCK_E_TOKEN_INVALID';
      gate.authFailed({ protocol: 'ssh', source: this.#source, connection: connectionName, reason: code });
      log?.warn(
        { session: this.id, source: this.#source, connection: connectionName, reason: code },
        'ssh login refused',
      );
      if (++this.#failures >= MAX_AUTH_FAILURES) {
        a.reject([]);
        this.#client.end();
      } else a.reject(METHODS);
      return;
    }
    const connection = policy.connections.get(connectionName);
    if (connection?.type === 'ssh') this.#connection = connection;
    else {
      // The token is good: let the caller in so every channel can say what went wrong.
      this.#unknownConnection = connectionName;
      gate.authFailed({
        protocol: 'ssh',
        source: this.#source,
        connection: connectionName,
        principal: this.#principal.name,
        reason: 'AIRLOCK_E_CONNECTION_UNKNOWN',
      });
    }
    this.#authenticated = true;
    a.accept();
  }

  #ready(): void {
    const client = this.#client;
    this.#wire?.started();
    this.#takeSlot();
    client.on('session', (accept, reject) => {
      // Each channel can hold a request for reviewers; a caller does not get to flood them.
      if (this.#channels >= MAX_CHANNELS) {
        reject();
        return;
      }
      this.#channels++;
      const session = accept();
      session.once('close', () => this.#channels--);
      this.#session(session);
    });
    client.on('tcpip', (accept, reject, info) => void this.#directTcpip(accept, reject, info));
    client.on('request', (_accept, reject, name, info) => {
      // Remote forwarding would open a port on the host for anyone who can reach it.
      reject?.();
      if (name === 'tcpip-forward')
        void this.#refuse(
          'transfer',
          `remote port forwarding from ${(info as { bindAddr?: string }).bindAddr ?? '*'}:${(info as { bindPort?: number }).bindPort ?? 0}`,
          'remote port forwarding (ssh -R) is not allowed through Airlock',
        );
    });
    client.on('openssh.streamlocal', (_accept, reject) => reject());
    if (!this.#connection || this.#slotRefused) return;
    this.#audited = this.#auditOpen();
  }

  /**
   * One connection slot per signed-in caller connection. SSH sign-in has no way to carry a
   * message, so a refused caller is let in and each channel it opens is told why (on stderr);
   * the connection then ends.
   */
  #takeSlot(): void {
    const limits = this.#ctx.limits;
    if (!limits || !this.#principal) return;
    try {
      this.#releaseSlot = limits.openConnection(this.#principal, 'ssh', this.#source);
    } catch (err) {
      this.#slotRefused = isAirlockError(err)
        ? err
        : new AirlockError('AIRLOCK_E_LIMIT_CONNECTIONS', (err as Error).message);
      this.#ctx.log?.warn(
        { session: this.id, principal: this.#principal.name, reason: this.#slotRefused.message },
        'ssh connection refused: connection limit',
      );
      // A caller that opens no channel is not kept around either.
      this.#refusedTimer = setTimeout(
        () => this.#cutOff('connection limit reached'),
        limits.config.startupTimeoutMs,
      );
      this.#refusedTimer.unref();
    }
  }

  /** Drops the caller's connection now (it does not read, or holds no slot). */
  #cutOff(reason: string): void {
    this.#ctx.log?.warn({ session: this.id, source: this.#source, reason }, 'ssh caller cut off');
    this.#client.end();
    this.#close(reason);
    this.#wire?.destroy();
  }

  /** The session is on record before any of its channels is judged. */
  async #auditOpen(): Promise<boolean> {
    const client = this.#client;
    try {
      await this.#ctx.gate.sessionOpened({
        sessionId: this.id,
        protocol: 'ssh',
        connection: this.#connection!.name,
        principal: this.#principal!,
        source: this.#source,
        attributes: { user: this.#user || undefined },
      });
      this.#opened = true;
      return true;
    } catch (err) {
      this.#ctx.log?.error(
        { session: this.id, err: (err as Error).message },
        'ssh session could not be audited',
      );
      client.end();
      return false;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Session channels

  #session(session: Session): void {
    let pty: PseudoTtyInfo | undefined;
    let running: Relay | undefined;
    let pendingWindow: { cols: number; rows: number; height: number; width: number } | undefined;
    let started = false;
    session.on('pty', (accept, _reject, info) => {
      pty = info;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      if (running) running.resize(info.cols, info.rows, info.height, info.width);
      else pendingWindow = info;
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      running?.signal(info.name);
      accept?.();
    });
    // Environment variables could change what a command does (LD_PRELOAD, PATH): not passed.
    session.on('env', (_accept, reject) => reject?.());
    session.on('auth-agent', (_accept, reject) => {
      reject?.();
      void this.#refuse(
        'transfer',
        'agent forwarding',
        'agent forwarding (ssh -A) is not allowed through Airlock',
      );
    });
    session.on('x11', (_accept, reject) => reject?.());
    const once = (fn: () => void) => {
      if (started) return;
      started = true;
      fn();
    };
    const onRelay = (r: Relay) => {
      running = r;
      if (pendingWindow)
        r.resize(pendingWindow.cols, pendingWindow.rows, pendingWindow.height, pendingWindow.width);
    };
    session.on('exec', (accept, _reject, info) =>
      once(() => void this.#exec(accept(), info.command, pty).then((r) => r && onRelay(r))),
    );
    session.on('shell', (accept) => once(() => void this.#shell(accept(), pty).then((r) => r && onRelay(r))));
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') {
        reject?.();
        return;
      }
      once(() => void this.#sftp(accept()));
    });
  }

  /** The caller's channel gets the error and a non-zero exit; false when the session has no usable connection. */
  async #usable(channel: ServerChannel): Promise<boolean> {
    if (this.#slotRefused) {
      this.#fail(channel, this.#slotRefused.describe(), EXIT_DENIED);
      // Let the message and exit status go out before the connection ends.
      channel.once('close', () => this.#client.end());
      return false;
    }
    if (this.#connection) {
      this.#watchReads(channel);
      return this.#audited;
    }
    const names = [...this.#ctx.policy.connections.values()]
      .filter((c) => c.type === 'ssh')
      .map((c) => c.name);
    this.#fail(
      channel,
      `connection "${this.#unknownConnection}" is not configured in Airlock — ${
        names.length > 0 ? `log in as one of: ${names.join(', ')}` : 'no SSH connections are configured'
      }`,
      EXIT_DENIED,
    );
    return false;
  }

  /**
   * A channel whose caller stops reading holds what the host sends (up to the stream's buffer,
   * after which the host is paused); past the write timeout the caller is cut off.
   */
  #watchReads(channel: ServerChannel): void {
    const ms = this.#ctx.limits?.config.writeTimeoutMs;
    if (ms)
      watchStall(channel, ms, () =>
        this.#cutOff(`the caller did not read its output for ${Math.round(ms / 1000)}s`),
      );
  }

  #fail(channel: ServerChannel, message: string, status: number): void {
    if (channel.writable) {
      channel.stderr.write(`airlock: ${message}\r\n`);
      channel.exit(status);
      channel.end();
    }
  }

  #action(
    kind: ActionKind,
    summary: string,
    normalized: string,
    parts: readonly ActionPart[],
    attributes: Record<string, unknown>,
  ): Action {
    return {
      protocol: 'ssh',
      connection: this.#connection!.name,
      principal: this.#principal!,
      sessionId: this.id,
      source: this.#source,
      kind: parts.length > 0 ? kindOfParts(parts) : kind,
      summary,
      normalized,
      parts,
      attributes: { host: this.#connection!.upstream.host, ...attributes },
    };
  }

  async #exec(
    channel: ServerChannel,
    command: string,
    pty: PseudoTtyInfo | undefined,
  ): Promise<Relay | undefined> {
    if (!(await this.#usable(channel))) return undefined;
    const parts = classifyCommand(command);
    const action = this.#action('exec', command, `exec:${command}`, parts, pty ? { pty: true } : {});
    const scpUpload = isScpUpload(parts);
    const verdict =
      (scpUpload && (await this.#uploadWithoutRule(action))) || (await this.judge(action, channel));
    if (!verdict.ok) {
      this.#fail(channel, verdict.reason, EXIT_DENIED);
      return undefined;
    }
    const host = await this.#open(channel, (up, cb) =>
      up.exec(command, pty ? { pty: ptyOptions(pty) } : {}, cb),
    );
    if (!host) return undefined;
    const started = Date.now();
    const { recording, recordingId, backlog } = this.#recording(pty, command);
    const r = relay(channel, host, { recording, backlog, recordInput: false });
    void r.done.then((exit) => {
      this.#finished(action, verdict, exit, started, recordingId);
      this.#seal(recording, exit);
    });
    return r;
  }

  async #shell(channel: ServerChannel, pty: PseudoTtyInfo | undefined): Promise<Relay | undefined> {
    if (!(await this.#usable(channel))) return undefined;
    const name = this.#connection!.name;
    const part: ActionPart = {
      kind: 'session',
      text: `interactive shell on ${name}`,
      why: 'an interactive shell: each command typed in it is recorded, not judged one by one',
    };
    const action = this.#action('session', `open an interactive shell on ${name}`, 'shell', [part], {
      pty: Boolean(pty),
      ...(pty ? { term: pty.term, cols: pty.cols, rows: pty.rows } : {}),
    });
    const verdict = await this.judge(action, channel);
    if (!verdict.ok) {
      this.#fail(channel, verdict.reason, EXIT_DENIED);
      return undefined;
    }
    const host = await this.#open(channel, (up, cb) => up.shell(pty ? ptyOptions(pty) : false, cb));
    if (!host) return undefined;
    const started = Date.now();
    const { recording, recordingId, backlog } = this.#recording(pty, undefined);
    const r = relay(channel, host, { recording, backlog, recordInput: true });
    void r.done.then((exit) => {
      this.#finished(action, verdict, exit, started, recordingId);
      this.#seal(recording, exit);
    });
    return r;
  }

  async #sftp(channel: ServerChannel): Promise<void> {
    if (!(await this.#usable(channel))) return;
    const host = await this.#open(channel, (up, cb) => up.subsys('sftp', cb));
    if (!host) return;
    runSftp(channel, host, {
      judge: async (parts, summary, normalized, attributes) => {
        const action = this.#action('transfer', summary, `sftp:${normalized}`, parts, attributes);
        const refused = await this.#uploadWithoutRule(action);
        return refused ?? this.judge(action, channel);
      },
      log: this.#ctx.log,
      sessionId: this.id,
    });
  }

  /**
   * Changing files over SFTP or scp is denied unless a rule allows or reviews it: the connection
   * default does not apply to uploads. Returns the refusal, or undefined to ask the Gate.
   */
  async #uploadWithoutRule(action: Action): Promise<Verdict | undefined> {
    const reason = uploadRefusal(this.#ctx.policy, action);
    if (reason === undefined) return undefined;
    await this.#refuse('write', action.summary, reason, UPLOADS_NEED_A_RULE);
    return { ok: false, reason };
  }

  /** Opens a channel on the host (connecting first if needed); on failure tells the caller. */
  async #open(
    channel: ServerChannel,
    start: (up: SshClient, cb: (err: Error | undefined, ch: ClientChannel) => void) => void,
  ): Promise<ClientChannel | undefined> {
    try {
      const up = await this.#upstreamClient();
      const host = await new Promise<ClientChannel>((resolve, reject) =>
        start(up, (err, ch) => (err ? reject(err) : resolve(ch))),
      );
      if (!channel.writable) {
        host.close();
        return undefined;
      }
      return host;
    } catch (err) {
      const e = isAirlockError(err)
        ? err
        : new AirlockError(
            'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
            `the host refused the channel: ${(err as Error).message}`,
          );
      this.#fail(channel, e.describe(), EXIT_GATEWAY_FAILURE);
      return undefined;
    }
  }

  #upstreamClient(): Promise<SshClient> {
    if (!this.#upstream) {
      const connection = this.#connection!;
      const p = connectUpstream(connection, {
        ...(this.#ctx.upstreamTimeoutMs === undefined
          ? {}
          : { connectTimeoutMs: this.#ctx.upstreamTimeoutMs }),
        onHostKeyMismatch: (presented) => {
          this.#ctx.log?.error(
            { session: this.id, connection: connection.name, presented },
            'ssh host key mismatch: connection refused',
          );
          void this.#ctx.audit
            ?.append('ssh.host_key_mismatch', {
              sessionId: this.id,
              connection: connection.name,
              host: `${connection.upstream.host}:${connection.upstream.port}`,
              presented,
              pinned: connection.upstream.hostKeys,
              principal: this.#principal?.name,
            })
            .catch(() => {});
        },
      });
      this.#upstream = p;
      // A failed connection is tried again by the next channel.
      p.then(
        (c) => {
          c.on('close', () => {
            if (this.#upstream === p) this.#upstream = undefined;
          });
          if (this.#closed) c.end();
        },
        () => {
          if (this.#upstream === p) this.#upstream = undefined;
        },
      );
    }
    return this.#upstream;
  }

  // ------------------------------------------------------------------------------------------
  // Judging

  /** Asks the Gate; while held, tells the caller on stderr where to approve and keeps telling it. */
  async judge(action: Action, channel: ServerChannel | undefined): Promise<Verdict> {
    const { gate, log } = this.#ctx;
    const say = (line: string) => {
      if (channel?.writable) channel.stderr.write(`airlock: ${line}\r\n`);
    };
    try {
      const outcome = await gate.decide(action);
      if (outcome.verdict === 'allow') return { ok: true, requestId: outcome.requestId };
      if (outcome.verdict === 'deny') return { ok: false, reason: `denied: ${outcome.reason}` };
      if (outcome.mode === 'retry')
        return { ok: false, reason: `${outcome.message} — run the same command again once it is approved` };
      const id = outcome.request.id;
      const waiting = `waiting for approval: request ${id}, ${outcome.url}`;
      say(waiting);
      log?.info(
        { session: this.id, request: id, connection: action.connection, kind: action.kind },
        'ssh action held',
      );
      const started = Date.now();
      const keepalive = setInterval(
        () => say(`still ${waiting} (${Math.round((Date.now() - started) / 1000)}s so far)`),
        this.#ctx.keepaliveMs,
      );
      // The caller closing its channel (Ctrl-C) cancels the request.
      const abort = new AbortController();
      const onGone = () => abort.abort();
      this.#abort.signal.addEventListener('abort', onGone);
      channel?.once('close', onGone);
      try {
        const s = await gate.settled(id, abort.signal);
        if (s.status !== 'approved') return { ok: false, reason: s.reason };
        if (abort.signal.aborted) return { ok: false, reason: 'the caller went away' };
        await gate.release(id);
        say(`approved: request ${id}`);
        return { ok: true, requestId: id };
      } finally {
        clearInterval(keepalive);
        this.#abort.signal.removeEventListener('abort', onGone);
        channel?.off('close', onGone);
      }
    } catch (err) {
      log?.error({ session: this.id, err: (err as Error).message }, 'ssh action refused: the gate failed');
      return {
        ok: false,
        reason: isAirlockError(err)
          ? err.describe()
          : 'Airlock could not judge the command, so it was not run — try again; if it persists, tell an Airlock admin',
      };
    }
  }

  /** Audits a refusal the Gate is never asked about (forwarding, uploads no rule covers). */
  async #refuse(
    kind: ActionKind,
    summary: string,
    reason: string,
    rule = 'forwarding is refused',
  ): Promise<void> {
    this.#ctx.log?.warn({ session: this.id, summary }, 'ssh request refused');
    await this.#ctx.audit
      ?.append('action.denied', {
        principal: this.#principal
          ? { name: this.#principal.name, kind: this.#principal.kind, groups: [...this.#principal.groups] }
          : undefined,
        connection: this.#connection?.name ?? this.#unknownConnection,
        protocol: 'ssh',
        sessionId: this.id,
        source: this.#source,
        kind,
        summary,
        rule,
        decision: 'deny',
        reason,
      })
      .catch(() => {});
  }

  // ------------------------------------------------------------------------------------------
  // Port forwarding (ssh -L / -W)

  async #directTcpip(
    accept: () => ServerChannel,
    reject: () => void,
    info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
  ): Promise<void> {
    const connection = this.#connection;
    if (!connection || this.#slotRefused || !(await this.#audited)) {
      reject();
      return;
    }
    const dest = `${info.destIP}:${info.destPort}`;
    const listed = connection.forwarding.some((pattern) => {
      const i = pattern.lastIndexOf(':');
      return (
        globMatch(pattern.slice(0, i).replace(/^\[|\]$/g, ''), info.destIP) &&
        globMatch(pattern.slice(i + 1), String(info.destPort))
      );
    });
    if (!listed) {
      reject();
      await this.#refuse(
        'transfer',
        `port forwarding to ${dest}`,
        `port forwarding to ${dest} is not allowed: it is not in the forwarding list of ${connection.name}`,
      );
      return;
    }
    const part: ActionPart = {
      kind: 'transfer',
      text: `forward to ${dest}`,
      why: 'a TCP connection through the host',
      fields: { path: [dest] },
    };
    const action = this.#action('transfer', `port forwarding to ${dest}`, `forward:${dest}`, [part], {
      destination: dest,
    });
    // Forwarding is denied unless a rule allows it: the connection default does not apply.
    const decision = evaluate(this.#ctx.policy, action);
    if (decision.rule.index < 0 && decision.effect !== 'deny') {
      reject();
      await this.#refuse(
        'transfer',
        action.summary,
        `port forwarding to ${dest} needs a rule that allows or reviews it`,
        'forwarding needs a rule',
      );
      return;
    }
    const verdict = await this.judge(action, undefined);
    if (!verdict.ok) {
      reject();
      return;
    }
    try {
      const up = await this.#upstreamClient();
      const host = await new Promise<ClientChannel>((resolve, rej) =>
        up.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, ch) =>
          err ? rej(err) : resolve(ch),
        ),
      );
      const channel = accept();
      // A forward that is never read is held and cut off like a command's output.
      this.#watchReads(channel);
      channel.pipe(host).pipe(channel);
      channel.on('close', () => host.close());
      host.on('close', () => channel.close());
    } catch (err) {
      this.#ctx.log?.warn({ session: this.id, dest, err: (err as Error).message }, 'ssh forwarding failed');
      reject();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Recording

  #recording(
    pty: PseudoTtyInfo | undefined,
    command: string | undefined,
  ): {
    recording?: TerminalRecording | undefined;
    recordingId?: string | undefined;
    backlog?: Backlog | undefined;
  } {
    const recorder = this.#ctx.recorder;
    if (!recorder) return {};
    const connection = this.#connection!;
    const principal = this.#principal!;
    try {
      const { writer, backlog } = watchBacklog(
        recorder.open(this.id, connection.name, 'asciicast-v2', {
          protocol: 'ssh',
          principal: principal.name,
        }),
      );
      const cast = new AsciicastWriter(writer, {
        width: pty?.cols || 80,
        height: pty?.rows || 24,
        title: `${principal.name} on ${connection.name}`,
        ...(command === undefined ? {} : { command }),
        ...(pty?.term ? { env: { TERM: pty.term } } : {}),
      });
      const recording = new TerminalRecording(cast, {
        masker: maskerFor(this.#ctx.policy.masking, connection.name, principal),
        maxRecordedBytes: this.#ctx.maxRecordedBytes,
      });
      return { recording, recordingId: writer.id, backlog };
    } catch (err) {
      this.#ctx.log?.error(
        { session: this.id, err: (err as Error).message },
        'ssh recording could not start',
      );
      return {};
    }
  }

  /**
   * How a command or shell ended goes on record (`exec.finished`), next to the action that let it
   * run: the exit status, or the signal that ended it; `ended: unknown` when the host closed the
   * channel without saying, or the caller left first. https://www.rfc-editor.org/rfc/rfc4254#section-6.10
   */
  #finished(
    action: Action,
    verdict: Verdict,
    exit: ExitInfo | undefined,
    started: number,
    recordingId: string | undefined,
  ): void {
    const how =
      exit === undefined
        ? { ended: 'unknown' }
        : 'code' in exit
          ? { ended: 'exit', exitStatus: exit.code }
          : // As RFC 4254 names signals ("TERM"); ssh2 reports them as "SIGTERM".
            { ended: 'signal', exitSignal: exit.signal.replace(/^SIG/, ''), coreDumped: exit.coreDumped };
    void this.#ctx.audit
      ?.append('exec.finished', {
        sessionId: this.id,
        protocol: 'ssh',
        connection: action.connection,
        principal: action.principal.name,
        kind: action.kind,
        summary: action.summary,
        ...(verdict.ok && verdict.requestId !== undefined ? { requestId: verdict.requestId } : {}),
        ...how,
        ms: Date.now() - started,
        ...(recordingId === undefined ? {} : { recordingId }),
      })
      .catch((err: Error) =>
        this.#ctx.log?.error(
          { session: this.id, err: err.message, ...how },
          'ssh exit status could not be audited',
        ),
      );
  }

  #seal(recording: TerminalRecording | undefined, exit: unknown): void {
    if (!recording) return;
    recording
      .close()
      .catch((err: Error) =>
        this.#ctx.log?.error(
          { session: this.id, err: err.message, exit },
          'ssh recording could not be sealed',
        ),
      );
  }

  // ------------------------------------------------------------------------------------------

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#authenticated && this.#rejectedKey && this.#failures === 0)
      this.#ctx.gate.authFailed({
        protocol: 'ssh',
        source: this.#source,
        reason: 'public key not registered to any principal',
        key: this.#rejectedKey,
      });
    this.#abort.abort();
    clearTimeout(this.#refusedTimer);
    this.#releaseSlot?.();
    void this.#upstream?.then(
      (c) => c.end(),
      () => {},
    );
    if (this.#opened) this.#ctx.gate.sessionClosed(this.id, { reason });
    this.#ctx.log?.info({ session: this.id, reason }, 'ssh session closed');
    this.#onClosed();
  }
}

function ptyOptions(p: PseudoTtyInfo) {
  return { term: p.term, cols: p.cols, rows: p.rows, width: p.width, height: p.height, modes: p.modes };
}
