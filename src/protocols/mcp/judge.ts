/**
 * The Gate's answer to one `tools/call`, enforced the MCP way: forward it, or answer with a tool
 * result whose text says why not (a tool error, so the model reads the reason and can adjust).
 * A `wait` hold keeps the call open and, when the caller asked for progress, tells it where the
 * request can be approved until people decide.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/utilities/progress
 */
import type { Logger } from 'pino';
import type { Action } from '../../core/action.ts';
import { isAirlockError } from '../../core/errors.ts';
import type { GateOutcome, GatePort } from '../../core/gate-types.ts';

export type Verdict = { readonly forward: true } | { readonly forward: false; readonly text: string };

export interface JudgeOptions {
  readonly gate: GatePort;
  readonly log?: Logger | undefined;
  /** The caller's `_meta.progressToken`, if it sent one. */
  readonly progressToken: string | number | undefined;
  readonly progressIntervalMs: number;
  /** Sends a progress notification about this call to the caller. */
  progress(params: { progressToken: string | number; progress: number; message: string }): void;
  /** Aborted when the caller cancels the call or the session ends: the request is cancelled. */
  readonly signal: AbortSignal;
  /** True once the session is gone (an approval then has nothing to forward to). */
  closed(): boolean;
}

export function failClosedText(err: unknown): string {
  if (isAirlockError(err)) return `Airlock refused the call: ${err.describe()}`;
  return 'Airlock could not judge the call, so it was not run; try again, and if it persists tell an Airlock admin';
}

export async function judgeToolCall(action: Action, opts: JudgeOptions): Promise<Verdict> {
  const { gate, log } = opts;
  const tool = String(action.attributes.calledAs ?? action.attributes.tool ?? action.attributes.method);
  let outcome: GateOutcome;
  try {
    outcome = await gate.decide(action);
  } catch (err) {
    return { forward: false, text: failClosedText(err) };
  }
  if (outcome.verdict === 'allow') return { forward: true };
  if (outcome.verdict === 'deny') return { forward: false, text: `denied by Airlock: ${outcome.reason}` };
  if (outcome.mode === 'retry')
    return {
      forward: false,
      text: `${outcome.message}. Call ${tool} again with exactly the same arguments once it is approved.`,
    };

  const requestId = outcome.request.id;
  const waiting = `waiting for approval: request ${requestId} — approve it at ${outcome.url}`;
  log?.info(
    { session: action.sessionId, request: requestId, connection: action.connection, tool },
    'mcp tool call held',
  );
  let progress = 0;
  const started = Date.now();
  const tell = () => {
    if (opts.progressToken === undefined) return;
    const s = Math.round((Date.now() - started) / 1000);
    progress += 1;
    opts.progress({
      progressToken: opts.progressToken,
      progress,
      message: progress === 1 ? waiting : `still ${waiting} (${s}s so far)`,
    });
  };
  tell();
  const timer = setInterval(tell, opts.progressIntervalMs);
  try {
    const s = await gate.settled(requestId, opts.signal);
    if (s.status !== 'approved') return { forward: false, text: `denied by Airlock: ${s.reason}` };
    if (opts.closed()) return { forward: false, text: 'the session ended before the call was approved' };
    await gate.release(requestId);
  } catch (err) {
    return { forward: false, text: failClosedText(err) };
  } finally {
    clearInterval(timer);
  }
  log?.info({ session: action.sessionId, request: requestId, tool }, 'mcp tool call approved, forwarding');
  return { forward: true };
}
