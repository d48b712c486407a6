/**
 * `airlock audit verify | export | key`. Verify and export talk to a running gateway through the
 * API, or (`--config`) read the store named in the policy file directly; `verify --from-export`
 * checks an exported file offline with only the deployment's public key.
 */
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { type Command, CommanderError } from 'commander';
import { readAnchorFile } from '../core/audit/anchors.ts';
import { keyRing, parsePublicKey, type SignedCheckpoint } from '../core/audit/checkpoint.ts';
import { anchorSettingsOf, loadCheckpointKey, readFileAnchors } from '../core/audit/evidence.ts';
import { exportLines, firstSeqAtOrAfter, verifyExport } from '../core/audit/export.ts';
import { type VerifyResult, verifyChain } from '../core/audit/verify.ts';
import { AirlockError } from '../core/errors.ts';
import { loadPolicyFile } from '../core/policy/load.ts';
import { parseSince } from '../server/routes-audit.ts';
import { openStore } from '../store/open.ts';
import { apiClient, DEFAULT_URL } from './client.ts';

type Print = (text: string) => void;

/** Exit status 2: the command worked and found the evidence broken. */
function broken(): CommanderError {
  return new CommanderError(2, 'airlock.evidence', 'the evidence does not verify');
}

export function printVerify(result: VerifyResult, out: Print): void {
  if (result.ok) {
    out(`audit log OK: ${result.count} records, head ${result.headHash}`);
    const c = result.checkpoints;
    if (c) {
      if (!c.signaturesChecked) out('checkpoint signatures: not checked (no public key)');
      else if (c.signedThrough === 0) out('checkpoint signatures: none yet');
      else out(`signed through record ${c.signedThrough} (${c.checkpoints} checkpoint(s) verified)`);
      // The newest checkpoint record itself needs no signature of its own.
      const unsigned = result.headSeq - c.signedThrough - (c.lastCheckpointRecord === result.headSeq ? 1 : 0);
      if (c.signaturesChecked && unsigned > 0)
        out(`${unsigned} newest record(s) not yet covered by a checkpoint (the next one signs them)`);
      if (c.anchoredThrough > 0) out(`anchored outside the store through record ${c.anchoredThrough}`);
      if (c.badAnchors > 0)
        out(`warning: ${c.badAnchors} anchored checkpoint(s) ignored: signature does not verify`);
    }
    return;
  }
  out(`audit log BROKEN: ${result.message}`);
  out(`(${result.count} records verified before record ${result.seq}; problem: ${result.problem})`);
  throw broken();
}

function readKeyFile(path: string) {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new AirlockError('AIRLOCK_E_CONFIG_NOT_FOUND', `cannot read the public key file ${path}`, {
      hint: 'save the key from GET /api/v1/audit/key (or `airlock audit key`) and pass that file',
      cause,
    });
  }
  try {
    return parsePublicKey(text);
  } catch (err) {
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `${path}: ${(err as Error).message}`, {
      hint: 'pass the PEM public key (or the JSON) that `airlock audit key` prints',
    });
  }
}

function readAnchors(paths: readonly string[]): SignedCheckpoint[] {
  const all: SignedCheckpoint[] = [];
  for (const p of paths) {
    try {
      all.push(...readAnchorFile(p).checkpoints);
    } catch (cause) {
      throw new AirlockError('AIRLOCK_E_CONFIG_NOT_FOUND', `cannot read the anchor file ${p}`, {
        hint: 'pass a file of anchored checkpoints (one JSON checkpoint per line)',
        cause,
      });
    }
  }
  return all;
}

/** GET with the CLI's credentials, returning the raw response (for streams and bytes). */
export async function apiFetch(path: string, env: NodeJS.ProcessEnv = process.env): Promise<Response> {
  const url = (env.AIRLOCK_URL || DEFAULT_URL).replace(/\/+$/, '');
  const token = env.AIRLOCK_TOKEN;
  if (!token)
    throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'AIRLOCK_TOKEN is not set', {
      hint: 'export AIRLOCK_TOKEN=<your Airlock token> (`airlock demo` prints one)',
    });
  let res: Response;
  try {
    res = await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
  } catch (cause) {
    throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', `no Airlock server answered at ${url}`, {
      hint: 'is `airlock serve` or `airlock demo` running? set AIRLOCK_URL to its address',
      cause,
    });
  }
  if (!res.ok) {
    const text = await res.text();
    let e: { message?: string; hint?: string } | undefined;
    try {
      e = (JSON.parse(text) as { error?: { message?: string; hint?: string } }).error;
    } catch {
      e = undefined;
    }
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', e?.message ?? `the server answered HTTP ${res.status}`, {
      ...(e?.hint ? { hint: e.hint } : {}),
      status: res.status,
    });
  }
  return res;
}

export function registerAuditCommands(program: Command, io: { out: Print; err: Print }): void {
  const { out, err } = io;
  const audit = program.command('audit').description('the audit log: verify, export, public key');

  audit
    .command('verify')
    .description('check the hash chain, every checkpoint signature and the anchors (exit 2 if broken)')
    .option(
      '-c, --config <file>',
      'read the store named in this policy file directly, instead of asking the API',
    )
    .option('--from-export <file>', 'verify an exported file offline (needs --key)')
    .option('--key <file>', 'the deployment public key (PEM, or the JSON of `airlock audit key`)')
    .option(
      '--anchors <file...>',
      'anchored checkpoints to compare against (files written by a file anchor or collected from a webhook)',
    )
    .action(async (o: { config?: string; fromExport?: string; key?: string; anchors?: string[] }) => {
      const extraAnchors = readAnchors(o.anchors ?? []);
      if (o.fromExport) {
        if (!o.key)
          throw new AirlockError(
            'AIRLOCK_E_BAD_REQUEST',
            'verifying an export needs the public key: pass --key FILE',
            {
              hint: 'get it with `airlock audit key > airlock-audit.pub` (or GET /api/v1/audit/key) from a source you trust',
            },
          );
        const keys = keyRing([readKeyFile(o.key)]);
        let stream: ReturnType<typeof createReadStream>;
        try {
          stream = createReadStream(o.fromExport);
          await new Promise<void>((resolve, reject) => {
            stream.once('open', () => resolve());
            stream.once('error', reject);
          });
        } catch (cause) {
          throw new AirlockError('AIRLOCK_E_CONFIG_NOT_FOUND', `cannot read the export ${o.fromExport}`, {
            hint: 'pass a file written by `airlock audit export`',
            cause,
          });
        }
        const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
        const result = await verifyExport(lines, { keys, anchors: extraAnchors });
        printVerify(result, out);
        return;
      }
      if (o.config) {
        const policy = loadPolicyFile(o.config);
        const key = o.key ? readKeyFile(o.key) : loadCheckpointKey(policy, { create: false })?.publicKey;
        if (!key)
          err(
            'note: no signing key found for this policy; checkpoint signatures are not checked (pass --key)',
          );
        const anchored = readFileAnchors(anchorSettingsOf(policy));
        for (const b of anchored.badLines)
          err(`warning: ${b.path}: line(s) ${b.lines.join(', ')} are not checkpoints`);
        const store = await openStore(policy.store, policy.baseDir);
        try {
          const result = await verifyChain(store, {
            keys: key ? keyRing([key]) : undefined,
            anchors: [...anchored.checkpoints, ...extraAnchors],
          });
          printVerify(result, out);
        } finally {
          await store.close();
        }
        return;
      }
      if (o.key || extraAnchors.length > 0)
        throw new AirlockError(
          'AIRLOCK_E_BAD_REQUEST',
          '--key and --anchors apply to --config or --from-export',
          {
            hint: 'the gateway verifies with its own key and anchors; or read the store directly with --config',
          },
        );
      printVerify(await apiClient().request<VerifyResult>('GET', '/api/v1/audit/verify'), out);
    });

  audit
    .command('export')
    .description('write the audit log as JSON Lines, sealed with the deployment key')
    .option(
      '-c, --config <file>',
      'read the store named in this policy file directly, instead of asking the API',
    )
    .option('--since <time>', 'records from this time: ISO time, epoch ms, or a duration back from now (24h)')
    .option('--from <seq>', 'records from this sequence number')
    .option('--format <format>', 'jsonl (the only format so far)', 'jsonl')
    .option('-o, --output <file>', 'write here instead of standard output')
    .action(
      async (o: { config?: string; since?: string; from?: string; format: string; output?: string }) => {
        if (o.format !== 'jsonl')
          throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `--format ${o.format} is not supported`, {
            hint: 'use --format jsonl',
          });
        if (o.from !== undefined && !/^\d+$/.test(o.from))
          throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `--from "${o.from}" is not a sequence number`);
        const sink: NodeJS.WritableStream = o.output
          ? createWriteStream(o.output, { mode: 0o640 })
          : process.stdout;
        let body: AsyncIterable<string | Uint8Array>;
        let close = async () => {};
        if (o.config) {
          const policy = loadPolicyFile(o.config);
          const key = loadCheckpointKey(policy, { create: false });
          if (!key) err('warning: no signing key found for this policy; the export is not sealed');
          const store = await openStore(policy.store, policy.baseDir);
          close = () => store.close();
          const fromSeq = o.from
            ? Number(o.from)
            : o.since
              ? await firstSeqAtOrAfter(store, parseSince(o.since))
              : 1;
          body = (async function* () {
            for await (const line of exportLines(store, { fromSeq, key })) yield `${line}\n`;
          })();
        } else {
          const q = new URLSearchParams({ format: 'jsonl' });
          if (o.from) q.set('from', o.from);
          if (o.since) q.set('since', o.since);
          const res = await apiFetch(`/api/v1/audit/export?${q}`);
          if (!res.body)
            throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', 'the export came back empty');
          body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
        }
        try {
          for await (const chunk of body) {
            if (!sink.write(chunk)) await new Promise<void>((r) => sink.once('drain', () => r()));
          }
        } finally {
          await close();
          if (o.output) {
            (sink as ReturnType<typeof createWriteStream>).end();
            await finished(sink);
          }
        }
      },
    );

  audit
    .command('search')
    .description('find audit records, newest first')
    .option(
      '-c, --config <file>',
      'read the store named in this policy file directly, instead of asking the API',
    )
    .option('--principal <name>')
    .option('--connection <name>')
    .option('--kind <kind>', 'read, write, schema, privilege, admin, exec, session, transfer, unknown')
    .option('--decision <effect>', 'allow, review or deny')
    .option('--request <id>', 'approval request id')
    .option('--type <type>', 'record type, e.g. action.denied')
    .option('--text <text>', 'text anywhere in the record')
    .option('--since <time>', 'ISO time, epoch ms, or a duration back from now (24h)')
    .option('--until <time>', 'same forms as --since')
    .option('--before <seq>', 'only records before this seq (the next page)')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON lines')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      let records: { seq: number; at: number; type: string; data: Record<string, unknown> }[];
      let next: number | null | undefined;
      if (str('config')) {
        const policy = loadPolicyFile(str('config')!);
        const store = await openStore(policy.store, policy.baseDir);
        try {
          const { searchAudit } = await import('../core/audit/search.ts');
          const page = await searchAudit(store, {
            principal: str('principal'),
            connection: str('connection'),
            kind: str('kind'),
            decision: str('decision'),
            requestId: str('request') === undefined ? undefined : Number(str('request')),
            type: str('type'),
            text: str('text'),
            since: str('since') === undefined ? undefined : parseSince(str('since')!),
            until: str('until') === undefined ? undefined : parseSince(str('until')!),
            before: str('before') === undefined ? undefined : Number(str('before')),
            limit: Number(str('limit') ?? 50),
          });
          records = page.records;
          next = page.next;
        } finally {
          await store.close();
        }
      } else {
        const q = new URLSearchParams();
        for (const k of [
          'principal',
          'connection',
          'kind',
          'decision',
          'request',
          'type',
          'text',
          'since',
          'until',
          'before',
          'limit',
        ])
          if (str(k) !== undefined) q.set(k, str(k)!);
        const page = await apiClient().request<{ records: typeof records; next: number | null }>(
          'GET',
          `/api/v1/audit/search?${q}`,
        );
        records = page.records;
        next = page.next;
      }
      if (o.json) {
        for (const r of records) out(JSON.stringify(r));
        return;
      }
      if (records.length === 0) {
        out('no matching records');
        return;
      }
      for (const r of records) {
        const d = r.data as {
          principal?: { name?: string };
          connection?: string;
          summary?: string;
          decision?: string;
        };
        const who = d.principal?.name ?? '';
        const what = (d.summary ?? '').replace(/\s+/g, ' ').slice(0, 80);
        out(
          `${String(r.seq).padStart(8)}  ${new Date(r.at).toISOString()}  ${r.type.padEnd(18)} ${who.padEnd(12)} ${(d.connection ?? '').padEnd(12)} ${d.decision ?? ''} ${what}`.trimEnd(),
        );
      }
      if (next) out(`(more: --before ${next})`);
    });

  audit
    .command('key')
    .description("print the deployment's public checkpoint key (PEM), to verify exports with")
    .option('-c, --config <file>', 'read the key named in this policy file instead of asking the API')
    .option('--json', 'print the JSON the API answers')
    .action(async (o: { config?: string; json?: boolean }) => {
      if (o.config) {
        const key = loadCheckpointKey(loadPolicyFile(o.config), { create: false });
        if (!key)
          throw new AirlockError(
            'AIRLOCK_E_CONFIG_NOT_FOUND',
            'no audit signing key exists for this policy yet',
            {
              hint: 'start the gateway once (it generates one), or set audit.signing_key',
            },
          );
        const { publicKeyPem } = await import('../core/audit/checkpoint.ts');
        out(publicKeyPem(key.publicKey).trimEnd());
        return;
      }
      // Public: no token needed, so a holder of an export can fetch it too.
      const url = (process.env.AIRLOCK_URL || DEFAULT_URL).replace(/\/+$/, '');
      let res: { publicKey: string };
      try {
        res = (await (await fetch(`${url}/api/v1/audit/key`)).json()) as { publicKey: string };
      } catch (cause) {
        throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', `no Airlock server answered at ${url}`, {
          hint: 'is `airlock serve` running? set AIRLOCK_URL to its address, or use --config',
          cause,
        });
      }
      out(o.json ? JSON.stringify(res, null, 2) : res.publicKey.trimEnd());
    });
}
