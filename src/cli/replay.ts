/**
 * `airlock replay SESSION`: plays a session's recordings after checking each one against the
 * hash the audit log holds for it. A recording that does not match is not played: the command
 * says which one and why, and exits with status 2. Terminal recordings play as they were shown;
 * event recordings (statements, requests, tool calls) print as a timeline.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { recordingsDirOf } from '../core/audit/evidence.ts';
import { AirlockError } from '../core/errors.ts';
import { loadPolicyFile } from '../core/policy/load.ts';
import { parseAsciicast } from '../core/recording/asciicast.ts';
import { timelineLines } from '../core/recording/timeline.ts';
import type { RecordingFormat, RecordingMeta } from '../core/recording/types.ts';
import { checkRecording, type RecordingCheck } from '../core/recording/verify.ts';
import type { AuditRecord, Store } from '../core/store.ts';
import type { recordingJson } from '../server/routes-audit.ts';
import { openStore } from '../store/open.ts';
import { apiFetch } from './audit.ts';
import { apiClient } from './client.ts';

type Print = (text: string) => void;
type RecordingView = ReturnType<typeof recordingJson>;

interface Loaded {
  readonly meta: RecordingMeta;
  readonly bytes: Buffer;
  readonly check: RecordingCheck;
}

function metaFromView(v: RecordingView): RecordingMeta {
  return {
    id: v.id,
    sessionId: v.session,
    connection: v.connection,
    protocol: v.protocol ?? undefined,
    principal: v.principal ?? undefined,
    format: v.format as RecordingFormat,
    status: v.status,
    startedAt: Date.parse(v.startedAt),
    endedAt: v.endedAt ? Date.parse(v.endedAt) : undefined,
    bytes: v.bytes,
    sha256: v.sha256 ?? undefined,
    droppedBytes: v.droppedBytes,
    path: '',
    auditSeq: v.auditSeq ?? undefined,
    error: v.error ?? undefined,
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function loadViaApi(target: string): Promise<Loaded[]> {
  const client = apiClient();
  const q = new URLSearchParams({ session: target, limit: '500' });
  let views = (await client.request<{ recordings: RecordingView[] }>('GET', `/api/v1/recordings?${q}`))
    .recordings;
  if (views.length === 0) {
    try {
      const one = await client.request<{ recording: RecordingView }>(
        'GET',
        `/api/v1/recordings/${encodeURIComponent(target)}`,
      );
      views = [one.recording];
    } catch {
      views = [];
    }
  }
  const out: Loaded[] = [];
  // Oldest first: the order they were recorded in.
  for (const v of views.reverse()) {
    const meta = metaFromView(v);
    const bytes = Buffer.from(
      await (await apiFetch(`/api/v1/recordings/${encodeURIComponent(v.id)}/content`)).arrayBuffer(),
    );
    let record: AuditRecord | undefined;
    if (meta.auditSeq !== undefined) {
      const r = await client.request<{ records: AuditRecord[] }>(
        'GET',
        `/api/v1/audit?from=${meta.auditSeq}&limit=1`,
      );
      record = r.records[0]?.seq === meta.auditSeq ? r.records[0] : undefined;
    }
    // Checked here, over the bytes received, against the record the chain holds.
    out.push({
      meta,
      bytes,
      check: checkRecording(meta, { sha256: sha256(bytes), bytes: bytes.length }, record),
    });
  }
  return out;
}

async function loadFromStore(store: Store, dir: string, target: string): Promise<Loaded[]> {
  let metas = await store.listRecordings({ sessionId: target, limit: 1000 });
  if (metas.length === 0) {
    const one = await store.getRecording(target);
    metas = one ? [one] : [];
  }
  const out: Loaded[] = [];
  for (const meta of metas.reverse()) {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, meta.path));
    } catch {
      out.push({
        meta,
        bytes: Buffer.alloc(0),
        check: {
          ok: false,
          problem: 'missing',
          message: `recording ${meta.id}: its file ${meta.path} is missing from ${dir}`,
        },
      });
      continue;
    }
    const record =
      meta.auditSeq === undefined
        ? undefined
        : (await store.readAudit(meta.auditSeq, 1)).find((r) => r.seq === meta.auditSeq);
    out.push({
      meta,
      bytes,
      check: checkRecording(meta, { sha256: sha256(bytes), bytes: bytes.length }, record),
    });
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function play(l: Loaded, speed: number, raw: boolean, write: (s: string) => void): Promise<void> {
  const text = l.bytes.toString('utf8');
  if (l.meta.format === 'asciicast-v2') {
    const cast = parseAsciicast(text);
    let last = 0;
    for (const e of cast.events) {
      if (speed > 0 && e.time > last) await sleep(Math.min(5_000, ((e.time - last) * 1000) / speed));
      last = e.time;
      if (e.code === 'o') write(e.data);
    }
    return;
  }
  if (raw) {
    write(text.endsWith('\n') || text.length === 0 ? text : `${text}\n`);
    return;
  }
  for (const line of timelineLines(text)) write(`${line}\n`);
}

interface ReplayOptions {
  config?: string;
  speed: string;
  verifyOnly?: boolean;
  raw?: boolean;
}

export function registerReplayCommand(program: Command, io: { out: Print; err: Print }): void {
  const { out, err } = io;
  program
    .command('replay')
    .description("verify a session's recordings against the audit log, then play them")
    .argument('<session>', 'session id (or a recording id)')
    .option('-c, --config <file>', 'read the store and recordings named in this policy file directly')
    .option('--speed <n>', 'play terminal output in real time × n (0: all at once)', '0')
    .option('--verify-only', 'check the recordings, do not play them')
    .option('--raw', 'print event recordings as stored (JSON lines) instead of as a timeline')
    .action(async (target: string, o: ReplayOptions) => {
      const speed = Number(o.speed);
      if (!Number.isFinite(speed) || speed < 0)
        throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `--speed "${o.speed}" is not a non-negative number`);
      let loaded: Loaded[];
      if (o.config) {
        const policy = loadPolicyFile(o.config);
        const store = await openStore(policy.store, policy.baseDir);
        try {
          loaded = await loadFromStore(store, recordingsDirOf(policy), target);
        } finally {
          await store.close();
        }
      } else loaded = await loadViaApi(target);
      if (loaded.length === 0)
        throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `no recordings for session ${target}`, {
          hint: 'list recordings with GET /api/v1/recordings; sessions without a recorded stream have none',
          status: 404,
        });
      let bad = 0;
      for (const l of loaded) {
        const m = l.meta;
        if (!l.check.ok) {
          bad += 1;
          err(`recording ${m.id} FAILED verification: ${l.check.message}`);
          continue;
        }
        err(
          `recording ${m.id} (${m.format}, ${m.connection}${m.principal ? `, ${m.principal}` : ''}): verified, sha256 ${l.check.sha256} matches audit record ${l.check.auditSeq}${m.droppedBytes > 0 ? `; ${m.droppedBytes} bytes were not recorded (disk too slow)` : ''}`,
        );
        if (!o.verifyOnly) await play(l, speed, o.raw === true, (s) => process.stdout.write(s));
      }
      if (!o.verifyOnly) out('');
      if (bad > 0) throw new CommanderError(2, 'airlock.evidence', 'a recording does not verify');
    });
}
