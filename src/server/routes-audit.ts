/**
 * Audit evidence routes: the public checkpoint key, verification (chain, checkpoint signatures,
 * anchors), the JSONL export, and session recordings (list, metadata with verification, bytes).
 * Everything but the public key is for reviewers.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { keyRing, publicKeyPem, rawPublicKey } from '../core/audit/checkpoint.ts';
import type { Evidence } from '../core/audit/evidence.ts';
import { exportLines, firstSeqAtOrAfter } from '../core/audit/export.ts';
import { searchAudit } from '../core/audit/search.ts';
import { type VerifyResult, verifyChain } from '../core/audit/verify.ts';
import { AirlockError, isAirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import { parseDuration } from '../core/policy/schema.ts';
import { recordingExtension } from '../core/recording/recorder.ts';
import type { RecordingMeta } from '../core/recording/types.ts';
import { verifyRecordingFile } from '../core/recording/verify.ts';
import type { Store } from '../core/store.ts';
import { isReviewer } from './api.ts';

const exportQuery = z.strictObject({
  from: z.coerce.number().int().min(1).optional(),
  /** An ISO time, epoch milliseconds, or a duration back from now (24h). */
  since: z.string().min(1).optional(),
  format: z.enum(['jsonl']).default('jsonl'),
});

const searchQuery = z.strictObject({
  principal: z.string().min(1).optional(),
  connection: z.string().min(1).optional(),
  kind: z.string().min(1).optional(),
  decision: z.enum(['allow', 'review', 'deny']).optional(),
  request: z.coerce.number().int().positive().optional(),
  type: z.string().min(1).optional(),
  text: z.string().min(1).max(500).optional(),
  since: z.string().min(1).optional(),
  until: z.string().min(1).optional(),
  before: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const recordingsQuery = z.strictObject({
  session: z.string().min(1).optional(),
  connection: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  /** Id of the last recording of the previous page. */
  before: z.string().min(1).optional(),
});

const recordingParams = z.object({ id: z.string().min(1).max(100) });

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const detail = r.error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `invalid ${what}: ${detail}`, {
    hint: 'see the API reference in the README',
  });
}

/** "2026-01-02T03:04:05Z", "1767322800000" or "24h" (that long ago) → epoch ms. */
export function parseSince(text: string, now = Date.now()): number {
  if (/^\d{1,15}$/.test(text)) return Number(text);
  try {
    return now - parseDuration(text);
  } catch {
    // not a duration
  }
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `"${text}" is not a time`, {
      hint: 'give an ISO time (2026-01-02T03:04:05Z), epoch milliseconds, or a duration such as 24h',
    });
  return t;
}

async function viaStore<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isAirlockError(err)) throw err;
    throw new AirlockError('AIRLOCK_E_STORE_UNAVAILABLE', 'the Airlock store could not be reached', {
      hint: 'check the store (disk space, file permissions, database reachability) and retry',
      cause: err,
    });
  }
}

export function recordingJson(m: RecordingMeta) {
  return {
    id: m.id,
    session: m.sessionId,
    connection: m.connection,
    protocol: m.protocol ?? null,
    principal: m.principal ?? null,
    format: m.format,
    status: m.status,
    startedAt: new Date(m.startedAt).toISOString(),
    endedAt: m.endedAt === undefined ? null : new Date(m.endedAt).toISOString(),
    bytes: m.bytes,
    sha256: m.sha256 ?? null,
    droppedBytes: m.droppedBytes,
    auditSeq: m.auditSeq ?? null,
    error: m.error ?? null,
  };
}

/**
 * What GET /api/v1/audit/verify answers on a gateway (the route lives in api.ts): the chain,
 * every checkpoint signature, and the file anchors.
 */
export async function verifyEvidence(store: Store, evidence: Evidence): Promise<VerifyResult> {
  // Records queued for the next batch would otherwise look like they are missing.
  await evidence.audit.flush().catch(() => {});
  return verifyChain(store, {
    keys: keyRing([evidence.key.publicKey]),
    anchors: evidence.anchoredCheckpoints(),
  });
}

export function registerAuditRoutes(
  app: FastifyInstance,
  deps: { policy: Policy; store: Store; tokens: Authenticator; evidence: Evidence },
): void {
  const { policy, store, tokens, evidence } = deps;
  const recordingsDir = evidence.recordings.dir;
  const bearer = (request: FastifyRequest): string | undefined => {
    const h = request.headers.authorization;
    return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
  };
  const reviewer = async (request: FastifyRequest) => {
    const principal = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    if (!isReviewer(policy, principal))
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${principal.name} is not a reviewer`, {
        hint: 'audit evidence is for principals in a reviewer group',
      });
    return principal;
  };
  const findRecording = async (id: string): Promise<RecordingMeta> => {
    const m = await viaStore(() => store.getRecording(id));
    if (!m)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `no recording ${id}`, {
        hint: 'list recordings with GET /api/v1/recordings?session=SESSION',
        status: 404,
      });
    return m;
  };

  // Public on purpose: anyone holding an export must be able to get the key to check it with.
  app.get('/api/v1/audit/key', async () => ({
    algorithm: 'Ed25519',
    keyId: evidence.key.keyId,
    publicKey: publicKeyPem(evidence.key.publicKey),
    publicKeyRaw: rawPublicKey(evidence.key.publicKey).toString('base64'),
  }));

  app.get('/api/v1/audit/export', async (request, reply) => {
    await reviewer(request);
    const q = parse(exportQuery, request.query, 'query');
    await evidence.audit.flush().catch(() => {});
    const fromSeq =
      q.from ?? (q.since ? await viaStore(() => firstSeqAtOrAfter(store, parseSince(q.since!))) : 1);
    const lines = exportLines(store, { fromSeq, key: evidence.key });
    const body = Readable.from(
      (async function* () {
        for await (const line of lines) yield `${line}\n`;
      })(),
    );
    return reply
      .type('application/x-ndjson; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-disposition', `attachment; filename="airlock-audit-from-${fromSeq}.jsonl"`)
      .send(body);
  });

  app.get('/api/v1/audit/search', async (request) => {
    await reviewer(request);
    const q = parse(searchQuery, request.query, 'query');
    const page = await viaStore(() =>
      searchAudit(store, {
        principal: q.principal,
        connection: q.connection,
        kind: q.kind,
        decision: q.decision,
        requestId: q.request,
        type: q.type,
        text: q.text,
        since: q.since === undefined ? undefined : parseSince(q.since),
        until: q.until === undefined ? undefined : parseSince(q.until),
        before: q.before,
        limit: q.limit,
      }),
    );
    return { records: page.records, next: page.next ?? null };
  });

  // Where the evidence leaves the gateway, and how far behind each destination is.
  app.get('/api/v1/audit/sinks', async (request) => {
    await reviewer(request);
    const head = evidence.audit.headSeq;
    return {
      head,
      sinks: evidence.sinks.map((k) => {
        const st = k.status();
        return {
          name: st.name,
          deliveredThrough: st.deliveredThrough,
          lag: Math.max(0, head - st.deliveredThrough),
          failing: st.failing,
          lastError: st.lastError ?? null,
          lastDeliveredAt:
            st.lastDeliveredAt === undefined ? null : new Date(st.lastDeliveredAt).toISOString(),
        };
      }),
      anchors: evidence.anchors.map((a) => ({
        name: a.name,
        deliveredThrough: a.deliveredThrough,
        pending: a.pending,
      })),
    };
  });

  // The same, in the Prometheus text format (scrape with the reviewer token as bearer).
  app.get('/api/v1/audit/metrics', async (request, reply) => {
    await reviewer(request);
    const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const head = evidence.audit.headSeq;
    const lines = [
      '# HELP airlock_audit_head_seq Seq of the newest committed audit record.',
      '# TYPE airlock_audit_head_seq gauge',
      `airlock_audit_head_seq ${head}`,
      '# HELP airlock_audit_healthy 1 when the audit log accepts writes.',
      '# TYPE airlock_audit_healthy gauge',
      `airlock_audit_healthy ${evidence.audit.healthy ? 1 : 0}`,
      '# HELP airlock_audit_sink_lag_records Records committed but not yet delivered to the sink.',
      '# TYPE airlock_audit_sink_lag_records gauge',
      ...evidence.sinks.map(
        (k) =>
          `airlock_audit_sink_lag_records{sink="${label(k.name)}"} ${Math.max(0, head - k.status().deliveredThrough)}`,
      ),
      '# HELP airlock_audit_sink_failing 1 while the last delivery attempt to the sink failed.',
      '# TYPE airlock_audit_sink_failing gauge',
      ...evidence.sinks.map(
        (k) => `airlock_audit_sink_failing{sink="${label(k.name)}"} ${k.status().failing ? 1 : 0}`,
      ),
      '# HELP airlock_audit_anchor_delivered_seq Newest record vouched for by a checkpoint the anchor holds.',
      '# TYPE airlock_audit_anchor_delivered_seq gauge',
      ...evidence.anchors.map(
        (a) => `airlock_audit_anchor_delivered_seq{anchor="${label(a.name)}"} ${a.deliveredThrough}`,
      ),
      '# HELP airlock_recordings_open Recordings being written now.',
      '# TYPE airlock_recordings_open gauge',
      `airlock_recordings_open ${evidence.recordings.openCount}`,
    ];
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(`${lines.join('\n')}\n`);
  });

  app.get('/api/v1/recordings', async (request) => {
    await reviewer(request);
    const q = parse(recordingsQuery, request.query, 'query');
    const before = q.before ? await findRecording(q.before) : undefined;
    const list = await viaStore(() =>
      store.listRecordings({ sessionId: q.session, connection: q.connection, limit: q.limit, before }),
    );
    return { recordings: list.map(recordingJson) };
  });

  app.get('/api/v1/recordings/:id', async (request) => {
    await reviewer(request);
    const { id } = parse(recordingParams, request.params, 'recording id');
    const m = await findRecording(id);
    const verification = await verifyRecordingFile(recordingsDir, m, async (seq) => {
      const r = (await viaStore(() => store.readAudit(seq, 1)))[0];
      return r?.seq === seq ? r : undefined;
    });
    return { recording: recordingJson(m), verification };
  });

  app.get('/api/v1/recordings/:id/content', async (request, reply) => {
    await reviewer(request);
    const { id } = parse(recordingParams, request.params, 'recording id');
    const m = await findRecording(id);
    const stream = createReadStream(join(recordingsDir, m.path));
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    }).catch((err) => {
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `the file of recording ${id} is missing`, {
        hint: 'it was removed from the recordings directory; the audit log still holds its hash',
        status: 404,
        cause: err,
      });
    });
    return reply
      .type(m.format === 'asciicast-v2' ? 'application/x-asciicast' : 'application/x-ndjson')
      .header('cache-control', 'no-store')
      .header('x-airlock-sha256', m.sha256 ?? '')
      .header('content-disposition', `attachment; filename="${m.id}.${recordingExtension(m.format)}"`)
      .send(stream);
  });
}
