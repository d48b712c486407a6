/**
 * Audit appends for the SQLite store, committed on a worker thread.
 *
 * better-sqlite3 is synchronous: a commit with `synchronous = FULL` blocks the thread for an
 * fsync. On the main thread that stalls every session of every protocol for the length of the
 * fsync once per audit batch, which is most of the gateway's added p99 latency. The worker owns
 * a second connection to the same WAL database and does only this: one prepared INSERT, one
 * transaction per batch. The main connection keeps serving everything else and sees each batch
 * once it is committed (WAL readers see committed transactions).
 *
 * The AuditLog sends one batch at a time and waits for it (the chain is serial), so there is
 * never more than one batch in flight; a worker that dies fails that batch and every later one
 * until it is started again, which the AuditLog turns into "refuse what cannot be recorded".
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { canonical } from '../core/audit/canonical.ts';
import type { AuditRecord } from '../core/store.ts';

/**
 * The worker's code, as plain JavaScript: the gateway's TypeScript is loaded through a loader
 * registered on the main thread, which a worker thread does not inherit, and this code needs
 * nothing but better-sqlite3 (its resolved path comes in workerData).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
let insert;
let run;
let db;
function open() {
  db = new Database(workerData.filename);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  insert = db.prepare('INSERT INTO audit (seq, at, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)');
  run = db.transaction((rows) => {
    for (let i = 0; i < rows.length; i += 6) insert.run(rows[i], rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5]);
  });
}
parentPort.on('message', (m) => {
  if (m.close) {
    try { if (db) db.close(); } catch {}
    parentPort.postMessage({ id: m.id });
    return;
  }
  try {
    if (!db) open();
    run(m.rows);
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e), code: e && e.code });
  }
});
`;

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

export class SqliteAuditWriter {
  private readonly filename: string;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(filename: string) {
    this.filename = filename;
  }

  /** Commits the records in one transaction on the worker; rejects if they were not committed. */
  append(records: readonly AuditRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit writer is closed'));
    // One flat array: a single structured clone per batch instead of one object per record.
    const rows: (string | number)[] = new Array(records.length * 6);
    let i = 0;
    for (const r of records) {
      rows[i++] = r.seq;
      rows[i++] = r.at;
      rows[i++] = r.type;
      rows[i++] = r.dataJson ?? canonical(r.data);
      rows[i++] = r.prevHash;
      rows[i++] = r.hash;
    }
    return this.send({ rows });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    try {
      await this.send({ close: true }, true);
    } catch {
      // it is going away either way
    }
    await worker.terminate();
    this.worker = undefined;
  }

  private send(message: { rows?: unknown[]; close?: boolean }, closing = false): Promise<void> {
    const worker = closing ? this.worker : this.started();
    if (!worker) return Promise.resolve();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Kept alive while a batch is in flight: a process must not exit before its records commit.
      worker.ref();
      worker.postMessage({ id, ...message });
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { filename: this.filename, module },
    });
    // The gateway's own lifetime decides when to stop; an idle writer must not keep it alive.
    worker.unref();
    worker.on('message', (m: { id: number; error?: string; code?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.error === undefined) p.resolve();
      else p.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
    });
    const gone = (why: Error) => {
      if (this.worker === worker) this.worker = undefined;
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const p of waiting) p.reject(why);
    };
    worker.on('error', (err) => gone(err instanceof Error ? err : new Error(String(err))));
    worker.on('exit', (code) => gone(new Error(`the audit writer thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}
