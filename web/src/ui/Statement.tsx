/** The exact statement(s), highlighted as text nodes (never innerHTML). */
import { useMemo, useState } from 'preact/hooks';
import { tokenize } from '../sql.ts';
import type { AirlockRequest } from '../types.ts';

function Highlighted({ text }: { text: string }) {
  const tokens = useMemo(() => tokenize(text), [text]);
  return (
    <>
      {tokens.map((t, i) =>
        t.type === 'space' || t.type === 'punct' || t.type === 'ident' ? (
          t.text
        ) : (
          <span key={i} class={`sql-${t.type}`}>
            {t.text}
          </span>
        ),
      )}
    </>
  );
}

const SQL_PROTOCOLS = new Set(['postgres', 'mysql']);

/** What one part is called, by protocol: a SQL statement, a shell command, an API request... */
const PART_NOUN: Record<string, [string, string]> = {
  postgres: ['statement', 'statements'],
  mysql: ['statement', 'statements'],
  ssh: ['command', 'commands'],
  http: ['request', 'requests'],
  kubernetes: ['request', 'requests'],
  git: ['ref update', 'ref updates'],
  mcp: ['tool call', 'tool calls'],
};

/** Protocol facts other than SQL (method and path, verb and resource, command, tool, refs...). */
function Fields({ fields }: { fields: Readonly<Record<string, readonly string[]>> | undefined }) {
  const entries = Object.entries(fields ?? {}).filter(([, v]) => v.length > 0);
  if (entries.length === 0) return null;
  return (
    <dl class="fields">
      {entries.map(([k, v]) => (
        <div key={k} class="fact">
          <dt>{k}</dt>
          <dd class="wrap">{v.join(', ')}</dd>
        </div>
      ))}
    </dl>
  );
}

function Parameters({ attributes }: { attributes: Readonly<Record<string, unknown>> | undefined }) {
  const params = attributes?.parameters;
  if (!Array.isArray(params) || params.length === 0) return null;
  return (
    <p class="parameters">
      <span class="muted">Parameters: </span>
      {params.map((v, i) => (
        <code key={i} class="param">
          ${i + 1} = {v === null ? 'NULL' : typeof v === 'string' ? v : JSON.stringify(v)}
        </code>
      ))}
    </p>
  );
}

interface PushedUpdate {
  readonly ref?: unknown;
  readonly diff?: unknown;
  readonly diffTruncated?: unknown;
}

/** The diff a git push brings, per ref (secrets already masked by the gateway), as text nodes. */
function Diffs({ attributes }: { attributes: Readonly<Record<string, unknown>> | undefined }) {
  const updates = attributes?.updates;
  if (!Array.isArray(updates)) return null;
  const shown = (updates as PushedUpdate[]).filter((u) => typeof u.diff === 'string' && u.diff !== '');
  if (shown.length === 0) return null;
  return (
    <>
      {shown.map((u, i) => (
        <figure class="statement" key={i} aria-label={`diff of ${String(u.ref)}`}>
          <figcaption>
            Diff of {String(u.ref)}
            {u.diffTruncated ? ' · cut short' : ''}
          </figcaption>
          <pre
            class="sql diff"
            // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable from the keyboard
            tabIndex={0}
          >
            <code>
              {(u.diff as string).split('\n').map((line, j) => {
                const cls =
                  line.startsWith('+') && !line.startsWith('+++')
                    ? 'diff-add'
                    : line.startsWith('-') && !line.startsWith('---')
                      ? 'diff-del'
                      : line.startsWith('@@')
                        ? 'diff-hunk'
                        : undefined;
                return (
                  <span key={j} class={cls}>
                    {line}
                    {'\n'}
                  </span>
                );
              })}
            </code>
          </pre>
        </figure>
      ))}
    </>
  );
}

export function Statements({ request, tall = false }: { request: AirlockRequest; tall?: boolean }) {
  const [wrap, setWrap] = useState(false);
  const parts =
    request.parts.length > 0
      ? request.parts
      : [{ kind: request.kind, text: request.summary, statement: null, tables: [], why: null }];
  const sql = SQL_PROTOCOLS.has(request.protocol);
  const noun = PART_NOUN[request.protocol] ?? ['part', 'parts'];
  const total = parts.reduce((n, p) => n + p.text.length, 0);
  return (
    <div class="statements">
      <div class="statements-bar">
        <span class="muted">
          {parts.length === 1 ? `1 ${noun[0]}` : `${parts.length} ${noun[1]}`}
          {total > 2000 ? ` · ${(total / 1024).toFixed(1)} KB` : ''}
        </span>
        <button
          type="button"
          class="link-button"
          aria-pressed={wrap}
          aria-label={wrap ? 'Do not wrap long lines' : 'Wrap long lines'}
          onClick={() => setWrap(!wrap)}
        >
          {wrap ? 'No wrap' : 'Wrap'}
        </button>
      </div>
      {parts.map((p, i) => (
        <figure class="statement" key={i} aria-label={`${noun[0]} ${i + 1} of ${parts.length}`}>
          {parts.length > 1 && (
            <figcaption>
              <span class={`badge kind-${p.kind}`}>{p.kind}</span> {i + 1} of {parts.length}
              {p.statement ? ` · ${p.statement}` : ''}
              {p.tables.length > 0 ? ` · ${p.tables.join(', ')}` : ''}
            </figcaption>
          )}
          <pre
            class={`sql${wrap ? ' wrap' : ''}${tall ? ' tall' : ''}`}
            // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable from the keyboard
            tabIndex={0}
          >
            <code>{sql ? <Highlighted text={p.text} /> : p.text}</code>
          </pre>
          <Fields fields={'fields' in p ? p.fields : undefined} />
        </figure>
      ))}
      <Parameters attributes={request.attributes} />
      <Diffs attributes={request.attributes} />
    </div>
  );
}
