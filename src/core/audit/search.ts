/**
 * Finding audit records: by principal, connection, kind, decision, request id, record type,
 * text, and time range; newest first, paged by seq (`before`). The time range becomes a seq
 * range by binary search (record times only grow), so a bounded window is cheap however long
 * the log; stores that can filter in SQL (SqliteStore.searchAudit) do the rest there, others
 * are scanned here.
 */
import type { AuditRecord, Store } from '../store.ts';
import { canonical } from './canonical.ts';
import { firstSeqAtOrAfter } from './export.ts';

export interface AuditSearch {
  readonly principal?: string | undefined;
  readonly connection?: string | undefined;
  readonly kind?: string | undefined;
  readonly decision?: string | undefined;
  readonly requestId?: number | undefined;
  readonly type?: string | undefined;
  /** Substring of the record's data (case-sensitive). */
  readonly text?: string | undefined;
  /** Epoch ms, inclusive. */
  readonly since?: number | undefined;
  /** Epoch ms, exclusive. */
  readonly until?: number | undefined;
  /** Only records with seq below this (the previous page's last seq). */
  readonly before?: number | undefined;
  readonly limit?: number | undefined;
}

/** Store capability: the filters in its own query language, within [fromSeq, toSeq). */
export interface AuditSearcher {
  searchAudit(
    q: AuditSearch & { readonly fromSeq: number; readonly toSeq: number; readonly limit: number },
  ): Promise<AuditRecord[]>;
}

function canSearch(store: Store): store is Store & AuditSearcher {
  return typeof (store as Partial<AuditSearcher>).searchAudit === 'function';
}

export function matches(r: AuditRecord, q: AuditSearch): boolean {
  const d = r.data as Record<string, unknown> & { principal?: { name?: unknown } };
  if (q.type !== undefined && r.type !== q.type) return false;
  if (q.principal !== undefined && d.principal?.name !== q.principal) return false;
  if (q.connection !== undefined && d.connection !== q.connection) return false;
  if (q.kind !== undefined && d.kind !== q.kind) return false;
  if (q.decision !== undefined && d.decision !== q.decision) return false;
  if (q.requestId !== undefined && d.requestId !== q.requestId) return false;
  if (q.text !== undefined && !(r.dataJson ?? canonical(r.data)).includes(q.text)) return false;
  return true;
}

export interface SearchPage {
  readonly records: AuditRecord[];
  /** Pass as `before` for the next (older) page; undefined when there is none. */
  readonly next: number | undefined;
}

export async function searchAudit(store: Store, q: AuditSearch, maxScan = 1_000_000): Promise<SearchPage> {
  const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
  const head = (await store.auditHead())?.seq ?? 0;
  const fromSeq = q.since === undefined ? 1 : await firstSeqAtOrAfter(store, q.since);
  let toSeq = (q.until === undefined ? head + 1 : await firstSeqAtOrAfter(store, q.until)) as number;
  if (q.before !== undefined) toSeq = Math.min(toSeq, q.before);
  if (toSeq <= fromSeq) return { records: [], next: undefined };
  let records: AuditRecord[];
  if (canSearch(store)) records = await store.searchAudit({ ...q, fromSeq, toSeq, limit });
  else {
    records = [];
    const window = 5000;
    let end = toSeq;
    let scanned = 0;
    while (end > fromSeq && records.length < limit && scanned < maxScan) {
      const start = Math.max(fromSeq, end - window);
      const rows = await store.readAudit(start, end - start);
      scanned += rows.length;
      for (let i = rows.length - 1; i >= 0 && records.length < limit; i--) {
        const r = rows[i]!;
        if (r.seq < end && matches(r, q)) records.push(r);
      }
      end = start;
    }
  }
  const last = records[records.length - 1];
  return { records, next: records.length === limit && last ? last.seq : undefined };
}
