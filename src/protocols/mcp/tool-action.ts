/**
 * A `tools/call` request as an Action: the tool name and its arguments become rule fields
 * (`tool`, `argument.NAME`), the tool's kind comes from the connection's `tools:` map (or the
 * tool's own annotations when the connection trusts them), and a tool that runs SQL is judged by
 * the statement it carries. A tool Airlock knows nothing about is `unknown`, never `read`.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/server/tools#calling-tools
 */
import { posix } from 'node:path';
import {
  type Action,
  type ActionKind,
  type ActionPart,
  kindOfParts,
  type Principal,
  riskier,
} from '../../core/action.ts';
import type { McpConnection, McpToolSpec } from '../../core/policy/connections/mcp.ts';
import { globMatch } from '../../core/policy/evaluate.ts';

/** What a tools/list result told us about a tool (only what classification reads). */
export interface ToolInfo {
  readonly name: string;
  readonly annotations?: { readonly readOnlyHint?: boolean | undefined } | undefined;
}

/**
 * Classifies SQL text into parts (one per statement) and an identity for the whole text. Passed
 * in by the gateway, so this adapter does not reach into another protocol's folder.
 */
export type SqlClassifier = (sql: string) => {
  readonly parts: readonly ActionPart[];
  readonly normalized: string;
};

/** Nested arguments deeper than this, or with more leaves, cannot be matched reliably: `unknown`. */
const MAX_DEPTH = 16;
const MAX_LEAVES = 2_000;

export function toolSpec(connection: McpConnection, name: string): McpToolSpec | undefined {
  return (
    connection.tools.find((t) => t.pattern === name) ??
    connection.tools.find(
      (t) => (t.pattern.includes('*') || t.pattern.includes('?')) && globMatch(t.pattern, name),
    )
  );
}

/** The kind of a tool that does not run SQL, and why. */
export function toolKind(
  connection: McpConnection,
  name: string,
  info: ToolInfo | undefined,
): { kind: ActionKind; why: string } {
  const spec = toolSpec(connection, name);
  if (spec?.kind)
    return { kind: spec.kind, why: `connection ${connection.name} names tool ${name} ${spec.kind}` };
  if (connection.trustAnnotations && typeof info?.annotations?.readOnlyHint === 'boolean') {
    const kind = info.annotations.readOnlyHint ? 'read' : 'write';
    return { kind, why: `tool ${name} declares readOnlyHint: ${info.annotations.readOnlyHint}` };
  }
  return {
    kind: 'unknown',
    why: info
      ? `connection ${connection.name} does not say what tool ${name} does`
      : `tool ${name} was not in the tool server's tools/list`,
  };
}

/** The kinds a call of this tool could have, for deciding whether to list it at all. */
export function possibleKinds(connection: McpConnection, info: ToolInfo): readonly ActionKind[] {
  const spec = toolSpec(connection, info.name);
  // A SQL statement can be anything; the tool is callable if any kind of statement is.
  if (spec?.sql) return ['read', 'write', 'schema', 'privilege', 'admin', 'unknown'];
  return [toolKind(connection, info.name, info).kind];
}

/**
 * Arguments as rule fields: `argument.NAME` holds the value as text; nested objects use dotted
 * paths (`argument.options.mode`); each element of an array is one value of the same field.
 * Returns undefined when the arguments are too large or deep to match reliably.
 */
export function argumentFields(
  args: Readonly<Record<string, unknown>>,
): Record<string, string[]> | undefined {
  const fields: Record<string, string[]> = {};
  let leaves = 0;
  const add = (path: string, value: string): boolean => {
    const key = `argument.${path}`;
    const values = fields[key] ?? [];
    values.push(value);
    fields[key] = values;
    return ++leaves <= MAX_LEAVES;
  };
  const walk = (path: string, value: unknown, depth: number): boolean => {
    if (depth > MAX_DEPTH) return false;
    if (value === null) return add(path, 'null');
    if (Array.isArray(value)) {
      // An empty array still names the argument, so `arguments: { x: "*" }` sees it.
      if (value.length === 0) return add(path, '');
      return value.every((v) => walk(path, v, depth + 1));
    }
    if (typeof value === 'object') {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) return add(path, '');
      return entries.every(([k, v]) => walk(`${path}.${k}`, v, depth + 1));
    }
    if (typeof value === 'string') return add(path, matchedPath(value));
    if (typeof value === 'number' || typeof value === 'boolean') return add(path, String(value));
    return add(path, String(value));
  };
  for (const [k, v] of Object.entries(args)) if (!walk(k, v, 0)) return undefined;
  return fields;
}

/**
 * An absolute path with `.`/`..` segments or doubled slashes is matched as the path it names:
 * otherwise `/srv/notes/../protected/key` would meet a rule for `/srv/notes/*` and miss one for
 * `/srv/protected/*`. Only the value rules see is normalized; the call is forwarded unchanged.
 */
function matchedPath(value: string): string {
  if (!value.startsWith('/') || !/(^|\/)\.{1,2}(\/|$)|\/\//.test(value)) return value;
  return posix.normalize(value);
}

/** JSON with object keys sorted, so two calls that mean the same have the same identity. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>).sort();
  return `{${keys
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

export interface ToolCall {
  readonly name: string;
  readonly arguments: Readonly<Record<string, unknown>>;
}

export interface ToolActionContext {
  readonly connection: McpConnection;
  readonly principal: Principal;
  readonly sessionId: string;
  readonly source?: string | undefined;
  /** The tool as the server listed it, if it did. */
  readonly info?: ToolInfo | undefined;
  readonly classifySql?: SqlClassifier | undefined;
  /** The name the caller used, when it differs (a prefixed name on the aggregated endpoint). */
  readonly calledAs?: string | undefined;
}

export function toolCallAction(call: ToolCall, ctx: ToolActionContext): Action {
  const { connection } = ctx;
  const argsJson = canonicalJson(call.arguments);
  const summary = `${call.name} ${argsJson}`;
  const args = argumentFields(call.arguments);
  const fields: Record<string, readonly string[]> = { tool: [call.name], ...(args ?? {}) };
  let parts: ActionPart[];
  if (!args) {
    parts = [
      {
        kind: 'unknown',
        text: summary,
        fields,
        why: 'the arguments are too large or too deeply nested to judge',
      },
    ];
  } else {
    const spec = toolSpec(connection, call.name);
    if (spec?.sql) parts = sqlParts(call, spec, summary, fields, ctx.classifySql);
    else {
      const { kind, why } = toolKind(connection, call.name, ctx.info);
      parts = [{ kind, text: summary, fields, why }];
    }
  }
  return {
    protocol: 'mcp',
    connection: connection.name,
    principal: ctx.principal,
    sessionId: ctx.sessionId,
    ...(ctx.source === undefined ? {} : { source: ctx.source }),
    kind: kindOfParts(parts),
    summary,
    // Arguments are data, not formatting: the exact values (keys sorted) bind an approval.
    normalized: `tools/call ${call.name}\n${argsJson}`,
    parts,
    attributes: {
      tool: call.name,
      arguments: call.arguments,
      ...(ctx.calledAs && ctx.calledAs !== call.name ? { calledAs: ctx.calledAs } : {}),
    },
  };
}

function sqlParts(
  call: ToolCall,
  spec: McpToolSpec,
  summary: string,
  fields: Record<string, readonly string[]>,
  classify: SqlClassifier | undefined,
): ActionPart[] {
  const sql = call.arguments[spec.sql!];
  if (typeof sql !== 'string')
    return [
      { kind: 'unknown', text: summary, fields, why: `argument ${spec.sql} of ${call.name} is not SQL text` },
    ];
  if (!classify)
    return [
      {
        kind: 'unknown',
        text: summary,
        fields,
        why: 'no SQL classifier is available to judge the statement',
      },
    ];
  const classified = classify(sql);
  if (classified.parts.length === 0)
    return [{ kind: spec.kind ?? 'unknown', text: summary, fields, why: 'the SQL text holds no statement' }];
  // Each statement is judged on its own, with the tool and arguments still there for rules.
  return classified.parts.map((p) => ({
    ...p,
    kind: spec.kind ? riskier(spec.kind, p.kind) : p.kind,
    fields: { ...fields, ...(p.fields ?? {}) },
  }));
}

/**
 * Requests that only describe or configure the session: relayed without a decision. Every other
 * request (resources/read, and methods Airlock does not know) is an Action of its own.
 */
export const UNJUDGED_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  // Tasks carry on a tools/call that was judged when it was made.
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
]);

/**
 * Any other request as an Action. `resources/read` is a `read` whose `resource` field is the URI
 * (rules: `resources: ["file:///etc/*"]`); a method Airlock does not know is `unknown`, with the
 * method name in the `method` field (rules: `methods: ["x-vendor/*"]`).
 */
export function methodAction(
  method: string,
  params: unknown,
  ctx: Omit<ToolActionContext, 'info' | 'classifySql' | 'calledAs'>,
): Action {
  const paramsJson = canonicalJson(params ?? {});
  const summary = `${method} ${paramsJson}`;
  const uri = (params as { uri?: unknown } | undefined)?.uri;
  const part: ActionPart =
    method === 'resources/read' && typeof uri === 'string'
      ? {
          kind: 'read',
          text: summary,
          fields: { method: [method], resource: [uri] },
          why: 'resources/read reads a resource',
        }
      : {
          kind: 'unknown',
          text: summary,
          fields: { method: [method] },
          why: `${method} is not an MCP method Airlock knows the effect of`,
        };
  return {
    protocol: 'mcp',
    connection: ctx.connection.name,
    principal: ctx.principal,
    sessionId: ctx.sessionId,
    ...(ctx.source === undefined ? {} : { source: ctx.source }),
    kind: part.kind,
    summary,
    normalized: `${method}\n${paramsJson}`,
    parts: [part],
    attributes: { method, ...(typeof uri === 'string' ? { uri } : {}) },
  };
}
