/**
 * Anchors: copies of each signed checkpoint kept where someone with the database cannot reach
 * them, so deleting the newest records (which leaves a shorter chain that still verifies) is
 * caught: the anchor vouches for a record the store no longer has.
 *
 * - file: one JSON checkpoint per line, appended (O_APPEND) and fsynced. Put it on another disk
 *   or a write-once mount; `audit verify --anchors FILE` compares against it.
 * - webhook: POSTs `{"type":"audit.checkpoint","record":N,"checkpoint":{...}}` with the same
 *   HMAC headers as notification webhooks (`X-Airlock-Timestamp`, `X-Airlock-Signature:
 *   sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`), retried with backoff. Only the newest
 *   checkpoint matters for truncation, so a backlog collapses to the newest one.
 *
 * Anchors never block the audit log: each runs its own queue and reports failures to `onError`.
 */
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { asCheckpoint, type SignedCheckpoint } from './checkpoint.ts';

export interface Anchor {
  readonly name: string;
  send(checkpoint: SignedCheckpoint, recordSeq: number): void;
  /** Waits for what is queued (bounded by the anchor's own retry budget), then stops. */
  close(): Promise<void>;
  /** Seq the newest delivered checkpoint vouches for (0: none yet). */
  readonly deliveredThrough: number;
  /** Checkpoints waiting to be delivered. */
  readonly pending: number;
}

export type AnchorErrorHandler = (anchor: string, err: unknown) => void;

export class FileAnchor implements Anchor {
  readonly name: string;
  private readonly path: string;
  private readonly onError: AnchorErrorHandler | undefined;
  private chain: Promise<void> = Promise.resolve();
  private delivered = 0;
  private waiting = 0;

  constructor(path: string, onError?: AnchorErrorHandler) {
    this.path = path;
    this.name = `file:${path}`;
    this.onError = onError;
    mkdirSync(dirname(path), { recursive: true });
  }

  get deliveredThrough(): number {
    return this.delivered;
  }

  get pending(): number {
    return this.waiting;
  }

  send(checkpoint: SignedCheckpoint, recordSeq: number): void {
    const line = `${JSON.stringify({ ...checkpoint, record: recordSeq })}\n`;
    this.waiting += 1;
    this.chain = this.chain.then(async () => {
      try {
        const fh = await open(this.path, 'a', 0o640);
        try {
          await fh.appendFile(line);
          await fh.sync();
        } finally {
          await fh.close();
        }
        this.delivered = Math.max(this.delivered, checkpoint.seq);
      } catch (err) {
        this.onError?.(this.name, err);
      } finally {
        this.waiting -= 1;
      }
    });
  }

  async close(): Promise<void> {
    await this.chain;
  }
}

export interface WebhookAnchorOptions {
  readonly url: string;
  /** Resolved at each send, so a rotated secret file needs no restart. */
  readonly secret: () => string;
  readonly onError?: AnchorErrorHandler;
  readonly fetch?: typeof fetch;
  /** Give up on one checkpoint after this many attempts (a newer one replaces it anyway). Default 8. */
  readonly attempts?: number;
  readonly backoffMs?: number;
}

export class WebhookAnchor implements Anchor {
  readonly name: string;
  private readonly opts: WebhookAnchorOptions;
  private next: { checkpoint: SignedCheckpoint; record: number } | undefined;
  private running: Promise<void> | undefined;
  private delivered = 0;
  private closed = false;

  constructor(opts: WebhookAnchorOptions) {
    this.opts = opts;
    // The URL may carry credentials in its query; name it by origin and path only.
    const u = new URL(opts.url);
    this.name = `webhook:${u.origin}${u.pathname}`;
  }

  get deliveredThrough(): number {
    return this.delivered;
  }

  get pending(): number {
    return (this.next ? 1 : 0) + (this.running ? 1 : 0);
  }

  send(checkpoint: SignedCheckpoint, recordSeq: number): void {
    if (this.closed) return;
    this.next = { checkpoint, record: recordSeq };
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }

  private async loop(): Promise<void> {
    while (this.next) {
      const item = this.next;
      this.next = undefined;
      await this.deliver(item);
    }
  }

  private async deliver(item: { checkpoint: SignedCheckpoint; record: number }): Promise<void> {
    const body = JSON.stringify({
      type: 'audit.checkpoint',
      record: item.record,
      checkpoint: item.checkpoint,
    });
    const attempts = Math.max(1, this.opts.attempts ?? 8);
    const doFetch = this.opts.fetch ?? fetch;
    let delay = this.opts.backoffMs ?? 500;
    for (let i = 1; i <= attempts; i++) {
      try {
        const timestamp = String(Math.floor(Date.now() / 1000));
        const signature = `sha256=${createHmac('sha256', this.opts.secret()).update(`${timestamp}.${body}`).digest('hex')}`;
        const res = await doFetch(this.opts.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'user-agent': 'airlock-audit-anchor',
            'x-airlock-event': 'audit.checkpoint',
            'x-airlock-timestamp': timestamp,
            'x-airlock-signature': signature,
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel().catch(() => {});
        if (res.status >= 200 && res.status < 300) {
          this.delivered = Math.max(this.delivered, item.checkpoint.seq);
          return;
        }
        throw new Error(`the anchor endpoint answered HTTP ${res.status}`);
      } catch (err) {
        // A newer checkpoint supersedes this one; on close, stop retrying.
        if (this.next || this.closed || i === attempts) {
          this.opts.onError?.(this.name, err);
          return;
        }
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }
}

export interface AnchorFileContents {
  readonly checkpoints: SignedCheckpoint[];
  /** 1-based line numbers that are not checkpoints (a torn last line after a crash, or tampering). */
  readonly badLines: number[];
}

/** Reads an anchor file written by FileAnchor (or collected from a webhook receiver, one checkpoint per line). */
export function readAnchorFile(path: string): AnchorFileContents {
  const text = readFileSync(path, 'utf8');
  const checkpoints: SignedCheckpoint[] = [];
  const badLines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      badLines.push(i + 1);
      return;
    }
    // A webhook receiver may have stored the whole body.
    const cp = asCheckpoint((value as { checkpoint?: unknown })?.checkpoint ?? value);
    if (cp) checkpoints.push(cp);
    else badLines.push(i + 1);
  });
  return { checkpoints, badLines };
}
