/**
 * An event-stream recording (events-jsonl) as a timeline a reviewer reads top to bottom: one line
 * per event, the time since the session began, the event type, then what matters for that type
 * (a statement's decision and rule before its text, a result's row count and duration, an
 * error's SQLSTATE). Fields the layout does not know are kept as `name=value`, so nothing a
 * recording holds is hidden by the view. The values are printed as recorded: already masked.
 */

type Event = Readonly<Record<string, unknown>>;

/** The timeline of a whole recording (its text, header line first). */
export function timelineLines(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n').filter((l) => l.length > 0);
  for (const [i, line] of lines.entries()) {
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      // A line cut short (the gateway stopped mid-write) is shown rather than dropped.
      out.push(`?          unreadable line: ${line}`);
      continue;
    }
    if (typeof e !== 'object' || e === null || Array.isArray(e)) {
      out.push(`?          ${line}`);
      continue;
    }
    out.push(i === 0 ? headerLine(e as Event) : eventLine(e as Event));
  }
  return out;
}

function headerLine(h: Event): string {
  const when = typeof h.timestamp === 'number' ? new Date(h.timestamp * 1000).toISOString() : '?';
  const rest = fields(h, ['version', 'format', 'timestamp']);
  return `session began ${when}${rest ? ` ${rest}` : ''}`;
}

function eventLine(e: Event): string {
  const t = typeof e.t === 'number' ? `+${e.t.toFixed(3)}s` : '?';
  const type = typeof e.type === 'string' ? e.type : '?';
  const [lead, used] = leading(type, e);
  const rest = fields(e, ['t', 'type', ...used]);
  return [t.padEnd(10), type.padEnd(10), lead, rest]
    .filter((s) => s.length > 0)
    .join(' ')
    .trimEnd();
}

/** What comes first for a known event type, and the fields it used. */
function leading(type: string, e: Event): [string, string[]] {
  switch (type) {
    case 'statement': {
      const request = e.request === undefined ? '' : ` request ${String(e.request)}`;
      const rule = e.rule === undefined ? '' : ` by "${String(e.rule)}"`;
      return [
        `${String(e.decision ?? '?')}${rule}${request} [${String(e.kind ?? '?')}] ${oneLine(String(e.text ?? ''))}`,
        ['decision', 'rule', 'request', 'kind', 'text'],
      ];
    }
    case 'result': {
      const parts = [
        e.tag === undefined ? '' : String(e.tag),
        e.rows === undefined ? '' : `${String(e.rows)} row${e.rows === 1 ? '' : 's'}`,
        typeof e.ms === 'number' ? `${e.ms} ms` : '',
      ].filter((s) => s.length > 0);
      return [parts.join(', '), ['tag', 'rows', 'ms']];
    }
    case 'error':
    case 'notice': {
      const head = [e.severity, e.code]
        .filter((v) => v !== undefined)
        .map(String)
        .join(' ');
      return [
        `${head}${head ? ': ' : ''}${oneLine(String(e.message ?? ''))}`,
        ['severity', 'code', 'message'],
      ];
    }
    case 'decision':
      return [
        `request ${String(e.request ?? '?')} ${String(e.status ?? '?')}${e.reason === undefined ? '' : `: ${String(e.reason)}`}`,
        ['request', 'status', 'reason'],
      ];
    default:
      return ['', []];
  }
}

function fields(e: Event, skip: readonly string[]): string {
  return Object.entries(e)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');
}

/** Statement and message texts can span lines; a timeline line must not. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ⏎ ');
}
