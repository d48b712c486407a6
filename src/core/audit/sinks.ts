/**
 * Streaming sinks: every audit record, in order, delivered to where compliance lives.
 *
 * The store is the queue. Each sink keeps a cursor (the last seq it delivered) in a small file
 * in the data directory and reads onward from the store in batches, so a sink that is down
 * loses nothing — it resumes from its cursor, however long the outage — and never holds
 * records in memory beyond one batch. The data path never waits for a sink: the audit log
 * commits and moves on; sinks follow behind, and their lag (head − cursor) is reported.
 *
 * - file: JSON Lines (the export's record lines), fsynced per batch, rotated by size
 *   (`path` → `path.1` → … → `path.<keep>`).
 * - http: POST `{"type":"audit.records","from":N,"to":M,"records":[...]}`, signed like the
 *   notification webhooks (`X-Airlock-Timestamp`, `X-Airlock-Signature: sha256=<hex HMAC-SHA256
 *   of "<timestamp>.<body>">`), retried with backoff until a 2xx.
 * - syslog: RFC 5424 messages over TCP or TLS with octet-counting framing (RFC 6587 §3.4.1),
 *   facility log audit (13), severity informational; MSGID the record type; structured data
 *   `[airlock@32473 seq="N" hash="H"]`; MSG the record line.
 *
 * Delivery is at-least-once: after a crash between delivering and saving the cursor, the last
 * batch is sent again; receivers can drop duplicates by seq.
 */
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { AuditRecord, Store } from '../store.ts';
import { canonical } from './canonical.ts';
import { recordLine } from './export.ts';

export interface SinkTransport {
  readonly name: string;
  /** Delivers the records (in order) or throws; called again with the same records after a throw. */
  deliver(records: readonly AuditRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface SinkStatus {
  readonly name: string;
  readonly deliveredThrough: number;
  readonly lastError: string | undefined;
  readonly lastDeliveredAt: number | undefined;
  readonly failing: boolean;
}

const line = (r: AuditRecord) =>
  recordLine({
    seq: r.seq,
    at: r.at,
    type: r.type,
    dataJson: r.dataJson ?? canonical(r.data),
    prevHash: r.prevHash,
    hash: r.hash,
  });

export class FileSink implements SinkTransport {
  readonly name: string;
  constructor(
    private readonly path: string,
    private readonly rotateBytes: number,
    private readonly keep: number,
  ) {
    this.name = `file:${path}`;
    mkdirSync(dirname(path), { recursive: true });
  }

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    const size = await stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    if (size > 0 && size >= this.rotateBytes) await this.rotate();
    const fh = await open(this.path, 'a', 0o640);
    try {
      await fh.appendFile(`${records.map(line).join('\n')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private async rotate(): Promise<void> {
    await rm(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--)
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => {});
    await rename(this.path, `${this.path}.1`);
  }

  async close(): Promise<void> {}
}

export class HttpSink implements SinkTransport {
  readonly name: string;
  constructor(
    private readonly url: string,
    private readonly secret: () => string,
    private readonly doFetch: typeof fetch = fetch,
  ) {
    const u = new URL(url);
    this.name = `http:${u.origin}${u.pathname}`;
  }

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    const body = `{"type":"audit.records","from":${records[0]!.seq},"to":${records[records.length - 1]!.seq},"records":[${records.map(line).join(',')}]}`;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = `sha256=${createHmac('sha256', this.secret()).update(`${timestamp}.${body}`).digest('hex')}`;
    const res = await this.doFetch(this.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'airlock-audit-sink',
        'x-airlock-event': 'audit.records',
        'x-airlock-timestamp': timestamp,
        'x-airlock-signature': signature,
      },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(30_000),
    });
    await res.body?.cancel().catch(() => {});
    if (res.status < 200 || res.status >= 300) throw new Error(`the sink answered HTTP ${res.status}`);
  }

  async close(): Promise<void> {}
}

/** RFC 5424 PRINTUSASCII without space, "=", "]", '"': what SD-NAME and MSGID may hold. */
const sdName = (s: string, max: number) => s.replace(/[^\x21-\x7e]|[=\]"]/g, '_').slice(0, max) || '-';

export function syslogMessage(r: AuditRecord, host: string, appName: string): string {
  // Facility 13 (log audit) × 8 + severity 6 (informational).
  const pri = 13 * 8 + 6;
  const ts = new Date(r.at).toISOString();
  const sd = `[airlock@32473 seq="${r.seq}" hash="${r.hash}"]`;
  // The BOM marks MSG as UTF-8 (RFC 5424 §6.4).
  return `<${pri}>1 ${ts} ${sdName(host, 255)} ${sdName(appName, 48)} - ${sdName(r.type, 32)} ${sd} \uFEFF${line(r)}`;
}

export class SyslogSink implements SinkTransport {
  readonly name: string;
  private socket: Socket | undefined;
  private readonly host = hostname();

  constructor(
    private readonly address: { host: string; port: number },
    private readonly tls: { ca?: string | undefined; rejectUnauthorized?: boolean } | undefined,
    private readonly appName = 'airlock',
  ) {
    this.name = `syslog${tls ? '+tls' : ''}:${address.host}:${address.port}`;
  }

  private async connected(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = this.tls
        ? tlsConnect(
            {
              host: this.address.host,
              port: this.address.port,
              ca: this.tls.ca,
              servername: this.address.host,
              rejectUnauthorized: this.tls.rejectUnauthorized ?? true,
            },
            () => resolve(s),
          )
        : netConnect({ host: this.address.host, port: this.address.port }, () => resolve(s));
      s.once('error', reject);
      s.setTimeout(30_000, () => s.destroy(new Error('the syslog receiver stopped reading')));
    });
    socket.on('error', () => socket.destroy());
    // A receiver does not answer; anything it sends is ignored.
    socket.resume();
    this.socket = socket;
    return socket;
  }

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    const socket = await this.connected();
    const frames = records.map((r) => {
      const msg = Buffer.from(syslogMessage(r, this.host, this.appName), 'utf8');
      return Buffer.concat([Buffer.from(`${msg.length} `), msg]);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.write(Buffer.concat(frames), (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      socket.destroy();
      this.socket = undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.end(() => resolve()));
  }
}

export interface SinkRunnerOptions {
  readonly store: Store;
  readonly transport: SinkTransport;
  /** File holding the last delivered seq. */
  readonly cursorFile: string;
  readonly batch?: number;
  /** How often an idle sink looks for new records. Default 500 ms. */
  readonly pollMs?: number;
  readonly maxBackoffMs?: number;
  readonly onError?: (sink: string, err: unknown) => void;
}

/** Follows the audit log from a saved cursor and delivers to one transport. */
export class SinkRunner {
  readonly name: string;
  private readonly opts: SinkRunnerOptions;
  private cursor: number;
  private lastError: string | undefined;
  private lastDeliveredAt: number | undefined;
  private failing = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(opts: SinkRunnerOptions) {
    this.opts = opts;
    this.name = opts.transport.name;
    this.cursor = readCursor(opts.cursorFile);
    mkdirSync(dirname(opts.cursorFile), { recursive: true });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** New records were committed: look now instead of at the next poll. */
  poke(): void {
    this.wake?.();
  }

  status(): SinkStatus {
    return {
      name: this.name,
      deliveredThrough: this.cursor,
      lastError: this.lastError,
      lastDeliveredAt: this.lastDeliveredAt,
      failing: this.failing,
    };
  }

  /** Stops after the batch in flight; what is not delivered yet is delivered after the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.opts.transport.close().catch(() => {});
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    const batch = Math.max(1, this.opts.batch ?? 500);
    const poll = this.opts.pollMs ?? 500;
    let backoff = 500;
    while (!this.stopped) {
      let records: AuditRecord[];
      try {
        records = await this.opts.store.readAudit(this.cursor + 1, batch);
      } catch (err) {
        this.fail(err);
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 30_000);
        continue;
      }
      if (records.length === 0) {
        await this.sleep(poll);
        continue;
      }
      try {
        await this.opts.transport.deliver(records);
      } catch (err) {
        this.fail(err);
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 30_000);
        continue;
      }
      backoff = 500;
      this.failing = false;
      this.cursor = records[records.length - 1]!.seq;
      this.lastDeliveredAt = Date.now();
      try {
        await writeCursor(this.opts.cursorFile, this.cursor);
      } catch (err) {
        this.fail(err);
      }
    }
  }

  private fail(err: unknown): void {
    const message = (err as Error)?.message ?? String(err);
    if (!this.failing || message !== this.lastError) this.opts.onError?.(this.name, err);
    this.failing = true;
    this.lastError = message;
  }
}

function readCursor(file: string): number {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

async function writeCursor(file: string, seq: number): Promise<void> {
  // Write-then-rename, so a crash never leaves a half-written cursor.
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${seq}\n`);
  await rename(tmp, file);
}
